//! TCP transport for fleetmesh: [`TcpTransport`] carries datagrams as length-prefixed frames
//! over TCP connections, for networks where UDP is blocked.
//!
//! The same code runs over tokio's sockets ([`TcpTransport::bind`]) and, with the `turmoil`
//! feature, over turmoil's simulated ones (`TcpTransport::bind_turmoil`); both constructors are
//! available in one build.
//!
//! ```no_run
//! use fleetmesh_driver::Transport;
//! use fleetmesh_tcp::TcpTransport;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fleetmesh_driver::TransportError> {
//! let transport = TcpTransport::bind("127.0.0.1:4433".parse().unwrap()).await?;
//! let mut buf = vec![0u8; transport.max_datagram_size()];
//! let (len, src) = transport.recv_from(&mut buf).await?;
//! // `src` is the peer's listening address; the reply reuses the peer's connection.
//! transport.send_to(src, &buf[..len]).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Wire format
//! Every frame is a 4-byte big-endian length and then that many bytes; a length above
//! [`MAX_DATAGRAM_SIZE`] is refused from the header alone, before anything is allocated. The
//! dialer's first frame is a hello: the 4 bytes `fmT1` and its listening port (2 bytes, big
//! endian). Every later frame, in either direction, is one datagram.
//!
//! # Connections
//! * **One connection per peer, both directions.** The acceptor files a connection under
//!   `(IP the connection comes from, port from the hello)` — the peer's listening address —
//!   and reports that as the source of its datagrams, so replies go back over the same
//!   connection. Only the port is taken from the peer, so it cannot claim another host's
//!   address. Nor can it take over another peer's connection by announcing its port (hosts
//!   behind one NAT share an IP): while a live connection is filed under the announced
//!   address, a new one is filed, and its datagrams reported, under the address it really
//!   comes from. A dialer whose listener has a specific IP dials from that IP, so the address
//!   the acceptor observes is the one it listens on.
//! * **Dialing** happens on the first send to an address with no open connection, bounded by
//!   [`TcpConfig::with_connect_timeout`]; refused, unreachable and timed-out dials are
//!   [`TransportError::Unreachable`](fleetmesh_driver::TransportError::Unreachable).
//! * **Broken connections:** if writing to an open connection fails, the connection is dropped,
//!   one new connection is dialed and the datagram is sent on it; only if that fails does the
//!   send fail. A peer that closed or restarted is normally noticed earlier, by the reader.
//!   As with any TCP stream, a datagram written just before the peer's close is noticed can be
//!   lost without an error: delivery is best effort.
//! * **Idle connections** (no frame either way for [`TcpConfig::with_idle_timeout`], default
//!   60 s) are closed; the next send dials again.
//! * **Bad input:** a malformed or oversized frame, a bad hello or no hello in time closes that
//!   connection only (logged with `tracing::debug!`).
//! * **Simultaneous dials:** two sends racing to a new peer, or two peers dialing each other at
//!   once, can open two connections. The one filed under the peer's listening address is used
//!   for sending to it (the newest one we dialed; one it dialed only if none was live there);
//!   the other keeps delivering until it idles out.
//!
//! # Addresses
//! IPv4 and IPv6 are both supported. Sending to the other family than the listener's fails
//! with [`TransportError::AddressFamily`](fleetmesh_driver::TransportError::AddressFamily), since the
//! peer could not dial back, except from a tokio listener on `[::]`, which is dual stack where
//! the OS allows (Linux by default; tokio does not set `IPV6_V6ONLY`). IPv4-mapped peer
//! addresses are reported as plain IPv4. Turmoil is never dual stack.
//!
//! # Receiving
//! A reader task per connection pushes `(source, datagram)` into one queue
//! ([`TcpConfig::with_recv_queue`]) that `recv_from` drains; `recv_from` is cancel safe. A
//! datagram longer than the caller's buffer is consumed and reported as
//! [`TransportError::TooLarge`](fleetmesh_driver::TransportError::TooLarge) with `max` set to the
//! buffer's length, never truncated.
//!
//! # Layout
//! * `config.rs`: [`TcpConfig`].
//! * `frame.rs`: the wire format, pure encode and decode functions.
//! * `addr.rs`: address-family rules (pure functions).
//! * `net.rs`: tokio and turmoil listeners and streams behind crate-private enums.
//! * `conn.rs`: one connection's write half, idle clock and close signal.
//! * `reader.rs`: the per-connection reader task (hello, frames, idle timeout).
//! * `transport.rs`: [`TcpTransport`], the connection table, dialing and the accept loop.
//! * `error.rs`: mapping `io::Error`s to [`TransportError`](fleetmesh_driver::TransportError).

mod addr;
mod config;
mod conn;
mod error;
mod frame;
mod net;
mod reader;
mod transport;

pub use config::{TcpConfig, DEFAULT_MAX_ACCEPTED, DEFAULT_MAX_ACCEPTED_PER_IP};
#[doc(hidden)]
pub use frame::{
    encode as encode_frame, hello as hello_frame, read_accepted, Accepted, FrameError,
};
pub use transport::{TcpStats, TcpTransport};

/// The largest datagram this transport carries; the same as UDP over IPv4, so the overlay can
/// use any transport interchangeably.
pub const MAX_DATAGRAM_SIZE: usize = 65_507;
