//! The [`Transport`] trait: how datagrams leave and enter a node.
//!
//! A transport moves opaque datagrams between socket addresses. It knows nothing of sessions,
//! peers or messages: the sans-IO core hands the driver [`Transmit`]s and the driver hands them
//! to the transport. Implementations live in their own crates under `transports/`: in-memory
//! (`fleetmesh-memory`), UDP (`fleetmesh-udp`) and TCP (`fleetmesh-tcp`).

use std::{io, net::SocketAddr, sync::Arc};

use async_trait::async_trait;

/// A datagram the core wants sent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Where to.
    pub dst: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

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
}
