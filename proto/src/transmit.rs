//! What the core hands its driver to send: a [`Transmit`] over a [`Path`].
//!
//! The core never touches a socket; the driver (the `fleetmesh` crate's `Transport`
//! implementations, or the simulator) carries each transmit over the path the core chose.

use std::net::SocketAddr;

/// Which kind of transport carries a datagram. The core picks one per peer (see
/// [`EndpointConfig::tcp_fallback`](crate::endpoint::EndpointConfig::tcp_fallback)); a driver with a
/// single transport sends every path over it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Path {
    /// Datagrams over UDP: the first choice.
    #[default]
    Udp,
    /// Length-prefixed frames over a TCP connection: for peers UDP does not reach, in one
    /// direction or both.
    Tcp,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Path::Udp => "udp",
            Path::Tcp => "tcp",
        })
    }
}

/// A datagram the core wants sent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Where to.
    pub dst: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
    /// Over which kind of transport.
    pub path: Path,
    /// The IP time-to-live (IPv6 hop limit) to send it with; `None` is the socket's default.
    /// Set only on a NAT opener, which a hole punch sends ahead of the peer's
    /// ([`EndpointConfig::punch_ttl`](crate::endpoint::EndpointConfig::punch_ttl)): it
    /// opens our own NAT and expires before the peer's. Drivers that cannot set it send the
    /// datagram as usual (the opener is one byte the peer ignores); over TCP it means nothing.
    pub ttl: Option<u8>,
}
