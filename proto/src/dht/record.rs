//! Signed DHT records: key kinds, signing and verification, and [`RecordStore`], the in-memory
//! set of records a node holds for the network.
//!
//! # Keys
//!
//! A record key is a point in the id space. Each [`KeyKind`] hashes its subject under its own
//! prefix, `key = SHA-1("fleetmesh/v1/dht-key/<kind>\0" ‖ subject)`, so keys of different
//! kinds never collide and a contact record for a node is not stored at the node itself
//! (whose neighbours are the natural holders of its *own* id).
//!
//! # Signatures
//!
//! The publisher signs `"fleetmesh/v1/dht-record\0" ‖ CBOR [key, value, publisher, version,
//! expires_at]` with its ed25519 identity key ([`Record::sign`]); the domain prefix keeps the
//! signature from being valid as a certificate, envelope or anything else. Any node can
//! re-store a signed record (republishing) without being able to change it.
//!
//! **The verifier needs the publisher's public key.** A [`NodeId`] is SHA-1 of that key, so
//! [`Record::verify`] checks the key against `publisher` before the signature, but the key
//! itself does not travel in a [`Record`]: the caller supplies it (the network key for the
//! master's records, the certificate for a peer it has a session with).
//!
//! # Storage rules ([`RecordStore::put`])
//!
//! Records are held per `(key, publisher)`, so many publishers can share a key (provider
//! records). In order, a record is refused when:
//! 1. its value exceeds the size limit ([`RecordError::TooLarge`]);
//! 2. it has expired ([`RecordError::Expired`]);
//! 3. the supplied key is not the publisher's ([`RecordError::KeyMismatch`]) or the signature
//!    does not verify ([`RecordError::BadSignature`]);
//! 4. the master holds a record under the key and the publisher is not the master
//!    ([`RecordError::NotPublisher`]): a master record overrides everybody's under its key;
//! 5. the same publisher's record held has a higher version, or the same version with other
//!    contents ([`RecordError::StaleVersion`]); the very same record only renews its lifetime;
//! 6. the publisher (the master excepted) already has the maximum number of records here
//!    ([`RecordError::TooMany`]), or the store is full ([`RecordError::Full`]).
//!
//! A record accepted from the master removes every other publisher's record under its key.
//!
//! # Lifetimes
//!
//! A held record expires at its own `expires_at` or one record TTL after it was last stored,
//! whichever comes first, so nobody can pin data forever; publishers renew by storing it
//! again. Every republish interval the store asks its owner to re-store each record at the k
//! closest nodes ([`RecordEvent::Republish`]), except records someone else stored here in the
//! meantime (the paper's optimisation: they did the work). Each republish time is drawn from
//! the last tenth of the interval with the store's seeded RNG ([`RecordStore::seed`]), so the
//! k holders of a record, which all stored it at the same moment, do not republish it in one
//! burst: the first to come due re-stores it at the others, which renews their copies and
//! pushes their own republish back, so a record costs about one republish per interval
//! instead of k. A republish names the record to holders rather than sending it again
//! (`service/renew.rs`); a renew of a copy held in that very version renews it as a store
//! would ([`RecordStore::renew`]). A holder whose republish finds k nodes closer to the key than itself stops
//! republishing every interval ([`RecordStore::surplus`]): it waits twice as long each time,
//! up to [`MAX_SURPLUS_BACKOFF`] intervals. As nodes come and go the record moves to new k
//! closest nodes, and every former holder republishing it hourly for the rest of its lifetime
//! cost ten times the republishes that were needed (measured: 91 % of a 300-node day's
//! republishes came from such holders). Cached copies ([`RecordStore::put_cached`]) live for
//! the short cache TTL and are never republished.

use std::collections::{BTreeMap, HashMap, VecDeque};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use serde_tuple::Serialize_tuple;

pub use self::republish::MAX_SURPLUS_BACKOFF;
use super::DhtConfig;
use crate::{
    trust::{domain, signed_bytes},
    wire::Record,
    Identity, NodeId, Timestamp,
};

