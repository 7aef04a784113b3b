//! Sockets and the local network: UDP and TCP on one port, and which subnet this host is on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use fleetmesh_tcp::TcpTransport;
use fleetmesh_udp::UdpTransport;

use super::StartError;
use crate::{overlay::LocalNetwork, transport::canonical_addr, DualTransport, TransportError};

/// The transport the front door runs: UDP first, TCP on the same port as fallback.
pub(crate) type Sockets = DualTransport<UdpTransport, TcpTransport>;

/// Binds UDP on `addr`, then TCP on the port UDP got. `[::]` binds both IPv4 and IPv6 (a
/// dual-stack socket); a host without IPv6 falls back to `0.0.0.0` on the same port.
pub(crate) async fn bind(addr: SocketAddr) -> Result<(Sockets, u16), StartError> {
    match bind_exact(addr).await {
        Err(StartError::Bind {
            source: TransportError::AddressFamily(_) | TransportError::Io(_),
            ..
        }) if addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && !ipv6_available() => {
            bind_exact(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port())).await
        }
        other => other,
    }
}

/// Tries for a port both protocols can have, when the system picks it.
const ANY_PORT_TRIES: usize = 16;

async fn bind_exact(addr: SocketAddr) -> Result<(Sockets, u16), StartError> {
    let mut tries = 0;
    loop {
        match bind_once(addr).await {
            // Port 0: the system gave UDP a port whose TCP twin is taken (an outgoing
            // connection's port, say); another UDP port will do.
            Err(StartError::Bind { source: TransportError::Io(e), .. })
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && tries < ANY_PORT_TRIES =>
            {
                tries += 1;
            }
            other => return other,
        }
    }
}

async fn bind_once(addr: SocketAddr) -> Result<(Sockets, u16), StartError> {
    let fail = |source| StartError::Bind { addr, source };
    let udp = UdpTransport::bind(addr).await.map_err(fail)?;
    let port = udp.local_addr().port();
    let tcp_addr = SocketAddr::new(addr.ip(), port);
    let tcp = TcpTransport::bind(tcp_addr)
        .await
        .map_err(|source| StartError::Bind { addr: tcp_addr, source })?;
    Ok((DualTransport::new(udp, tcp), port))
}

/// Waits (up to two seconds) until the port of `addr` can be bound again: the TCP listener is
/// closed by an aborted task, which the runtime drops a moment after the transport goes, and a
/// caller that restarts on the same port must not race it.
pub(crate) async fn released(addr: SocketAddr) {
    for _ in 0..200 {
        if std::net::TcpListener::bind(addr).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn ipv6_available() -> bool {
    UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// The node's own network: that of the address it listens on when it names one (a host with
/// several addresses, told which to use), else [`local_network`] towards `master`. Without
/// this a server listening on its second address took the first as its own (the route to a
/// master on the same host leaves from it), and so never found that the master saw it at
/// its own address: no NAT check said it was public, and it was never made a GSN.
pub(crate) fn own_network(listen: SocketAddr, master: SocketAddr) -> Option<LocalNetwork> {
    let ip = canonical_addr(listen).ip();
    if ip.is_unspecified() {
        return local_network(master);
    }
    Some(LocalNetwork { addr: ip, prefix_len: prefix_len(ip) })
}

/// The local network this host reaches `target` through: the source address the system's
/// routing table picks for it (no packet is sent), with the prefix length of the interface
/// that holds that address. `None` when there is no route.
pub(crate) fn local_network(target: SocketAddr) -> Option<LocalNetwork> {
    let target = canonical_addr(target);
    let unspecified: IpAddr = match target {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let probe = UdpSocket::bind((unspecified, 0)).ok()?;
    probe.connect(target).ok()?;
    let addr = probe.local_addr().ok()?.ip();
    Some(LocalNetwork { addr, prefix_len: prefix_len(addr) })
}

/// The prefix length of the interface holding `addr`; /24 (IPv4) or /64 (IPv6) when no
/// interface lists it (a container with an unusual setup).
fn prefix_len(addr: IpAddr) -> u8 {
    let found = if_addrs::get_if_addrs().ok().and_then(|ifaces| {
        ifaces.into_iter().find(|i| i.ip() == addr).map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) => u32::from(v4.netmask).count_ones() as u8,
            if_addrs::IfAddr::V6(v6) => u128::from(v6.netmask).count_ones() as u8,
        })
    });
    found.unwrap_or(if addr.is_ipv4() { 24 } else { 64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_listening_address_is_the_nodes_own() {
        let master = "127.0.0.1:9".parse().unwrap();
        let named = own_network("127.0.0.2:0".parse().unwrap(), master).unwrap();
        assert_eq!(named.addr, IpAddr::from(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(named.prefix_len, 24, "no interface lists 127.0.0.2 itself");
        let any = own_network("0.0.0.0:0".parse().unwrap(), master).unwrap();
        assert_eq!(any.addr, IpAddr::from(Ipv4Addr::LOCALHOST), "the route's source address");
    }

    #[test]
    fn the_route_to_loopback_is_on_loopbacks_network() {
        let net = local_network("127.0.0.1:9".parse().unwrap()).unwrap();
        assert_eq!(net.addr, IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(net.prefix_len, 8, "lo is 127.0.0.1/8");
    }

    #[tokio::test]
    async fn udp_and_tcp_share_one_port() {
        let (sockets, port) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_ne!(port, 0);
        use crate::Transport;
        let addrs = sockets.local_addrs();
        assert!(addrs.iter().all(|a| a.port() == port), "{addrs:?}");
        // The port is taken now, for both protocols: a second bind names the address.
        let again = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let Err(err) = bind(again).await else { panic!("the port is in use") };
        assert!(matches!(err, StartError::Bind { addr, .. } if addr == again), "{err}");
    }
}
