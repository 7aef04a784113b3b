//! The hierarchical overlay: Node → Local Super Node (LSN) → Master (thesis 4.1–4.3, 5.2–5.4).
//!
//! * A [`Node`] finds its subnet's LSN (LAN discovery, cached LSNs, then the master's
//!   `LsnQuery`), joins it, or becomes the LSN when there is none. Through its LSN it is present
//!   at the master.
//! * An LSN pings its children, ranks them by uptime (counted no further back than it has
//!   known them) and shares the ranking (the neighbour list). The two top-ranked children are
//!   **hot standbys**: the LSN heartbeats them often, and when it dies the first takes over at
//!   once and tells the children it knows, with no round trip to the master; the second takes
//!   over when the first does not (or finishes the first's takeover when that one dies in
//!   it). Other children keep a slow liveness check as the fallback.
//! * LSNs report presence to the master as **deltas** with a digest of their child set; the
//!   master asks for a resync when its view diverges.
//! * The [`Master`] keeps the topology, emits presence events, and delivers application
//!   messages end to end (sealed envelopes the LSN forwards but cannot read).
//!
//! Both are sans-IO [`Machine`](crate::Machine)s built on the [`Endpoint`](crate::Endpoint) link
//! layer, run by the `fleetmesh` crate's driver or the simulator.

mod config;
mod digest;
pub mod fleet;
pub mod gsn_ticket;
pub mod query;
pub use fleet::Audience;
pub mod inventory;
pub mod master;
pub mod node;
mod refusals;
mod subnet;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cascade;
#[cfg(test)]
mod tests_dht;
#[cfg(test)]
mod tests_durable;
#[cfg(test)]
mod tests_isolation;
#[cfg(test)]
mod tests_loss;
#[cfg(test)]
mod tests_trust;
#[cfg(test)]
mod tests_uplink;

pub use config::{LocalNetwork, MasterConfig, OverlayConfig, RelayLimits};
pub use digest::child_digest;
pub use master::{
    DeliveryError, DeliveryId, KnownNode, Master, MasterCommand, MasterEvent, MasterSaved,
    PresenceEvent, QueryOutcome, RequestError, RequestId, Topology, FLEET_TABLE, MAX_REPORT_BATCH,
    OUTBOX_TABLE,
};
pub use node::{
    relay_addr, BulkError, BulkStats, GsnStats, Node, NodeCommand, NodeEvent, NodeState,
    NodeStatus, ReportError, RespondError, MAX_ANSWER_LEN, MAX_HANDLED, MAX_LOGGED_BYTES,
    MAX_PENDING_REPORTS, REPORT_LIFETIME, REQUESTS_TABLE,
};
pub use refusals::Refusals;
pub use subnet::SubnetKey;
