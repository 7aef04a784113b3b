//! (LSN) The children's inventory changes on their way to the master (see
//! `overlay/inventory`): queued, and sent in compressed batches, paced.
//!
//! Who may send one: a child, its own change only (the master checks the node's signature
//! too). The queue holds one change per node (a newer one replaces the queued one, keeping
//! its place), at most [`MAX_INVENTORY_QUEUED`] changes and [`MAX_INVENTORY_QUEUED_BYTES`];
//! beyond that a child is answered busy and sends again later.
//!
//! Pacing: one batch in flight, the next no sooner than [`INVENTORY_BATCH_GAP`] after the
//! last; a batch waits [`GATHER`] after its oldest change for others to join it, unless it is
//! full already. A morning of children starting together costs the master one message every
//! few seconds per LSN, however many they are. A batch the master does not answer within
//! [`BATCH_RETRY`] is queued again (the children also send theirs again, so nothing is lost
//! when this LSN crashes).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use super::Node;
use crate::{
    overlay::inventory::{
        pack, InventoryAcks, InventoryBatch, InventoryChange, MAX_BATCH_CHANGES, MAX_BATCH_PLAIN,
    },
    wire::{self, ErrorCode, Message},
    NodeId, Timestamp,
};

/// Most changes an LSN queues.
pub const MAX_INVENTORY_QUEUED: usize = 4096;
/// Most bytes of changes an LSN queues.
pub const MAX_INVENTORY_QUEUED_BYTES: usize = 32 << 20;
/// The least time between two batches of one LSN.
pub const INVENTORY_BATCH_GAP: Duration = Duration::from_secs(5);
/// How long a batch waits after its oldest change for more to join it.
pub const GATHER: Duration = Duration::from_secs(2);
/// A batch the master has not answered is queued again after this.
pub const BATCH_RETRY: Duration = Duration::from_secs(20);
/// A change queued longer than this is dropped: its node has sent it again by then.
const MAX_QUEUED_AGE: Duration = Duration::from_secs(600);
/// A batch's frame must fit with room for the header.
const MAX_BATCH_WIRE: usize = wire::MAX_FRAME_LEN - 64;

/// A batch in flight: its seq, when sent, and its changes with when each was queued.
type Batch = (u32, Timestamp, Vec<(Timestamp, InventoryChange)>);

/// (LSN) The queued changes and the batch in flight.
#[derive(Default)]
pub(super) struct InventoryQueue {
    /// Per node: when queued, and the change.
    queued: BTreeMap<NodeId, (Timestamp, InventoryChange)>,
    bytes: usize,
    /// The batch in flight: its seq, when sent, and its changes.
    flight: Option<Batch>,
    last_batch: Option<Timestamp>,
}

fn change_len(c: &InventoryChange) -> usize {
    c.diff.len() + 160 + c.certificate.as_ref().map_or(0, |_| 300)
}

impl Node {
    /// (LSN) A child's change for the master.
    pub(super) fn on_inventory_change(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        c: InventoryChange,
    ) {
        let is_child = self.role.as_ref().is_some_and(|role| role.children.contains_key(&peer));
        if !is_child || c.node != peer {
            self.refusals.relay += 1;
            let why = "only an LSN's child may send it its own inventory change";
            return self.reply_error(now, addr, c.seq, ErrorCode::REFUSED, why);
        }
        let seq = c.seq;
        if let Err(code) = self.inventory_enqueue(now, c) {
            self.reply_error(now, addr, seq, code, "inventory queue full");
        }
    }

    /// Queues `c` (replacing its node's queued change, keeping its place).
    pub(super) fn inventory_enqueue(
        &mut self,
        now: Timestamp,
        c: InventoryChange,
    ) -> Result<(), ErrorCode> {
        let q = &mut self.inventory_queue;
        let len = change_len(&c);
        let old = q.queued.get(&c.node).map(|(t, old)| (*t, change_len(old)));
        let (count, bytes) = (q.queued.len(), q.bytes - old.map_or(0, |(_, l)| l));
        if old.is_none() && count >= MAX_INVENTORY_QUEUED
            || bytes + len > MAX_INVENTORY_QUEUED_BYTES
        {
            return Err(ErrorCode::BUSY);
        }
        let since = old.map_or(now, |(t, _)| t);
        q.bytes = bytes + len;
        q.queued.insert(c.node, (since, InventoryChange { seq: 0, ..c }));
        self.inventory_queue_timers(now);
        Ok(())
    }

