//! The Kademlia DHT, sans-IO: routing table, iterative lookups and signed records.
//!
//! DESIGN.md: arbitrary data location uses Kademlia (160-bit ids, k-buckets, k = 20, α = 3,
//! iterative parallel lookups, ping / store / find_node / find_value) next to the management
//! tree node → LSN → master. This module holds the protocol parts that need no I/O:
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | [`DhtConfig`]: the parameters, with their sources |
//! | [`routing`] | [`RoutingTable`]: k-buckets, LRS rule, splitting, subnet limit, refresh |
//! | [`linger`] | [`Lingering`]: which silent sessions the DHT keeps open |
//! | [`lookup`] | [`Lookup`]: the iterative find_node / find_value state machine |
//! | [`record`] | [`RecordStore`]: record keys, signing and verification, storage rules |
//! | [`service`] | [`Dht`]: the service a node embeds (answers, queries, timers, join transfer) |
//! | [`traffic`] | [`DhtTraffic`]: messages and bytes sent, by class (query, maintenance, answers) |
//! | [`persist`] | [`StoreOp`], [`persist::load`]: records and routing table through the `Store` trait |
//! | [`event`] | [`DhtEvent`], [`DhtError`], [`DhtCommand`]: query results and requests |
//!
//! Each module's documentation states its rules; the types are re-exported here.
//!
//! Like every machine in the core they take `now` as input and never read a clock; the only
//! randomness (refresh targets) comes from a seed. The overlay node owns one [`RoutingTable`],
//! one [`RecordStore`] and any number of running [`Lookup`]s, and translates between them and
//! `Kad*` messages on its sessions.

pub mod config;
pub mod event;
pub mod linger;
pub mod lookup;
pub mod persist;
pub mod record;
pub mod routing;
pub mod service;
pub mod traffic;

pub use config::{
    DhtConfig, DhtMode, DEFAULT_ALPHA, DEFAULT_CACHE_TTL, DEFAULT_K, DEFAULT_LIVENESS_WINDOW,
    DEFAULT_MAX_LINGERING, DEFAULT_MAX_PER_SUBNET, DEFAULT_MAX_RECORDS,
    DEFAULT_MAX_RECORDS_PER_PUBLISHER, DEFAULT_MAX_RECORD_SIZE, DEFAULT_RECORD_TTL,
    DEFAULT_REFRESH_INTERVAL, DEFAULT_REPUBLISH_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SESSION_LINGER,
};
pub use event::{DhtCommand, DhtError, DhtEvent, QueryId, QueryStats};
pub use linger::{LingerUpdate, Lingering};
pub use lookup::{Lookup, LookupKind, LookupOutcome, LookupRequest, LookupResult};
pub use persist::{Saved, StoreOp};
pub use record::{KeyKind, RecordError, RecordEvent, RecordStore, StoreOutcome};
pub use routing::{InsertOutcome, RoutingEntry, RoutingEvent, RoutingTable, MAX_FAILURES};
pub use service::Dht;
pub use traffic::{DhtTraffic, Tally, UpkeepCauses};

/// Whether the sender of a `Kad*` message says it is a DHT client (see [`DhtMode`]); `None`
/// for other messages.
pub fn sent_by_client(message: &crate::wire::Message) -> Option<bool> {
    use crate::wire::Message as M;
    Some(match message {
        M::KadPing(m) => m.client,
        M::KadPong(m) => m.client,
        M::KadStore(m) => m.client,
        M::KadStored(m) => m.client,
        M::KadFindNode(m) => m.client,
        M::KadNodes(m) => m.client,
        M::KadFindValue(m) => m.client,
        M::KadValue(m) => m.client,
        M::KadRenew(m) => m.client,
        M::KadRenewed(m) => m.client,
        _ => return None,
    })
}

/// Marks a `Kad*` message as sent by a DHT client or a server; other messages are left alone.
pub(crate) fn mark_client(message: &mut crate::wire::Message, client: bool) {
    use crate::wire::Message as M;
    match message {
        M::KadPing(m) => m.client = client,
        M::KadPong(m) => m.client = client,
        M::KadStore(m) => m.client = client,
        M::KadStored(m) => m.client = client,
        M::KadFindNode(m) => m.client = client,
        M::KadNodes(m) => m.client = client,
        M::KadFindValue(m) => m.client = client,
        M::KadValue(m) => m.client = client,
        M::KadRenew(m) => m.client = client,
        M::KadRenewed(m) => m.client = client,
        _ => {}
    }
}

/// Whether `message` belongs to the DHT protocol.
pub fn is_dht_message(message: &crate::wire::Message) -> bool {
    sent_by_client(message).is_some()
}
