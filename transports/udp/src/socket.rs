//! The sockets [`UdpTransport`](crate::UdpTransport) runs over: tokio's, and turmoil's
//! simulated one with the `turmoil` feature.
//!
//! An enum rather than a generic parameter keeps `UdpTransport` a single public type that works
//! with either, in the same build.

use std::{
    io,
    net::SocketAddr,
    sync::{Mutex, PoisonError},
};

/// A bound UDP socket.
#[derive(Debug)]
pub(crate) enum Socket {
    /// A real socket.
    Tokio(Real),
    /// A socket in a turmoil simulation.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::UdpSocket),
}

/// A tokio socket, and the lock that keeps other sends out while a limited send has lowered
/// the socket's TTL (it is a socket option, not a per-datagram one, in the safe API).
#[derive(Debug)]
pub(crate) struct Real {
    socket: tokio::net::UdpSocket,
    ttl: Mutex<()>,
}

impl Real {
    pub(crate) fn new(socket: tokio::net::UdpSocket) -> Self {
        Real { socket, ttl: Mutex::new(()) }
    }

    async fn send_to(&self, buf: &[u8], dst: SocketAddr, ttl: Option<u8>) -> io::Result<usize> {
        loop {
            self.socket.writable().await?;
            let sent = {
                let _held = self.ttl.lock().unwrap_or_else(PoisonError::into_inner);
                match ttl {
                    None => self.socket.try_send_to(buf, dst),
                    Some(ttl) => self.try_send_limited(buf, dst, ttl),
                }
            };
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Lowers the TTL (IPv4, also for IPv4-mapped destinations) or hop limit (IPv6), sends,
    /// and puts the old value back, whatever the send did.
    fn try_send_limited(&self, buf: &[u8], dst: SocketAddr, ttl: u8) -> io::Result<usize> {
        let sock = socket2::SockRef::from(&self.socket);
        let v4 = match dst {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        let set = |value: u32| {
            if v4 {
                sock.set_ttl_v4(value)
            } else {
                sock.set_unicast_hops_v6(value)
            }
        };
        let old = if v4 { sock.ttl_v4()? } else { sock.unicast_hops_v6()? };
        set(u32::from(ttl))?;
        let sent = self.socket.try_send_to(buf, dst);
        let restored = set(old);
        let sent = sent?;
        restored?;
        Ok(sent)
    }

    /// The socket's current TTL towards `dst`'s family (for tests).
    #[cfg(test)]
    pub(crate) fn ttl_towards(&self, dst: SocketAddr) -> io::Result<u32> {
        let sock = socket2::SockRef::from(&self.socket);
        match dst {
            SocketAddr::V6(a) if a.ip().to_ipv4_mapped().is_none() => sock.unicast_hops_v6(),
            _ => sock.ttl_v4(),
        }
    }
}

impl Socket {
    /// Sends `buf` to `dst`, with the IP TTL `ttl` where the socket can set it (a turmoil
    /// socket sends it as any other).
    pub(crate) async fn send_to(
        &self,
        buf: &[u8],
        dst: SocketAddr,
        ttl: Option<u8>,
    ) -> io::Result<usize> {
        match self {
            Self::Tokio(s) => s.send_to(buf, dst, ttl).await,
            #[cfg(feature = "turmoil")]
            Self::Turmoil(s) => s.send_to(buf, dst).await,
        }
    }

    /// Cancel safe for both variants: neither takes a datagram off its queue until it returns.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Self::Tokio(s) => s.socket.recv_from(buf).await,
            #[cfg(feature = "turmoil")]
            Self::Turmoil(s) => s.recv_from(buf).await,
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tokio(s) => s.socket.local_addr(),
            #[cfg(feature = "turmoil")]
            Self::Turmoil(s) => s.local_addr(),
        }
    }

    /// Whether an IPv6 wildcard bind also carries IPv4 (as IPv4-mapped addresses).
    pub(crate) fn dual_stack(&self) -> bool {
        match self {
            Self::Tokio(_) => true,
            // Turmoil routes by the literal destination IP and has no mapped addresses.
            #[cfg(feature = "turmoil")]
            Self::Turmoil(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A limited send arrives (loopback delivers even a TTL of 1) and leaves the socket's TTL
    /// as it was, for IPv4, IPv4 from a dual-stack socket, and IPv6.
    #[tokio::test]
    async fn a_limited_send_arrives_and_leaves_the_socket_ttl_as_it_was() {
        let cases = [("127.0.0.1:0", "127.0.0.1:0", false), ("[::]:0", "127.0.0.1:0", true)];
        let v6 = [("[::1]:0", "[::1]:0", false)];
        let v6_up = std::net::UdpSocket::bind("[::1]:0").is_ok();
        for (bind, rx, mapped) in cases.into_iter().chain(v6.into_iter().filter(|_| v6_up)) {
            let rx = tokio::net::UdpSocket::bind(rx).await.unwrap();
            let tx = Real::new(tokio::net::UdpSocket::bind(bind).await.unwrap());
            let mut dst = rx.local_addr().unwrap();
            if mapped {
                let SocketAddr::V4(v4) = dst else { unreachable!() };
                dst = SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port());
            }
            let before = tx.ttl_towards(dst).unwrap();
            assert_ne!(before, 1, "{bind}");
            let sent = tx.send_to(b"punch", dst, Some(1)).await.unwrap();
            assert_eq!(sent, 5);
            assert_eq!(tx.ttl_towards(dst).unwrap(), before, "{bind}: TTL put back");
            tx.send_to(b"after", dst, None).await.unwrap();
            let mut buf = [0u8; 16];
            for expect in [&b"punch"[..], b"after"] {
                let (n, _) = rx.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], expect, "{bind}");
            }
        }
    }
}
