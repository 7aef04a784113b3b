//! [`LanConfig`]: where LAN discovery listens, where its queries go, how long it waits.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6},
    path::PathBuf,
    time::Duration,
};

use fleetmesh_driver::NodeId;
use tokio::net::UdpSocket;

/// The UDP port LAN discovery listens on by default.
pub const DEFAULT_PORT: u16 = 7947;

/// The IPv6 link-local multicast group queries go to by default: `ff02::114`, which IANA
/// assigns to "any private experiment".
pub const DEFAULT_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x114);

/// How a [`LanDiscovery`](crate::LanDiscovery) behaves.
#[derive(Clone, Debug)]
pub struct LanConfig {
    /// This node's id: remembering a candidate with it means "we are the LSN now".
    pub node: NodeId,
    /// Keeps fleets on one LAN apart: answers carrying another tag are ignored. Default zeros;
    /// e.g. the first bytes of the network key's id.
    pub network: [u8; 8],
    /// The IPv4 socket (broadcast enabled). Default `0.0.0.0:DEFAULT_PORT`; `None` for none.
    pub bind_v4: Option<SocketAddr>,
    /// The IPv6 socket, joined to [`v6_group`](Self::v6_group). Default `[::]:DEFAULT_PORT`;
    /// `None` for none.
    pub bind_v6: Option<SocketAddr>,
    /// The IPv6 multicast group to join, on interface [`v6_interface`](Self::v6_interface).
    pub v6_group: Option<Ipv6Addr>,
    /// The interface index for the IPv6 group (0: the system's choice).
    pub v6_interface: u32,
    /// Where queries go. Default: `255.255.255.255:DEFAULT_PORT` and
    /// `[ff02::114%v6_interface]:DEFAULT_PORT`. Use the subnet's broadcast address, or unicast
    /// addresses, where the limited broadcast does not reach.
    pub targets: Vec<SocketAddr>,
    /// How long a discovery round collects answers. Default 250 ms.
    pub wait: Duration,
    /// The LSN cache file; `None` keeps the cache in memory only. Default `None`.
    pub cache: Option<PathBuf>,
    /// How many LSNs the cache keeps. Default 8.
    pub cache_len: usize,
}

impl LanConfig {
    /// Defaults for node `node`.
    pub fn new(node: NodeId) -> Self {
        LanConfig {
            node,
            network: [0; 8],
            bind_v4: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT))),
            bind_v6: Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, DEFAULT_PORT))),
            v6_group: Some(DEFAULT_GROUP),
            v6_interface: 0,
            targets: vec![
                SocketAddr::from((Ipv4Addr::BROADCAST, DEFAULT_PORT)),
                SocketAddr::V6(SocketAddrV6::new(DEFAULT_GROUP, DEFAULT_PORT, 0, 0)),
            ],
            wait: Duration::from_millis(250),
            cache: None,
            cache_len: 8,
        }
    }

    /// Keeps the LSN cache in `path` across restarts.
    ///
    /// ```
    /// # use fleetmesh_lan::LanConfig;
    /// let cfg = LanConfig::new(fleetmesh_driver::NodeId::ZERO).cache_file("/var/lib/fleetmesh/lsn-cache");
    /// assert!(cfg.cache.is_some());
    /// ```
    pub fn cache_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache = Some(path.into());
        self
    }

    /// Sends queries to `targets` instead of the defaults.
    ///
    /// ```
    /// # use fleetmesh_lan::LanConfig;
    /// let cfg = LanConfig::new(fleetmesh_driver::NodeId::ZERO).targets(vec!["192.168.1.255:7947".parse().unwrap()]);
    /// assert_eq!(cfg.targets.len(), 1);
    /// ```
    pub fn targets(mut self, targets: Vec<SocketAddr>) -> Self {
        self.targets = targets;
        self
    }

    /// Binds these sockets instead of the defaults (`None`: no socket of that family).
    ///
    /// ```
    /// # use fleetmesh_lan::LanConfig;
    /// let cfg = LanConfig::new(fleetmesh_driver::NodeId::ZERO).bind(Some("127.0.0.1:0".parse().unwrap()), None);
    /// assert!(cfg.bind_v6.is_none());
    /// ```
    pub fn bind(mut self, v4: Option<SocketAddr>, v6: Option<SocketAddr>) -> Self {
        self.bind_v4 = v4;
        self.bind_v6 = v6;
        self
    }
}

/// Binds the socket that hears queries: broadcast on for IPv4, the multicast group joined for
/// IPv6 (a failure to join only means we do not hear multicast queries; we can still ask).
/// The port is shared (`SO_REUSEADDR`, and `SO_REUSEPORT` on Unix), so several nodes on one
/// host each hear every broadcast or multicast query; answers go to the asker's own port
/// ([`open_asking_socket`]), never to this shared one.
pub(crate) async fn open_socket(cfg: &LanConfig, bind: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = shared_udp(bind)?;
    configure(cfg, &socket, bind)?;
    Ok(socket)
}

/// Binds the socket queries go out from, on a port of its own (the address of `listen`, any
/// port): the answers come back to it alone.
pub(crate) async fn open_asking_socket(
    cfg: &LanConfig,
    listen: SocketAddr,
) -> std::io::Result<UdpSocket> {
    let bind = SocketAddr::new(listen.ip(), 0);
    let socket = UdpSocket::bind(bind).await?;
    configure(cfg, &socket, bind)?;
    Ok(socket)
}

fn shared_udp(bind: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    if bind.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    UdpSocket::from_std(socket.into())
}

fn configure(cfg: &LanConfig, socket: &UdpSocket, bind: SocketAddr) -> std::io::Result<()> {
    if bind.is_ipv4() {
        socket.set_broadcast(true)?;
    } else if let Some(group) = cfg.v6_group {
        if let Err(e) = socket.join_multicast_v6(&group, cfg.v6_interface) {
            tracing::debug!(%group, error = %e, "lan discovery: multicast group not joined");
        }
    }
    Ok(())
}
