//! # fleetmesh-driver
//!
//! The async half of fleetmesh: the tokio [`driver`] that runs a sans-IO [`Machine`] from
//! `fleetmesh-proto`, the pluggable I/O traits ([`Transport`], [`Discovery`], [`Store`]) with
//! in-memory implementations, and [`DualTransport`] (UDP and TCP as one).
//!
//! Transports (`fleetmesh-memory`, `fleetmesh-udp`, `fleetmesh-tcp`), LAN discovery
//! (`fleetmesh-lan`) and the persistent store (`fleetmesh-redb`) implement these traits and
//! depend on this crate; the `fleetmesh` crate puts them together behind its front door.
//! Imports run one way: `fleetmesh-proto` ← `fleetmesh-driver` ← transports ← `fleetmesh`.
//!
//! The protocol core is re-exported module for module, so `fleetmesh_driver::overlay::Node`,
//! `fleetmesh::overlay::Node` and `fleetmesh_proto::overlay::Node` are the same type.
//!
//! | module | what it holds |
//! |---|---|
//! | [`transport`], [`discovery`], [`store`] | the pluggable I/O traits, with in-memory implementations |
//! | [`DualTransport`] | a UDP and a TCP transport as one: each [`Transmit`] goes over the [`Path`] the endpoint chose |
//! | [`driver`] | the async task that runs a sans-IO machine over a transport; the only clock reader |

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
    ParseNodeIdError, Refused, Timestamp, NODE_ID_LEN,
};
pub use store::{MemoryStore, Store, StoreError};
pub use transport::{Path, Transmit, Transport, TransportError};
