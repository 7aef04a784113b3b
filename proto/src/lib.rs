//! # fleetmesh-proto
//!
//! A communications layer for device management: every managed device joins one overlay with
//! no configuration, stays reachable through NATs, firewalls and network moves, and the
//! management server (the *master*) can reach any of them at any moment, securely.
//!
//! This crate is the protocol core, sans-IO in the way `quinn-proto` is: no async runtime, no
//! socket, no clock, no global randomness. Time comes in as a [`Timestamp`] on every call and
//! randomness from seeds, so the same inputs give the same run. The `fleetmesh` crate runs it
//! over real transports with tokio (its driver, `DualTransport`, discovery and storage), and the
//! [`sim`] module (feature `sim`) runs a whole fleet of it in virtual time.
//!
//! ## Map of the code
//!
//! | module | what it holds |
//! |---|---|
//! | [`NodeId`], [`Distance`] | 160-bit self-certifying ids (SHA-1 of the ed25519 key), XOR metric |
//! | [`identity`] | a node's key pairs and their owner-only key file |
//! | [`trust`] | network key, admission certificates, revocation lists, enrollment policies |
//! | [`wire`] | the message vocabulary and the versioned CBOR frame ([layout](wire)) |
//! | [`secure`] | Noise XX sessions bound to certificates, replay window, HPKE envelopes ([packet layout](secure)) |
//! | [`dht`] | Kademlia, sans-IO: routing table, iterative lookups, signed records and their store |
//! | [`endpoint`] | the sans-IO link layer: sessions, handshakes, enrollment, timers |
//! | [`overlay`] | the Node → LSN → Master hierarchy: election, failover, presence, delivery |
//! | [`codec`] | CBOR encoding under every encoded type, below `wire`, `trust` and `secure` |
//! | [`Machine`], [`Transmit`], [`Path`], [`discovery`] | what a driver needs: the shared method set, what to send over which path, what to ask discovery |
//! | [`sim`] | a deterministic virtual-time simulation of a whole fleet over the real state machines |
//! | [`Timestamp`] | protocol time, passed into the core on every call |
//!
//! ## The run loop
//!
//! Every state machine in the core ([`endpoint::Endpoint`] now; the overlay node and master
//! build on it) has the same methods and never reads a clock or a socket:
//!
//! * `handle_datagram(now, src, bytes)`, `handle_timeout(now)` and request methods such as
//!   `send(now, …)` **mutate** the machine;
//! * `poll_transmit()`, `poll_event()` and `poll_timeout()` **drain** what it produced.
//!
//! A driver repeats: feed one input, then drain transmits (send them) and events (deliver them)
//! until empty, then wait for the next datagram, command, or the deadline `poll_timeout`
//! returned. The `fleetmesh` crate's `driver::run` does exactly that over a real transport with
//! tokio; the test harness and the fleet simulator do it over a simulated network with virtual
//! time. The [`Machine`] trait names that method set.
//!
//! ```
//! use fleetmesh_proto::{endpoint::{Endpoint, EndpointConfig, Event}, trust::{Authority, CertFlags}, Identity, Timestamp};
//! use rand_core::SeedableRng;
//! use std::time::Duration;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let mut master = Authority::new(Identity::generate(&mut rng));
//! let now = Timestamp::from_secs(1_700_000_000);
//! let mut node = |seed: u8| {
//!     let id = Identity::generate(&mut rng);
//!     let cert = master.issue(&id.verifying_key(), id.x25519_public(), CertFlags::NONE, now, Duration::from_secs(3600));
//!     Endpoint::new(EndpointConfig::new(id, master.network_key()).certificate(cert), [seed; 32])
//! };
//! let (mut a, mut b) = (node(1), node(2));
//! let (addr_a, addr_b) = ("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:4000".parse().unwrap());
//!
//! a.connect(now, addr_b, None);
//! // Shuttle datagrams until both sides are quiet: a tiny, lossless, instant network.
//! loop {
//!     let mut quiet = true;
//!     while let Some(t) = a.poll_transmit() { b.handle_datagram(now, addr_a, &t.payload); quiet = false; }
//!     while let Some(t) = b.poll_transmit() { a.handle_datagram(now, addr_b, &t.payload); quiet = false; }
//!     if quiet { break; }
//! }
//! assert!(matches!(a.poll_event(), Some(Event::Connected { initiator: true, .. })));
//! assert!(a.is_connected(&b.node_id()));
//! ```

pub mod codec;
pub mod dht;
pub mod discovery;
pub mod endpoint;
#[cfg(test)]
mod harness;
mod id;
pub mod identity;
mod machine;
pub mod overlay;
mod refused;
pub mod secure;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod time;
mod transmit;
pub mod trust;
pub mod wire;

pub use discovery::{Candidate, DiscoveryRequest, Source};
pub use endpoint::{Endpoint, EndpointConfig, Event};
pub use id::{Distance, NodeId, ParseNodeIdError, NODE_ID_LEN};
pub use identity::{Identity, KeyFileError};
pub use machine::Machine;
pub use refused::Refused;
pub use time::Timestamp;
pub use transmit::{Path, Transmit};
