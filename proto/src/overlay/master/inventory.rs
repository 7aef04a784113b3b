//! The master's copy of every node's inventory (see `overlay/inventory`): batches from LSNs
//! unpacked, each change checked (carried by the node's LSN, signed by the node) and applied
//! when its base is the version held, one result per change back to the LSN.
//!
//! Saved in the store ([`INVENTORY_TABLE`], one entry per node, rewritten on each change) when
//! the master has one: a restarted master restores them
//! ([`restore_inventories`](Master::restore_inventories)) and nodes go on sending diffs.
//! Without a store it holds nothing after a restart, answers the next diff of each node with
//! [`InventoryStatus::Mismatch`], and gets the whole document.
//!
//! Bounds: at most [`MAX_INVENTORY_DOCUMENTS`] documents (one per node), each at most
//! [`MAX_DOCUMENT_ENTRIES`] entries and about [`MAX_DOCUMENT_BYTES`], all together about
//! [`MAX_INVENTORY_BYTES`]; a change that would pass
//! a bound is refused ([`InventoryError::TooLarge`], [`InventoryError::Full`]) and the node
//! sends nothing more until its document changes.

use std::{collections::HashMap, net::SocketAddr};

use super::{Master, MasterEvent};
use crate::{
    codec::cbor,
    dht::StoreOp,
    overlay::inventory::{
        doc_len, unpack, verify_change, InventoryAcks, InventoryBatch, InventoryChange,
        InventoryDiff, InventoryDocument, InventoryError, InventoryResult, InventoryStatus,
    },
    wire::{ErrorCode, ErrorMessage, Message},
    NodeId, Timestamp,
};

/// The store table of inventories: a node id → its version and document (CBOR).
pub const INVENTORY_TABLE: &str = "inventory";
/// Most nodes whose inventory the master holds.
pub const MAX_INVENTORY_DOCUMENTS: usize = 100_000;
/// Most entries in one node's document.
pub const MAX_DOCUMENT_ENTRIES: usize = 100_000;
/// Most bytes (about, as encoded) of one node's document.
pub const MAX_DOCUMENT_BYTES: usize = 8 << 20;
/// Most bytes (about) of all documents together.
pub const MAX_INVENTORY_BYTES: usize = 4 << 30;

/// What the master received in inventory batches ([`Master::inventory_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InventoryStats {
    /// Batches received from LSNs.
    pub batches: u64,
    /// Their compressed bytes (the batches' `data`).
    pub batch_bytes: u64,
    /// Changes in them.
    pub changes: u64,
    /// Changes applied (not repeats, mismatches or refusals).
    pub applied: u64,
    /// Of those, whole documents.
    pub whole: u64,
}

struct Held {
    version: u64,
    doc: InventoryDocument,
    bytes: usize,
}

/// The inventories held, by node.
#[derive(Default)]
pub(super) struct Inventories {
    held: HashMap<NodeId, Held>,
    /// The sum of the documents' bytes.
    bytes: usize,
    stats: InventoryStats,
}

impl Master {
    /// The inventory of `node` as the master holds it: its version and document.
    pub fn inventory(&self, node: &NodeId) -> Option<(u64, &InventoryDocument)> {
        self.inventories.held.get(node).map(|h| (h.version, &h.doc))
    }

    /// How many nodes' inventories the master holds.
    pub fn inventory_count(&self) -> usize {
        self.inventories.held.len()
    }

    /// What arrived in inventory batches since the master started.
    pub fn inventory_stats(&self) -> InventoryStats {
        self.inventories.stats
    }