/// What a record key names, and what its value holds. The value formats belong to the layers
/// that publish them; the DHT treats values as opaque bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Subject: a [`NodeId`]. Value: where the node is now (its addresses, its LSN, the GSNs
    /// it is reachable through). Published by the node itself; readers accept only records
    /// whose publisher is the subject (or the master): [`Dht::get_from`](super::Dht::get_from),
    /// as `Node::dht_get_contact` does. Storing nodes do not enforce it (they cannot tell a
    /// key's kind from the key), so a plain get returns every publisher's record.
    Contact,
    /// Subject: a name of the master's choosing (e.g. `"revocations"`). Value: trust material
    /// such as the current revocation list or network parameters. Published by the master only;
    /// readers accept no other publisher ([`Dht::get_from`](super::Dht::get_from) with the
    /// master's id, as `Node::dht_get_trust` does).
    Trust,
    /// Subject: a content hash. Value: a provider's offer of the content (its pieces, how to
    /// fetch them). One record per provider under the same key.
    Provider,
    /// Subject: a GSN directory name (e.g. a region). Value: a global super node's offer to
    /// mediate and relay (address, capacity). One record per GSN under the same key; readers
    /// should check the publisher's certificate carries the GSN flag. Not done by the DHT: a
    /// record carries its publisher's key, not its certificate, so the check belongs to the
    /// layer that contacts the GSN (its session presents the certificate).
    Gsn,
}

impl KeyKind {
    /// The record key for `subject` of this kind.
    ///
    /// ```
    /// use fleetmesh_proto::{dht::KeyKind, NodeId};
    /// let node = NodeId::hash(b"some node");
    /// let key = KeyKind::Contact.key(node.as_bytes());
    /// assert_ne!(key, node);
    /// assert_ne!(key, KeyKind::Provider.key(node.as_bytes()));
    /// ```
    pub fn key(self, subject: &[u8]) -> NodeId {
        let prefix: &[u8] = match self {
            KeyKind::Contact => b"fleetmesh/v1/dht-key/contact\0",
            KeyKind::Trust => b"fleetmesh/v1/dht-key/trust\0",
            KeyKind::Provider => b"fleetmesh/v1/dht-key/provider\0",
            KeyKind::Gsn => b"fleetmesh/v1/dht-key/gsn\0",
        };
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(subject);
        NodeId::hash(&bytes)
    }
}

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is larger than the store accepts.
    #[error("record value of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The value's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The record's `expires_at` has passed.
    #[error("record expired")]
    Expired,
    /// The public key supplied is not the publisher's (its SHA-1 is not the publisher id).
    #[error("key does not belong to the record's publisher")]
    KeyMismatch,
    /// The signature does not verify under the publisher's key.
    #[error("record signature is invalid")]
    BadSignature,
    /// The key is held by the master; nobody else may publish under it.
    #[error("key is held by the master")]
    NotPublisher,
    /// The publisher's record held here is newer (or the same version with other contents).
    #[error("record version {offered} is not newer than {held}")]
    StaleVersion {
        /// The version offered.
        offered: u64,
        /// The version held.
        held: u64,
    },
    /// The publisher already has the maximum number of records here.
    #[error("publisher has too many records here ({max})")]
    TooMany {
        /// The per-publisher limit.
        max: usize,
    },
    /// The store holds the maximum number of records.
    #[error("record store is full ({max})")]
    Full {
        /// The total limit.
        max: usize,
    },
}

/// What [`RecordStore::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOutcome {
    /// A record for a new `(key, publisher)`.
    Stored,
    /// A newer version replaced the publisher's earlier record.
    Replaced {
        /// The version replaced.
        previous: u64,
    },
    /// The same record again: its lifetime was renewed.
    Renewed,
}

/// What the store asks its owner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordEvent {
    /// Re-store this record at the k closest nodes to its key (find_node lookup, then
    /// `KadStore` to each).
    Republish {
        /// The record.
        record: Record,
    },
    /// A record left the store (expired, or overridden by the master): delete any persistent
    /// copy.
    Removed {
        /// Its key.
        key: NodeId,
        /// Its publisher.
        publisher: NodeId,
    },
}