    pub(super) fn inventory_queue_timers(&mut self, now: Timestamp) {
        if self.role.is_none() {
            // No longer an LSN: the children send theirs again to their next one.
            if !self.inventory_queue.queued.is_empty() || self.inventory_queue.flight.is_some() {
                self.inventory_queue = InventoryQueue::default();
            }
            return;
        }
        let q = &mut self.inventory_queue;
        if q.flight.as_ref().is_some_and(|(_, sent, _)| now >= *sent + BATCH_RETRY) {
            // Unanswered: its changes go back, unless newer ones came meanwhile.
            if let Some((_, _, changes)) = q.flight.take() {
                for (t, c) in changes {
                    if !q.queued.contains_key(&c.node) {
                        q.bytes += change_len(&c);
                        q.queued.insert(c.node, (t, c));
                    }
                }
            }
        }
        let stale: Vec<NodeId> = q
            .queued
            .iter()
            .filter(|(_, (t, _))| now >= *t + MAX_QUEUED_AGE)
            .map(|(n, _)| *n)
            .collect();
        for node in stale {
            if let Some((_, c)) = q.queued.remove(&node) {
                q.bytes -= change_len(&c);
            }
        }
        if q.flight.is_none() && self.inventory_queue_deadline().is_some_and(|t| now >= t) {
            self.inventory_send_batch(now);
        }
    }

    /// Sends the oldest queued changes as one batch.
    fn inventory_send_batch(&mut self, now: Timestamp) {
        let q = &mut self.inventory_queue;
        let mut order: Vec<(Timestamp, NodeId)> =
            q.queued.iter().map(|(n, (t, _))| (*t, *n)).collect();
        order.sort();
        let mut take = Vec::new();
        let mut plain = 0;
        for (_, node) in order {
            let len = q.queued.get(&node).map_or(0, |(_, c)| change_len(c));
            if !take.is_empty()
                && (plain + len > MAX_BATCH_PLAIN || take.len() >= MAX_BATCH_CHANGES)
            {
                break;
            }
            plain += len;
            take.push(node);
        }
        let mut changes: Vec<(Timestamp, InventoryChange)> = Vec::new();
        for node in take {
            if let Some((t, c)) = q.queued.remove(&node) {
                q.bytes -= change_len(&c);
                changes.push((t, c));
            }
        }
        // Halve until it fits a frame; what is left over waits for the next batch.
        let data = loop {
            let batch: Vec<InventoryChange> = changes.iter().map(|(_, c)| c.clone()).collect();
            let data = pack(&batch);
            if data.len() <= MAX_BATCH_WIRE || changes.len() <= 1 {
                break data;
            }
            for (t, c) in changes.split_off(changes.len() / 2) {
                q.bytes += change_len(&c);
                q.queued.insert(c.node, (t, c));
            }
        };
        if data.len() > MAX_BATCH_WIRE {
            // One change that does not fit even alone (a node's diff is at most
            // MAX_CHANGE_BYTES, so only a forged one could): dropped.
            return;
        }
        let seq = self.next_seq();
        let q = &mut self.inventory_queue;
        q.flight = Some((seq, now, changes));
        q.last_batch = Some(now);
        let master = self.cfg.master;
        self.send(now, master, Message::InventoryBatch(Box::new(InventoryBatch { seq, data })));
    }

    /// The master's results for our batch: each goes on to its child (ours to ourselves).
    pub(super) fn on_inventory_acks(&mut self, now: Timestamp, peer: NodeId, a: InventoryAcks) {
        let ours = self.inventory_queue.flight.as_ref().is_some_and(|(seq, _, _)| *seq == a.seq);
        if peer != self.master_id() || !ours {
            self.refusals.answer += 1;
            return;
        }
        self.inventory_queue.flight = None;
        let me = self.node_id();
        for r in a.results {
            if r.node == me {
                self.inventory_result(now, r);
            } else if let Some(addr) =
                self.role.as_ref().and_then(|role| role.children.get(&r.node)).map(|c| c.addr)
            {
                self.send(now, addr, Message::InventoryResult(r));
            }
        }
        self.inventory_queue_timers(now);
    }

    /// The master refused our batch (or is busy): busy puts it back, otherwise it is dropped
    /// (its children send theirs again). True if it answered our batch.
    pub(super) fn inventory_batch_error(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        seq: u32,
        code: ErrorCode,
    ) -> bool {
        let ours = self.inventory_queue.flight.as_ref().is_some_and(|(s, _, _)| *s == seq);
        if peer != self.master_id() || !ours {
            return false;
        }
        if code == ErrorCode::BUSY {
            // Treated as unanswered: queued again at once.
            if let Some(f) = self.inventory_queue.flight.as_mut() {
                f.1 = Timestamp::ZERO;
            }
        } else {
            self.inventory_queue.flight = None;
        }
        self.inventory_queue_timers(now);
        true
    }

    /// When the queue has work: the flight's retry, or the next batch.
    pub(super) fn inventory_queue_deadline(&self) -> Option<Timestamp> {
        let q = &self.inventory_queue;
        if let Some((_, sent, _)) = &q.flight {
            return Some(*sent + BATCH_RETRY);
        }
        let oldest = q.queued.values().map(|(t, _)| *t).min()?;
        let gathered = if q.bytes >= MAX_BATCH_PLAIN { oldest } else { oldest + GATHER };
        let paced = q.last_batch.map_or(gathered, |t| t + INVENTORY_BATCH_GAP);
        Some(gathered.max(paced))
    }

    /// (LSN) Inventory changes queued for the master.
    pub fn inventory_queued(&self) -> usize {
        self.inventory_queue.queued.len()
    }
}