    /// Every inventory held, as [`INVENTORY_TABLE`] entries (what the store holds).
    pub fn inventory_entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.inventories
            .held
            .iter()
            .map(|(node, h)| (node.as_bytes().to_vec(), cbor::to_vec(&(h.version, &h.doc))))
            .collect()
    }

    /// Restores inventories from [`INVENTORY_TABLE`] entries (undecodable ones skipped,
    /// the bounds kept).
    pub fn restore_inventories(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) {
        for (key, value) in entries {
            let (Ok(id), Ok((version, doc))) = (
                <[u8; 20]>::try_from(key.as_slice()),
                cbor::from_slice::<(u64, InventoryDocument)>(value),
            ) else {
                tracing::warn!("undecodable inventory skipped");
                continue;
            };
            let bytes = doc_len(&doc);
            let inv = &mut self.inventories;
            if inv.held.len() >= MAX_INVENTORY_DOCUMENTS
                || inv.bytes + bytes > MAX_INVENTORY_BYTES
                || bytes > MAX_DOCUMENT_BYTES
                || doc.len() > MAX_DOCUMENT_ENTRIES
            {
                continue;
            }
            inv.bytes += bytes;
            if let Some(old) = inv.held.insert(NodeId::from_bytes(id), Held { version, doc, bytes })
            {
                inv.bytes -= old.bytes;
            }
        }
    }

    /// An LSN's batch: refused whole from anyone else, otherwise one result per change.
    pub(super) fn on_inventory_batch(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        b: InventoryBatch,
    ) {
        if !self.reg.is_lsn(&peer) {
            self.refusals.relay += 1;
            let error = InventoryError::NotLsn(peer);
            self.inventory_refused(now, addr, b.seq, ErrorCode::REFUSED, peer, error);
            return;
        }
        self.inventories.stats.batches += 1;
        self.inventories.stats.batch_bytes += b.data.len() as u64;
        let changes = match unpack(&b.data) {
            Ok(changes) => changes,
            Err(error) => {
                return self.inventory_refused(
                    now,
                    addr,
                    b.seq,
                    ErrorCode::BAD_REQUEST,
                    peer,
                    error,
                )
            }
        };
        self.inventories.stats.changes += changes.len() as u64;
        let mut results = Vec::with_capacity(changes.len());
        for change in changes {
            let (node, version) = (change.node, change.version);
            let status = match self.apply_inventory(now, peer, change) {
                Ok(status) => status,
                Err(error) => {
                    if matches!(error, InventoryError::NotChild { .. }) {
                        self.refusals.relay += 1;
                    }
                    self.events.push_back(MasterEvent::InventoryRefused { lsn: peer, error });
                    InventoryStatus::Refused
                }
            };
            results.push(InventoryResult { node, version, status });
        }
        let acks = InventoryAcks { seq: b.seq, results };
        self.send(now, addr, Message::InventoryAcks(Box::new(acks)));
    }

    fn inventory_refused(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        seq: u32,
        code: ErrorCode,
        lsn: NodeId,
        error: InventoryError,
    ) {
        let detail = error.to_string();
        self.events.push_back(MasterEvent::InventoryRefused { lsn, error });
        self.send(now, addr, Message::Error(ErrorMessage { seq, code, detail }));
    }

    /// Checks and applies one change carried by `lsn`.
    fn apply_inventory(
        &mut self,
        now: Timestamp,
        lsn: NodeId,
        c: InventoryChange,
    ) -> Result<InventoryStatus, InventoryError> {
        let node = c.node;
        if node != lsn && self.reg.next_hop(&node).is_none_or(|(hop, _)| hop != lsn) {
            return Err(InventoryError::NotChild { lsn, node });
        }
        if let Some(cert) = c.certificate.clone() {
            if cert.node_id() == node && self.ep.trust().verify(&cert, now).is_ok() {
                self.reg.remember_certificate(cert);
            }
        }
        // Verified again each time: the node may have been revoked since.
        let Some(key) = self
            .reg
            .certificate(&node)
            .or_else(|| self.ep.peer_certificate(&node))
            .filter(|cert| self.ep.trust().verify(cert, now).is_ok())
            .and_then(|cert| cert.verifying_key().ok())
        else {
            // Its whole document comes with its certificate.
            return Ok(InventoryStatus::Mismatch);
        };
        if !verify_change(self.ep.trust().network(), &c, &key) {
            return Err(InventoryError::BadSignature(node));
        }
        let held = self.inventories.held.get(&node);
        match (held, c.base) {
            // A repeat (the node's LSN crashed before the result reached it).
            (Some(h), _) if h.version == c.version => return Ok(InventoryStatus::Applied),
            // Older than what we hold (a replay), or a diff of a version we do not hold.
            (Some(h), _) if h.version > c.version => return Ok(InventoryStatus::Mismatch),
            (Some(h), Some(base)) if h.version != base => return Ok(InventoryStatus::Mismatch),
            (None, Some(_)) => return Ok(InventoryStatus::Mismatch),
            _ => {}
        }
        if held.is_none() && self.inventories.held.len() >= MAX_INVENTORY_DOCUMENTS {
            return Err(InventoryError::Full);
        }
        let diff = InventoryDiff::decode(&c.diff)?;
        let empty = InventoryDocument::new();
        let (doc, bytes) = match (held, c.base) {
            (Some(h), Some(_)) => (&h.doc, h.bytes),
            _ => (&empty, 0),
        };
        let (entries, bytes) = diff.size_after(doc, bytes);
        if entries > MAX_DOCUMENT_ENTRIES || bytes > MAX_DOCUMENT_BYTES {
            return Err(InventoryError::TooLarge(format!("{entries} entries, {bytes} bytes")));
        }
        let total = self.inventories.bytes - held.map_or(0, |h| h.bytes) + bytes;
        if total > MAX_INVENTORY_BYTES {
            return Err(InventoryError::Full);
        }
        self.inventories.bytes = total;
        let full = c.base.is_none();
        let durable = self.durable_on();
        let entry = self.inventories.held.entry(node).or_insert_with(|| Held {
            version: 0,
            doc: InventoryDocument::new(),
            bytes: 0,
        });
        if full {
            entry.doc = diff.into_document();
        } else {
            diff.apply_to(&mut entry.doc);
        }
        entry.version = c.version;
        entry.bytes = bytes;
        debug_assert_eq!(bytes, doc_len(&entry.doc), "size_after matches the document");
        let saved = durable.then(|| cbor::to_vec(&(c.version, &entry.doc)));
        self.inventories.stats.applied += 1;
        self.inventories.stats.whole += u64::from(full);
        if let Some(value) = saved {
            let key = node.as_bytes().to_vec();
            self.push_store_op(StoreOp::Put { table: INVENTORY_TABLE, key, value });
        }
        self.events.push_back(MasterEvent::Inventory { node, version: c.version, full });
        Ok(InventoryStatus::Applied)
    }
}