#[derive(Serialize_tuple)]
struct SignedRecord<'a> {
    key: &'a NodeId,
    #[serde(serialize_with = "serde_bytes::serialize")]
    value: &'a [u8],
    publisher: &'a NodeId,
    version: u64,
    expires_at: u64,
}

impl Record {
    /// A record under `key` holding `value`, published and signed by `publisher`.
    /// `expires_at` is in UNIX seconds; a higher `version` replaces a lower one.
    ///
    /// ```
    /// use fleetmesh_proto::{dht::KeyKind, wire::Record, Identity};
    /// use rand_core::SeedableRng;
    ///
    /// let me = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
    /// let key = KeyKind::Contact.key(me.node_id().as_bytes());
    /// let record = Record::sign(&me, key, b"10.0.0.7:4000".to_vec(), 1, 1_700_086_400);
    /// assert!(record.verify(&me.verifying_key()).is_ok());
    /// ```
    pub fn sign(
        publisher: &Identity,
        key: NodeId,
        value: Vec<u8>,
        version: u64,
        expires_at: u64,
    ) -> Record {
        let mut record = Record {
            key,
            value,
            publisher: publisher.node_id(),
            publisher_key: publisher.verifying_key().to_bytes(),
            version,
            expires_at,
            signature: [0; 64],
        };
        record.signature = publisher.sign(&record.signed_bytes()).to_bytes();
        record
    }

    /// Checks that `publisher_key` is the publisher's (its SHA-1 is the publisher id) and that
    /// the signature verifies under it.
    pub fn verify(&self, publisher_key: &VerifyingKey) -> Result<(), RecordError> {
        if NodeId::from_public_key(publisher_key) != self.publisher {
            return Err(RecordError::KeyMismatch);
        }
        publisher_key
            .verify(&self.signed_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| RecordError::BadSignature)
    }

    /// The publisher key the record carries, checked against the publisher id.
    pub fn embedded_key(&self) -> Result<VerifyingKey, RecordError> {
        let key =
            VerifyingKey::from_bytes(&self.publisher_key).map_err(|_| RecordError::KeyMismatch)?;
        if NodeId::from_public_key(&key) != self.publisher {
            return Err(RecordError::KeyMismatch);
        }
        Ok(key)
    }

    /// Verifies the record under the key it carries: what a node that never met the publisher
    /// does with a record it is asked to store or was sent by a lookup.
    pub fn verify_embedded(&self) -> Result<(), RecordError> {
        self.verify(&self.embedded_key()?)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(
            domain::RECORD,
            &SignedRecord {
                key: &self.key,
                value: &self.value,
                publisher: &self.publisher,
                version: self.version,
                expires_at: self.expires_at,
            },
        )
    }
}

#[derive(Clone, Debug)]
struct Held {
    record: Record,
    /// When this copy leaves the store.
    expires: Timestamp,
    /// When to ask for a republish; `None` for cached copies.
    republish_at: Option<Timestamp>,
    /// Republish intervals between our republishes: 1, or more while our last republish found
    /// the copy surplus ([`RecordStore::surplus`]).
    backoff: u32,
    /// How many nodes our last republish lookup found closest to the key (0: none done yet);
    /// see [`RecordStore::neighbourhood`].
    neighbourhood: u16,
}

impl Held {
    /// Renews this copy for the network as a store of the same record does: it now expires at
    /// `expires` and is republished at `next`, except that a surplus copy keeps its longer
    /// wait (see [`RecordStore::surplus`]).
    fn store_again(&mut self, expires: Timestamp, next: Timestamp) {
        self.expires = expires;
        self.republish_at = match self.republish_at {
            Some(mine) if self.backoff > 1 => Some(mine.max(next)),
            _ => Some(next),
        };
    }
}

