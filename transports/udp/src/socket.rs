//! The sockets [`UdpTransport`](crate::UdpTransport) runs over: tokio's, and turmoil's
//! simulated one with the `turmoil` feature.
//!
//! An enum rather than a generic parameter keeps `UdpTransport` a single public type that works
//! with either, in the same build.

use std::{io, net::SocketAddr};

/// A bound UDP socket.
#[derive(Debug)]
pub(crate) enum Socket {
    /// A real socket.
    Tokio(tokio::net::UdpSocket),
    /// A socket in a turmoil simulation.
    #[cfg(feature = "turmoil")]
    Turmoil(turmoil::net::UdpSocket),
}

impl Socket {
    pub(crate) async fn send_to(&self, buf: &[u8], dst: SocketAddr) -> io::Result<usize> {
        match self {
            Self::Tokio(s) => s.send_to(buf, dst).await,
            #[cfg(feature = "turmoil")]
            Self::Turmoil(s) => s.send_to(buf, dst).await,
        }
    }

    /// Cancel safe for both variants: neither takes a datagram off its queue until it returns.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Self::Tokio(s) => s.recv_from(buf).await,
            #[cfg(feature = "turmoil")]
            Self::Turmoil(s) => s.recv_from(buf).await,
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tokio(s) => s.local_addr(),
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
