//! # fleetmesh
//!
//! A communications layer for device management: every managed device joins one overlay with
//! no configuration, stays reachable through NATs, firewalls and network moves, and the
//! management server (the *master*) can reach any of them at any moment, securely.
//!
//! This crate is the one to embed. Its front door, [`NodeBuilder`] and [`MasterBuilder`], turns
//! a data directory and a few settings into a running node or master (key file, certificate or
//! enrollment, UDP and TCP on one port, LAN discovery, the persistent store) and hands back a
//! typed handle. Underneath, every part is a crate of its own and re-exported here:
//!
//! * `fleetmesh-proto`: the sans-IO protocol core (no runtime, no sockets, no clock);
//! * `fleetmesh-driver`: the tokio driver and the `Transport`, `Discovery` and `Store` traits;
//! * `fleetmesh-udp`, `fleetmesh-tcp`, `fleetmesh-memory`: transports; `fleetmesh-lan`: LAN
//!   discovery with its LSN cache; `fleetmesh-redb`: the persistent store;
//! * `fleetmesh-testkit`: whole-network test harnesses; `fleetmesh-cli`: the `fleetmesh` command.
//!
//! Imports run one way: proto ← driver ← transports ← this crate.
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

mod front;

pub use fleetmesh_driver::{
    discovery, driver, store, transport, Candidate, Discovery, DiscoveryError, DiscoveryRequest,
    DualTransport, MemoryDiscovery, MemoryStore, Path, Source, Store, StoreError, Transmit,
    Transport, TransportError,
};
/// The simulator, from the protocol core (feature `sim`).
#[cfg(feature = "sim")]
pub use fleetmesh_proto::sim;
pub use fleetmesh_proto::{
    codec, dht, endpoint, identity, overlay, secure, trust, wire, Distance, Endpoint,
    EndpointConfig, Event, Identity, KeyFileError, Machine, NodeId, ParseNodeIdError, Refused,
    Timestamp, NODE_ID_LEN,
};

pub use front::*;
