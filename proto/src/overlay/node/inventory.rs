//! A node's own inventory (see `overlay/inventory`): the document the application set, the
//! version the master acknowledged, and the one change in flight towards it.
//!
//! The change goes to our LSN (or into our own batch queue when we are the LSN,
//! `inventory_lsn.rs`) and is sent again, unchanged, until the master's result comes back
//! through the LSN: a result lost with a crashed LSN costs a repeat, which the master
//! acknowledges again without applying it twice. Only a result from our LSN counts.
//!
//! Bounds: two documents (the current one and the master's copy as of its last
//! acknowledgement, one shared document while they are equal: most of the time) and one
//! change.

use std::{sync::Arc, time::Duration};

use super::{Node, NodeState};
use crate::{
    overlay::inventory::{
        self, InventoryChange, InventoryDiff, InventoryDocument, InventoryResult, InventoryStatus,
    },
    wire::{ErrorMessage, Message},
    NodeId, Timestamp,
};

/// A change without a result is sent again after this, then twice as long each time up to
/// [`MAX_RESULT_WAIT`] (the LSN paces its batches: under a morning's load a result may take
/// a while).
pub const RESULT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait between two sends of a change.
pub const MAX_RESULT_WAIT: Duration = Duration::from_secs(600);
/// Without an LSN to send to, look again this soon.
const NO_HOP_WAIT: Duration = Duration::from_secs(5);

struct Flight {
    change: InventoryChange,
    /// The seq of the last send to our LSN (its refusal names it).
    seq: u32,
    next_try: Timestamp,
    wait: Duration,
}

/// The node's inventory and where the master stands.
#[derive(Default)]
pub(super) struct OwnInventory {
    current: Option<Arc<InventoryDocument>>,
    /// The master's version and copy as of its last acknowledgement; none: send it whole.
    /// The same allocation as `current` when they are equal (a 30,000-node simulated day
    /// held both: about 28 kB a node).
    acked: Option<(u64, Arc<InventoryDocument>)>,
    flight: Option<Flight>,
    last_version: u64,
    /// `current` may differ from `acked`: look when nothing is in flight.
    dirty: bool,
    /// The master refused a change: nothing more until the document changes.
    refused: bool,
}

impl Node {
    /// Sets this node's inventory document: the master gets what changed since the version
    /// it acknowledged last (all of it the first time), through our LSN.
    pub fn set_inventory(&mut self, now: Timestamp, document: InventoryDocument) {
        let inv = &mut self.inventory;
        if inv.current.as_deref() == Some(&document) {
            return;
        }
        inv.current = Some(match &inv.acked {
            Some((_, acked)) if **acked == document => Arc::clone(acked),
            _ => Arc::new(document),
        });
        inv.dirty = true;
        inv.refused = false;
        self.inventory_timers(now);
    }

    /// The inventory document set last.
    pub fn inventory(&self) -> Option<&InventoryDocument> {
        self.inventory.current.as_deref()
    }

    /// The version the master acknowledged last and its copy: what to persist, so that a
    /// restarted node sends a diff rather than the whole document
    /// ([`restore_inventory`](Self::restore_inventory)).
    pub fn inventory_acked(&self) -> Option<(u64, &InventoryDocument)> {
        self.inventory.acked.as_ref().map(|(v, d)| (*v, &**d))
    }

    /// Restores what [`inventory_acked`](Self::inventory_acked) returned before a restart. If
    /// the master lost it meanwhile, its answer makes us send the whole document.
    pub fn restore_inventory(&mut self, version: u64, document: InventoryDocument) {
        let inv = &mut self.inventory;
        inv.last_version = inv.last_version.max(version);
        inv.acked = Some((version, Arc::new(document)));
        inv.dirty = true;
    }

    /// Whether a change of our inventory is on its way to the master or still to be sent.
    pub fn inventory_pending(&self) -> bool {
        let inv = &self.inventory;
        inv.flight.is_some()
            || (!inv.refused
                && inv
                    .current
                    .as_ref()
                    .is_some_and(|c| inv.acked.as_ref().is_none_or(|(_, a)| a != c)))
    }

    pub(super) fn inventory_timers(&mut self, now: Timestamp) {
        if self.inventory.flight.is_none() && self.inventory.dirty {
            self.inventory.dirty = false;
            self.inventory_next_change(now);
        }
        let due = self.inventory.flight.as_ref().is_some_and(|f| now >= f.next_try);
        if due {
            self.inventory_send(now);
        }
    }

