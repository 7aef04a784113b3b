//! An in-memory network for fleetmesh: every [`MemoryTransport`] is a socket address bound on a
//! shared [`MemoryHub`], and datagrams move between them through channels.
//!
//! The hub simulates an imperfect network: each directed link has a [`LinkConfig`] (latency and
//! loss), links can be partitioned and healed, and every loss decision is drawn from a
//! ChaCha RNG seeded at [`MemoryHub::new`], so a run with the same seed and the same order of
//! sends loses the same datagrams. Latency is applied with [`tokio::time::sleep_until`], so
//! tokio's paused test clock (`#[tokio::test(start_paused = true)]`) or turmoil drives it.
//!
//! ```
//! use std::time::Duration;
//!
//! use fleetmesh_driver::Transport;
//! use fleetmesh_memory::{LinkConfig, MemoryHub};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fleetmesh_driver::TransportError> {
//! let hub = MemoryHub::new(7);
//! hub.set_default_link(LinkConfig::new(Duration::from_millis(5), 0.0));
//! let a = hub.bind("10.0.0.1:4000".parse().unwrap())?;
//! let b = hub.bind("10.0.0.2:4000".parse().unwrap())?;
//!
//! a.send_to(b.local_addr(), b"hello").await?;
//! let mut buf = [0u8; 64];
//! let (len, src) = b.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..len], src), (&b"hello"[..], a.local_addr()));
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//! * Addresses are matched exactly: there is no wildcard (`0.0.0.0`) binding. Port 0 picks a
//!   free port in the ephemeral range.
//! * A datagram to an address nobody has bound is dropped silently, as UDP would. The
//!   destination is looked up when the datagram arrives, after its latency.
//! * Each receiver has a bounded queue ([`MemoryHub::set_queue_capacity`]); datagrams arriving
//!   at a full queue are dropped, like a full socket buffer.
//! * Datagrams on a zero-latency link arrive in send order. With latency each datagram has its
//!   own timer task, so datagrams due at the same instant may be reordered, which the
//!   [`Transport`](fleetmesh_driver::Transport) contract allows.
//! * A datagram larger than the buffer passed to `recv_from` is consumed and reported as
//!   [`TransportError::TooLarge`](fleetmesh_driver::TransportError::TooLarge) with `max` set to the
//!   buffer's length; it is never truncated.
//!
//! # Layout
//! * `link.rs`: [`LinkConfig`], the latency and loss of one directed link.
//! * `hub.rs`: [`MemoryHub`], the shared routing table, link table and RNG.
//! * `transport.rs`: [`MemoryTransport`], one bound address and its receive queue.

mod hub;
mod link;
mod transport;

pub use hub::MemoryHub;
pub use link::LinkConfig;
pub use transport::MemoryTransport;

/// The largest datagram the in-memory network carries: the largest UDP payload over IPv4, so
/// code tested here fits the real transports.
pub const MAX_DATAGRAM_SIZE: usize = 65_507;

/// The receive queue length of a newly bound transport, in datagrams.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
