//! Persistence of the DHT: the records held and the routing table survive a restart.
//!
//! The [`Dht`](super::Dht) stays sans-IO: it emits [`StoreOp`]s (from
//! [`poll_store`](super::Dht::poll_store)) that its driver carries out on a key-value store
//! (the `fleetmesh` crate's `Store` trait), and is given what was saved at startup
//! ([`Dht::restore`](super::Dht::restore), decoded by [`Saved::from_tables`]).
//!
//! Writes are batched: a change marks the state dirty and, one [`PERSIST_DELAY`] later, the
//! difference to what was last written goes out (a put per new or changed entry, a remove per
//! entry gone). A crash loses at most that delay of changes; restored records are verified
//! again and restored contacts are checked by the bootstrap lookup, so nothing stale or forged
//! survives a restart unchecked.
//!
//! Tables: [`RECORDS_TABLE`] (key: record key ‖ publisher, value: the CBOR record) and
//! [`ROUTING_TABLE`] (key: node id, value: the CBOR contact).

use std::time::Duration;

use crate::wire::{cbor, Contact, Record};

/// Table of the records a node holds.
pub const RECORDS_TABLE: &str = "dht.records";
/// Table of the routing table's contacts.
pub const ROUTING_TABLE: &str = "dht.routing";
/// How long changes wait before they are written (batching many changes into one write each).
pub const PERSIST_DELAY: Duration = Duration::from_secs(5);

/// One write the DHT asks its driver to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Set `key` in `table` to `value`.
    Put {
        /// The table.
        table: &'static str,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` from `table`.
    Remove {
        /// The table.
        table: &'static str,
        /// The key.
        key: Vec<u8>,
    },
}

/// What a node saved: the input of [`Dht::restore`](super::Dht::restore).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// The records (undecodable entries are skipped).
    pub records: Vec<Record>,
    /// The routing table's contacts.
    pub contacts: Vec<Contact>,
}

impl Saved {
    /// Decodes what the DHT saved, given every entry of [`RECORDS_TABLE`] and of
    /// [`ROUTING_TABLE`]. Entries that do not decode (another version, a torn write) are
    /// skipped: the DHT refills itself from the network.
    pub fn from_tables(records: &[(Vec<u8>, Vec<u8>)], contacts: &[(Vec<u8>, Vec<u8>)]) -> Self {
        Saved {
            records: records.iter().filter_map(|(_, v)| cbor::from_slice(v).ok()).collect(),
            contacts: contacts.iter().filter_map(|(_, v)| cbor::from_slice(v).ok()).collect(),
        }
    }
}

pub(crate) fn record_key(record: &Record) -> Vec<u8> {
    let mut key = record.key.as_bytes().to_vec();
    key.extend_from_slice(record.publisher.as_bytes());
    key
}

pub(crate) fn record_value(record: &Record) -> Vec<u8> {
    cbor::to_vec(record)
}

pub(crate) fn contact_value(contact: &Contact) -> Vec<u8> {
    cbor::to_vec(contact)
}