    /// Makes the next change (the first part of a large one), if the master lacks anything.
    fn inventory_next_change(&mut self, now: Timestamp) {
        let inv = &mut self.inventory;
        let Some(current) = inv.current.as_ref() else { return };
        if inv.refused {
            return;
        }
        let empty = InventoryDocument::new();
        let (base, old) = match &inv.acked {
            Some((v, doc)) => (Some(*v), &**doc),
            None => (None, &empty),
        };
        let mut change = inventory::diff(old, current);
        if change.is_empty() && base.is_some() {
            return;
        }
        let _rest = change.split_at_bytes(inventory::MAX_CHANGE_BYTES);
        // Versions are our clock in microseconds, made unique and increasing: a node that
        // restarted without its state still makes versions the master has not seen.
        let version = now.as_micros().max(inv.last_version + 1);
        inv.last_version = version;
        let certificate = if base.is_none() { self.ep.certificate().cloned() } else { None };
        let network = *self.ep.trust().network();
        let signed = inventory::sign_change(
            self.ep.identity(),
            &network,
            base,
            version,
            change.encode(),
            certificate,
        );
        self.inventory.flight =
            Some(Flight { change: signed, seq: 0, next_try: now, wait: RESULT_WAIT });
    }

    /// Sends the change in flight: to our LSN, or into our own queue when we are the LSN.
    fn inventory_send(&mut self, now: Timestamp) {
        let hop = match (&self.lsn, self.state) {
            (_, NodeState::IsLsn) if self.role.is_some() => None,
            (Some(link), NodeState::HasLsn) => Some(link.addr),
            _ => {
                if let Some(f) = self.inventory.flight.as_mut() {
                    f.next_try = now + NO_HOP_WAIT;
                }
                return;
            }
        };
        let seq = self.next_seq();
        let Some(f) = self.inventory.flight.as_mut() else { return };
        f.seq = seq;
        f.next_try = now + f.wait;
        f.wait = (f.wait * 2).min(MAX_RESULT_WAIT);
        let change = InventoryChange { seq, ..f.change.clone() };
        match hop {
            Some(addr) => self.send(now, addr, Message::InventoryChange(Box::new(change))),
            None => {
                if let Err(code) = self.inventory_enqueue(now, change) {
                    tracing::debug!(code = code.0, "own inventory change not queued");
                }
            }
        }
    }

    /// The master's result for one of our changes, passed on by our LSN (or ours, as LSN).
    pub(super) fn inventory_result(&mut self, now: Timestamp, r: InventoryResult) {
        let inv = &mut self.inventory;
        let Some(flight) = inv.flight.as_ref() else { return };
        if r.node != self.ep.node_id() || r.version != flight.change.version {
            return;
        }
        let Some(flight) = inv.flight.take() else { return };
        match r.status {
            InventoryStatus::Applied => {
                let Ok(diff) = InventoryDiff::decode(&flight.change.diff) else { return };
                let doc = match (flight.change.base, inv.acked.take()) {
                    (Some(_), Some((_, doc))) => {
                        let mut doc = Arc::unwrap_or_clone(doc);
                        diff.apply_to(&mut doc);
                        doc
                    }
                    _ => diff.into_document(),
                };
                let doc = match &inv.current {
                    Some(current) if **current == doc => Arc::clone(current),
                    _ => Arc::new(doc),
                };
                inv.acked = Some((flight.change.version, doc));
            }
            InventoryStatus::Mismatch => inv.acked = None,
            _ => inv.refused = true,
        }
        inv.dirty = true;
        self.inventory_timers(now);
    }

    /// (Child) A result from `peer`: only our LSN passes them on.
    pub(super) fn on_inventory_result(&mut self, now: Timestamp, peer: NodeId, r: InventoryResult) {
        if self.lsn.as_ref().is_none_or(|l| l.id != peer) || self.state == NodeState::IsLsn {
            self.refusals.answer += 1;
            return;
        }
        self.inventory_result(now, r);
    }

    /// An Error: true if it answered our change (the LSN's queue is full, or it is no LSN):
    /// the change is sent again at its time, perhaps to another LSN.
    pub(super) fn inventory_error(&mut self, peer: NodeId, e: &ErrorMessage) -> bool {
        self.lsn.as_ref().is_some_and(|l| l.id == peer)
            && self.inventory.flight.as_ref().is_some_and(|f| f.seq == e.seq && f.seq != 0)
    }

    pub(super) fn inventory_deadline(&self) -> Option<Timestamp> {
        let inv = &self.inventory;
        let own = inv.flight.as_ref().map(|f| f.next_try);
        let make = (inv.flight.is_none() && inv.dirty).then_some(Timestamp::ZERO);
        [own, make, self.inventory_queue_deadline()].into_iter().flatten().min()
    }
}
