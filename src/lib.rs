//! # fleetmesh
//!
//! A communications layer for device management: every managed device joins one overlay with
//! no configuration, stays reachable through NATs, firewalls and network moves, and the
//! management server (the *master*) can reach any of them at any moment, securely.
//!
//! This crate runs the protocol: the tokio [`driver`], the pluggable I/O traits and
//! [`DualTransport`]. The protocol itself is the sans-IO crate `fleetmesh-proto` (no runtime, no
//! sockets, no clock), re-exported here module for module, so `fleetmesh::overlay::Node` and
//! `fleetmesh_proto::overlay::Node` are the same type. Transports live in their own crates
//! (`fleetmesh-memory`, `fleetmesh-udp`, `fleetmesh-tcp`), LAN discovery with its LSN cache in
//! `fleetmesh-lan` (`discovery/lan`), whole-network test harnesses in
//! `fleetmesh-testkit`, and the `fleetmesh` command in `fleetmesh-cli`.
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
//! | [`transport`], [`discovery`], [`store`] | the pluggable I/O traits, with in-memory implementations |
//! | [`DualTransport`] | a UDP and a TCP transport as one: each [`Transmit`] goes over the [`Path`] the endpoint chose (TCP fallback, `endpoint/path.rs`) |
//! | `sim` (feature `sim`) | a deterministic virtual-time simulation of a whole fleet over the real state machines |
//! | [`driver`] | the async task that runs a sans-IO machine over a transport; the only clock reader |
//! | [`Timestamp`] | protocol time, passed into the core on every call |
//!
//! ## The run loop
//!
//! Every state machine in the core ([`endpoint::Endpoint`], the overlay's node and master built
//! on it) implements [`Machine`]: the same methods, never a clock or a socket read:
//!
//! * `handle_datagram(now, src, bytes)`, `handle_timeout(now)` and request methods such as
//!   `send(now, …)` **mutate** the machine;
//! * `poll_transmit()`, `poll_event()` and `poll_timeout()` **drain** what it produced.
//!
//! A driver repeats: feed one input, then drain transmits (send them) and events (deliver them)
//! until empty, then wait for the next datagram, command, or the deadline `poll_timeout`
//! returned. [`driver::run`] does exactly that over a [`Transport`] with tokio; the test
//! harness and the fleet simulator do it over a simulated network with virtual time.
//!
//! ```
//! use fleetmesh::{endpoint::{Endpoint, EndpointConfig, Event}, trust::{Authority, CertFlags}, Identity, Timestamp};
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

pub mod discovery;
pub mod driver;
mod dual;
pub mod store;
pub mod transport;

/// The simulator, from the protocol core (feature `sim`).
#[cfg(feature = "sim")]
pub use fleetmesh_proto::sim;
pub use fleetmesh_proto::{codec, dht, endpoint, identity, overlay, secure, trust, wire};

pub use discovery::{
    Candidate, Discovery, DiscoveryError, DiscoveryRequest, MemoryDiscovery, Source,
};
pub use dual::DualTransport;
pub use fleetmesh_proto::{
    Distance, Endpoint, EndpointConfig, Event, Identity, KeyFileError, Machine, NodeId,
    ParseNodeIdError, Timestamp, NODE_ID_LEN,
};
pub use store::{MemoryStore, Store, StoreError};
pub use transport::{Path, Transmit, Transport, TransportError};
