//! Kademlia requests and replies. Each carries an `rpc` number the requester chooses.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::message::Contact;
use crate::{id::serde_bytes_array, NodeId};

/// A signed record stored in the DHT.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Record {
    /// The key (160 bits, the id space).
    pub key: NodeId,
    /// The value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Who published it.
    pub publisher: NodeId,
    /// The publisher's ed25519 public key (its SHA-1 is `publisher`), so any node can verify
    /// a record from a publisher it never met.
    #[serde(with = "serde_bytes_array")]
    pub publisher_key: [u8; 32],
    /// Publisher's version; higher replaces lower.
    pub version: u64,
    /// Expiry, UNIX seconds.
    pub expires_at: u64,
    /// The publisher's ed25519 signature over the fields above.
    #[serde(with = "serde_bytes_array")]
    pub signature: [u8; 64],
}

/// Kademlia ping.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadPing {
    /// Request number.
    pub rpc: u32,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// Kademlia pong.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadPong {
    /// The ping's request number.
    pub rpc: u32,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// Store a record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadStore {
    /// Request number.
    pub rpc: u32,
    /// The record.
    pub record: Record,
    /// A cache copy (paper §2.3: left by a get at the closest node that lacked the value): the
    /// receiver keeps it for its cache TTL only and never republishes it. Absent in frames
    /// from before the field existed, which decode as `false`.
    #[serde(default)]
    pub cache: bool,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// The record was stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadStored {
    /// The store's request number.
    pub rpc: u32,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// Find the contacts closest to `target`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadFindNode {
    /// Request number.
    pub rpc: u32,
    /// The id sought.
    pub target: NodeId,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// Contacts close to a target.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadNodes {
    /// The request answered.
    pub rpc: u32,
    /// Up to k contacts, closest first.
    pub nodes: Vec<Contact>,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// Find the value under `key`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadFindValue {
    /// Request number.
    pub rpc: u32,
    /// The key.
    pub key: NodeId,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// The values under a key (several for provider keys: one per publisher), or closer contacts
/// when the receiver holds none.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadValue {
    /// The request answered.
    pub rpc: u32,
    /// The records held under the key (empty when none).
    pub records: Vec<Record>,
    /// Closer contacts otherwise.
    pub closer: Vec<Contact>,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others. Absent in frames from before the field existed, which decode as `false`.
    #[serde(default)]
    pub client: bool,
}

/// One version of one publisher's record under a key, named without its contents: what a
/// [`KadRenew`] asks a holder to renew.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct RecordRef {
    /// The record's key.
    pub key: NodeId,
    /// Its publisher.
    pub publisher: NodeId,
    /// The version held by the sender.
    pub version: u64,
}

impl RecordRef {
    /// Names `record`.
    pub fn of(record: &Record) -> Self {
        RecordRef { key: record.key, publisher: record.publisher, version: record.version }
    }
}

/// A republish in short: renew the copies of these records the receiver holds, as a
/// [`KadStore`] of the same record would; the receiver answers [`KadRenewed`] naming the ones
/// it does not hold (in that version, for the network), which the sender then stores in full.
/// At most [`MAX_RENEW_ENTRIES`] per message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadRenew {
    /// Request number.
    pub rpc: u32,
    /// The records to renew.
    pub records: Vec<RecordRef>,
    /// The sender does not serve the DHT (a client: behind a NAT that filters, see
    /// [`DhtMode`](crate::dht::DhtMode)): do not add it to routing tables nor hand it to
    /// others.
    #[serde(default)]
    pub client: bool,
}

/// The answer to a [`KadRenew`]: every record it named was renewed except those at the
/// positions in `missing`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct KadRenewed {
    /// The renew's request number.
    pub rpc: u32,
    /// Positions in the renew's list of the records not held here (or held in another
    /// version, or only as a cache copy): the sender stores those in full.
    pub missing: Vec<u16>,
    /// The sender does not serve the DHT (see [`KadRenew::client`]).
    #[serde(default)]
    pub client: bool,
}

/// Most records one [`KadRenew`] names (about 50 bytes each, so a full one stays near the
/// size of a single datagram).
pub const MAX_RENEW_ENTRIES: usize = 24;
