//! UDP transport for fleetmesh: [`UdpTransport`] sends each datagram as one UDP datagram.
//!
//! The same code runs over `tokio::net::UdpSocket` ([`UdpTransport::bind`]) and, with the
//! `turmoil` feature, over turmoil's simulated `UdpSocket` (`UdpTransport::bind_turmoil`); both
//! constructors are available in one build.
//!
//! ```no_run
//! use fleetmesh_driver::Transport;
//! use fleetmesh_udp::UdpTransport;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fleetmesh_driver::TransportError> {
//! let transport = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let mut buf = vec![0u8; transport.max_datagram_size()];
//! let (len, src) = transport.recv_from(&mut buf).await?;
//! transport.send_to(src, &buf[..len]).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Addresses
//! * IPv4 and IPv6 sockets are both supported. Sending to the other family fails with
//!   [`TransportError::AddressFamily`](fleetmesh_driver::TransportError::AddressFamily), except from a
//!   tokio socket bound to the unspecified IPv6 address `[::]`: tokio does not set
//!   `IPV6_V6ONLY`, so on Linux (where `net.ipv6.bindv6only` defaults to 0) that socket is dual
//!   stack, and IPv4 destinations are sent as IPv4-mapped IPv6 addresses. Where the OS makes
//!   `[::]` IPv6-only (Windows by default, Linux with the sysctl set to 1) the OS refuses such
//!   sends (on Linux with `ENETUNREACH`, reported as unreachable). The option is left as the
//!   OS sets it.
//!
//! # TTL
//! [`send_limited`](fleetmesh_driver::Transport::send_limited) sends one datagram with a
//! given IP TTL (IPv6 hop limit), for the first copy of a hole punch. The TTL is a socket
//! option, so a limited send holds a lock that other sends from this transport also take,
//! sets it, sends and puts the old value back: no other datagram leaves with it. A turmoil
//! socket sends the datagram as any other.
//! * Sources are reported in canonical form: an IPv4-mapped source on a dual-stack socket is
//!   reported as the plain IPv4 address, so it compares equal to the address peers know.
//! * [`local_addrs`](fleetmesh_driver::Transport::local_addrs) returns the bound address as is, which
//!   is unspecified (`0.0.0.0` or `[::]`) for a wildcard bind.
//! * Turmoil sockets are never dual stack, and turmoil panics if the bound address's family
//!   differs from the simulated host's.
//!
//! # Receive buffers
//! UDP itself truncates a datagram that does not fit the receive buffer. This transport never
//! does: with a buffer shorter than [`RECV_SCRATCH_LEN`] it receives into an internal buffer
//! big enough for any UDP datagram and copies out. A datagram longer than the caller's buffer
//! is consumed and reported as [`TransportError::TooLarge`](fleetmesh_driver::TransportError::TooLarge)
//! with `size` its real length and `max` the buffer's length. Passing a buffer of
//! [`MAX_DATAGRAM_SIZE`] bytes avoids that error for anything a fleetmesh peer sends.
//!
//! ICMP errors that some systems report on a later receive (Windows' `WSAECONNRESET` after
//! sending to a closed port) are logged and skipped: they belong to an earlier send, not to
//! this receive.
//!
//! # Layout
//! * `socket.rs`: the tokio and turmoil sockets behind one crate-private enum; TTL-limited
//!   sends.
//! * `addr.rs`: address-family checks and IPv4-mapped address handling (pure functions).
//! * `error.rs`: mapping `io::Error`s to [`TransportError`](fleetmesh_driver::TransportError).
//! * `transport.rs`: [`UdpTransport`] and its [`Transport`](fleetmesh_driver::Transport) impl.

mod addr;
mod error;
mod socket;
mod transport;

pub use transport::UdpTransport;

/// The largest datagram this transport sends: the largest UDP payload over IPv4 (65,535 minus
/// 20 bytes of IP header and 8 of UDP header). Used for IPv6 too, so that any datagram a
/// fleetmesh peer sends fits every path.
pub const MAX_DATAGRAM_SIZE: usize = 65_507;

/// Receive buffers at least this long are received into directly; shorter ones go through an
/// internal buffer of this length. One byte more than any UDP payload can be, so a receive
/// that fills it exactly is known to be truncated (only possible on turmoil, which has no size
/// limit).
pub const RECV_SCRATCH_LEN: usize = 65_536;