/// The records a node holds for the network, in memory, with the rules of the
/// [module docs](self).
///
/// ```
/// use fleetmesh_proto::dht::{DhtConfig, KeyKind, RecordStore, StoreOutcome};
/// use fleetmesh_proto::{wire::Record, Identity, NodeId, Timestamp};
/// use rand_core::SeedableRng;
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let publisher = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
/// let master_id = NodeId::hash(b"the master's key");
/// let mut store = RecordStore::new(&DhtConfig::default(), master_id);
/// let key = KeyKind::Provider.key(b"sha-1 of an installer");
/// let record = Record::sign(&publisher, key, b"pieces 0-99".to_vec(), 1, now.as_secs() + 3600);
/// let outcome = store.put(now, record.clone(), &publisher.verifying_key());
/// assert_eq!(outcome, Ok(StoreOutcome::Stored));
/// assert_eq!(store.get(&key).collect::<Vec<_>>(), vec![&record]);
/// ```
#[derive(Clone, Debug)]
pub struct RecordStore {
    master: NodeId,
    max_record_size: usize,
    max_per_publisher: usize,
    max_records: usize,
    record_ttl: std::time::Duration,
    cache_ttl: std::time::Duration,
    republish_interval: std::time::Duration,
    records: BTreeMap<(NodeId, NodeId), Held>,
    per_publisher: HashMap<NodeId, usize>,
    events: VecDeque<RecordEvent>,
    /// Draws the republish times; `None` (no [`seed`](Self::seed)): the full interval.
    rng: Option<ChaCha20Rng>,
}

impl RecordStore {
    /// An empty store. `master` is the master's node id
    /// ([`NetworkKey::master_id`](crate::trust::NetworkKey::master_id)), whose records
    /// override everyone's.
    pub fn new(config: &DhtConfig, master: NodeId) -> Self {
        RecordStore {
            master,
            max_record_size: config.max_record_size,
            max_per_publisher: config.max_records_per_publisher,
            max_records: config.max_records,
            record_ttl: config.record_ttl,
            cache_ttl: config.cache_ttl,
            republish_interval: config.republish_interval,
            records: BTreeMap::new(),
            per_publisher: HashMap::new(),
            events: VecDeque::new(),
            rng: None,
        }
    }

    /// The master's node id, whose records override everyone's.
    pub fn master(&self) -> NodeId {
        self.master
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record under `key` (the master's first if it holds one, then by publisher id).
    pub fn get(&self, key: &NodeId) -> impl Iterator<Item = &Record> + '_ {
        let key = *key;
        let master = self.records.get(&(key, self.master)).map(|h| &h.record);
        let others = self
            .records
            .range((key, NodeId::ZERO)..)
            .take_while(move |((k, _), _)| *k == key)
            .filter(|((_, p), _)| *p != self.master)
            .map(|(_, h)| &h.record);
        master.into_iter().chain(others)
    }

    /// The record `publisher` holds under `key`.
    pub fn get_from(&self, key: &NodeId, publisher: &NodeId) -> Option<&Record> {
        self.records.get(&(*key, *publisher)).map(|h| &h.record)
    }

    /// Every record held, by key then publisher. Use it to persist the store.
    pub fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.values().map(|h| &h.record)
    }

    /// The records held for the network (cache copies left out: they are nobody's to hand
    /// on), by key then publisher.
    pub fn iter_held(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.values().filter(|h| h.republish_at.is_some()).map(|h| &h.record)
    }

    /// The stateless checks of [`put`](Self::put): size, expiry, key and signature. Use it on
    /// a record a find_value lookup returned before trusting it.
    pub fn check(
        &self,
        now: Timestamp,
        record: &Record,
        publisher_key: &VerifyingKey,
    ) -> Result<(), RecordError> {
        if record.value.len() > self.max_record_size {
            return Err(RecordError::TooLarge {
                size: record.value.len(),
                max: self.max_record_size,
            });
        }
        if record.expires_at <= now.as_secs() {
            return Err(RecordError::Expired);
        }
        record.verify(publisher_key)
    }

