//! What the [`Dht`](super::Dht) service reports: query ids, results and typed errors.

use std::time::Duration;

use super::RecordError;
use crate::{
    wire::{Contact, Record},
    NodeId,
};

/// Names one query started on a [`Dht`](super::Dht); its result carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Why a DHT query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// The lookup converged on the nodes closest to the key and none holds a record.
    #[error("no record under the key")]
    NotFound,
    /// Nobody answered in time (every peer asked failed or stayed silent).
    #[error("no peer answered in time")]
    TimedOut,
    /// The routing table is empty: the node has not met any DHT peer yet.
    #[error("no DHT peers known")]
    NoPeers,
    /// The record was refused before it left this node.
    #[error("record refused: {0}")]
    Refused(RecordError),
    /// Every node asked to store the record refused it; `detail` is the first refusal.
    #[error("record refused by the network: {detail}")]
    RefusedByPeers {
        /// What the first refusing peer said.
        detail: String,
    },
}

/// How much a query took: what the simulator reports as hops, requests and latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Depth of the response chain of the lookup (see [`LookupResult::hops`](super::LookupResult::hops));
    /// 0 when answered locally or nobody answered.
    pub hops: u32,
    /// Requests sent (lookup requests and stores).
    pub requests: usize,
    /// Time from start to result.
    pub elapsed: Duration,
}

/// The result of a query.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtEvent {
    /// A put (or provide) finished: `Ok(n)` when `n` nodes (this one included) hold the record.
    Put {
        /// The query.
        query: QueryId,
        /// The record's key.
        key: NodeId,
        /// Nodes that stored it, or why none did.
        result: Result<usize, DhtError>,
        /// Cost.
        stats: QueryStats,
    },
    /// A get, get_from or get_all (find_providers) finished: the verified records found
    /// under the key, one per publisher (a get: those of the first holder; get_all: merged
    /// from every holder among the k closest).
    Got {
        /// The query.
        query: QueryId,
        /// The key.
        key: NodeId,
        /// The records, or why there are none.
        result: Result<Vec<Record>, DhtError>,
        /// Cost.
        stats: QueryStats,
    },
    /// A find_node finished: the closest nodes that answered, closest first.
    FoundNodes {
        /// The query.
        query: QueryId,
        /// The id sought.
        target: NodeId,
        /// The contacts, or why there are none.
        result: Result<Vec<Contact>, DhtError>,
        /// Cost.
        stats: QueryStats,
    },
}

impl DhtEvent {
    /// The query this event answers.
    pub fn query(&self) -> QueryId {
        match self {
            DhtEvent::Put { query, .. }
            | DhtEvent::Got { query, .. }
            | DhtEvent::FoundNodes { query, .. } => *query,
        }
    }

    /// The query's cost.
    pub fn stats(&self) -> QueryStats {
        match self {
            DhtEvent::Put { stats, .. }
            | DhtEvent::Got { stats, .. }
            | DhtEvent::FoundNodes { stats, .. } => *stats,
        }
    }
}

/// A DHT request an application hands to a running node
/// ([`NodeCommand::Dht`](crate::overlay::NodeCommand::Dht)); results come back as
/// [`DhtEvent`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DhtCommand {
    /// Sign `value` under `key` with the node's identity and store it at the k closest nodes.
    Put {
        /// The key (e.g. from [`KeyKind::key`](super::KeyKind::key)).
        key: NodeId,
        /// The value.
        value: Vec<u8>,
    },
    /// Store an already signed record (e.g. one the master signed).
    PutRecord(Box<Record>),
    /// Every record under `key`.
    Get {
        /// The key.
        key: NodeId,
    },
    /// The records under `key` published by `publisher` (or the master) only.
    GetFrom {
        /// The key.
        key: NodeId,
        /// The one publisher accepted besides the master.
        publisher: NodeId,
    },
    /// Announce that this node provides `content` (a content hash), with `offer` as value.
    Provide {
        /// The content's subject bytes (hashed under [`KeyKind::Provider`](super::KeyKind::Provider)).
        content: Vec<u8>,
        /// What the provider offers (how to fetch it).
        offer: Vec<u8>,
    },
    /// The providers of `content`.
    FindProviders {
        /// The content's subject bytes.
        content: Vec<u8>,
    },
    /// The k nodes closest to `target`.
    FindNode {
        /// The id sought.
        target: NodeId,
    },
}
