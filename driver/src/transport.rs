//! The [`Transport`] trait: how datagrams leave and enter a node.
//!
//! A transport moves opaque datagrams between socket addresses. It knows nothing of sessions,
//! peers or messages: the sans-IO core hands the driver [`Transmit`]s and the driver hands them
//! to the transport. Implementations live in their own crates under `transports/`: in-memory
//! (`fleetmesh-memory`), UDP (`fleetmesh-udp`) and TCP (`fleetmesh-tcp`).

use std::{io, net::SocketAddr, sync::Arc};

use async_trait::async_trait;
pub use fleetmesh_proto::{Path, Transmit};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The datagram exceeds [`Transport::max_datagram_size`] (on send), or the buffer given to
    /// [`Transport::recv_from`] (on receive; the datagram is consumed, never truncated).
    #[error("datagram of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The datagram's size.
        size: usize,
        /// The transport's limit.
        max: usize,
    },
    /// No route to the destination (unknown address, connection refused, host unreachable).
    #[error("{0} is unreachable")]
    Unreachable(SocketAddr),
    /// The address family is not supported by this transport's sockets.
    #[error("address family of {0} not supported by this transport")]
    AddressFamily(SocketAddr),
    /// The transport was shut down.
    #[error("transport is closed")]
    Closed,
    /// Any other I/O failure.
    #[error("transport i/o: {0}")]
    Io(#[from] io::Error),
}

impl TransportError {
    /// Classifies an I/O error from sending to `dst`: a refused connection or an unreachable
    /// host or network names the destination ([`TransportError::Unreachable`]); anything else
    /// stays an I/O error. For transport implementations.
    pub fn from_send(err: io::Error, dst: SocketAddr) -> Self {
        match err.kind() {
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable => TransportError::Unreachable(dst),
            _ => TransportError::Io(err),
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4
/// peers) turned back into plain IPv4, so one peer has one address whatever socket saw it.
pub fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Sends and receives datagrams.
///
/// # Contract
/// * `send_to` either hands the whole datagram to the network or fails; it never sends part of
///   one. Delivery is best effort, as with UDP: a datagram may be lost, duplicated or reordered.
/// * `recv_from` is cancel safe: if its future is dropped before completion no datagram is
///   lost. The driver relies on this, as it polls `recv_from` inside `tokio::select!`.
/// * A datagram larger than the receive buffer is an error, never silently truncated.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends one datagram to `dst`.
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError>;

    /// Receives the next datagram into `buf`, returning its length and source.
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError>;

    /// The addresses this transport is reachable at.
    fn local_addrs(&self) -> Vec<SocketAddr>;

    /// The largest datagram this transport carries.
    fn max_datagram_size(&self) -> usize;

    /// Sends one datagram to `dst` over `path`. Default: a transport of one kind sends every
    /// path the same way ([`send_to`](Self::send_to)); [`DualTransport`](crate::DualTransport)
    /// routes each path to its own transport.
    async fn send_on(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), TransportError> {
        let _ = path;
        self.send_to(dst, datagram).await
    }

    /// Sends one datagram over `path` with the IP time-to-live (IPv6 hop limit) `ttl` (see
    /// [`Transmit::ttl`](fleetmesh_proto::Transmit::ttl)). Default: sends it like any other
    /// ([`send_on`](Self::send_on)); a transport with no TTL to set (memory, TCP) loses
    /// nothing by it, the datagram only travels further than asked.
    async fn send_limited(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
        ttl: u8,
    ) -> Result<(), TransportError> {
        let _ = ttl;
        self.send_on(path, dst, datagram).await
    }

    /// Receives the next datagram and the path it came over. Default:
    /// [`recv_from`](Self::recv_from), reported as [`Path::Udp`]. Cancel safe, as `recv_from`.
    async fn recv_on(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr, Path), TransportError> {
        let (n, src) = self.recv_from(buf).await?;
        Ok((n, src, Path::Udp))
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        (**self).send_to(dst, datagram).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        (**self).recv_from(buf).await
    }
    fn local_addrs(&self) -> Vec<SocketAddr> {
        (**self).local_addrs()
    }
    fn max_datagram_size(&self) -> usize {
        (**self).max_datagram_size()
    }
    async fn send_on(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), TransportError> {
        (**self).send_on(path, dst, datagram).await
    }
    async fn send_limited(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
        ttl: u8,
    ) -> Result<(), TransportError> {
        (**self).send_limited(path, dst, datagram, ttl).await
    }
    async fn recv_on(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr, Path), TransportError> {
        (**self).recv_on(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addr_unmaps_ipv4_only() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:7".parse().unwrap();
        assert_eq!(canonical_addr(mapped), "10.1.2.3:7".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[fd00::1]:7".parse().unwrap();
        assert_eq!(canonical_addr(v6), v6);
    }

    #[test]
    fn unreachable_send_errors_name_the_destination() {
        let dst: SocketAddr = "192.0.2.1:9".parse().unwrap();
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkUnreachable,
        ] {
            assert!(
                matches!(TransportError::from_send(kind.into(), dst), TransportError::Unreachable(d) if d == dst)
            );
        }
        assert!(matches!(
            TransportError::from_send(io::ErrorKind::PermissionDenied.into(), dst),
            TransportError::Io(_)
        ));
    }
}
