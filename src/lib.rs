//! fleetmesh core.
#![allow(missing_docs)]
mod id;
pub mod identity;
mod time;
pub mod trust;
pub mod wire;
pub mod endpoint;
#[cfg(test)]
mod harness;

pub use id::{Distance, NodeId, ParseNodeIdError, NODE_ID_LEN};
pub use identity::Identity;
pub use time::Timestamp;
pub mod secure;
pub mod discovery;
pub mod store;
pub mod transport;
pub use discovery::{Candidate, Discovery, DiscoveryError, MemoryDiscovery};
pub use store::{MemoryStore, Store, StoreError};
pub use transport::{Transmit, Transport, TransportError};