    /// Stores `record` (from a `KadStore`, or our own), verified under `publisher_key`, by the
    /// rules of the [module docs](self).
    pub fn put(
        &mut self,
        now: Timestamp,
        record: Record,
        publisher_key: &VerifyingKey,
    ) -> Result<StoreOutcome, RecordError> {
        self.insert(now, record, publisher_key, false)
    }

    /// Stores a copy of `record` as a find_value cache (we answered a lookup without it and
    /// its initiator sends it to us): same checks as [`put`](Self::put), but it lives for the
    /// cache TTL and is never republished. A held (non-cached) copy is only renewed.
    pub fn put_cached(
        &mut self,
        now: Timestamp,
        record: Record,
        publisher_key: &VerifyingKey,
    ) -> Result<StoreOutcome, RecordError> {
        self.insert(now, record, publisher_key, true)
    }

    /// Removes the record `publisher` holds under `key`.
    pub fn remove(&mut self, key: &NodeId, publisher: &NodeId) -> Option<Record> {
        let held = self.records.remove(&(*key, *publisher))?;
        self.uncount(publisher);
        Some(held.record)
    }

    fn insert(
        &mut self,
        now: Timestamp,
        record: Record,
        publisher_key: &VerifyingKey,
        cached: bool,
    ) -> Result<StoreOutcome, RecordError> {
        self.check(now, &record, publisher_key)?;
        let (key, publisher) = (record.key, record.publisher);
        let is_master = publisher == self.master;
        if !is_master && self.records.contains_key(&(key, self.master)) {
            return Err(RecordError::NotPublisher);
        }
        let lifetime = if cached { self.cache_ttl } else { self.record_ttl };
        let expires = Timestamp::from_secs(record.expires_at).min(now + lifetime);
        let republish_at = (!cached).then(|| self.next_republish(now));
        if let Some(held) = self.records.get_mut(&(key, publisher)) {
            let previous = held.record.version;
            if record.version < previous || (record.version == previous && record != held.record) {
                return Err(RecordError::StaleVersion { offered: record.version, held: previous });
            }
            let outcome = if record.version == previous {
                StoreOutcome::Renewed
            } else {
                StoreOutcome::Replaced { previous }
            };
            if cached {
                // A cache copy never shortens or demotes a copy we hold (or held) for the
                // network; it may not outlive the record's own expiry.
                let own = Timestamp::from_secs(record.expires_at);
                held.expires = held.expires.max(expires).min(own);
            } else if let Some(next) = republish_at {
                held.store_again(expires, next);
            }
            held.record = record;
            return Ok(outcome);
        }
        let count = self.per_publisher.get(&publisher).copied().unwrap_or(0);
        if !is_master && count >= self.max_per_publisher {
            return Err(RecordError::TooMany { max: self.max_per_publisher });
        }
        let displaced = if is_master { self.get(&key).count() } else { 0 };
        if self.records.len() - displaced >= self.max_records {
            return Err(RecordError::Full { max: self.max_records });
        }
        if is_master {
            let others: Vec<NodeId> = self
                .records
                .range((key, NodeId::ZERO)..)
                .take_while(|((k, _), _)| *k == key)
                .map(|((_, p), _)| *p)
                .collect();
            for other in others {
                self.remove(&key, &other);
                self.events.push_back(RecordEvent::Removed { key, publisher: other });
            }
        }
        self.records.insert(
            (key, publisher),
            Held { record, expires, republish_at, backoff: 1, neighbourhood: 0 },
        );
        *self.per_publisher.entry(publisher).or_insert(0) += 1;
        Ok(StoreOutcome::Stored)
    }

    fn uncount(&mut self, publisher: &NodeId) {
        if let Some(n) = self.per_publisher.get_mut(publisher) {
            *n -= 1;
            if *n == 0 {
                self.per_publisher.remove(publisher);
            }
        }
    }

    /// The next thing the store asks for.
    pub fn poll_event(&mut self) -> Option<RecordEvent> {
        self.events.pop_front()
    }
}

mod republish;
#[cfg(test)]
mod tests;
