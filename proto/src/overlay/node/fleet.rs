//! Fleet requests at a node (see `overlay/fleet.rs`): taken from the master when we are an LSN,
//! handed to each child, and acknowledged to the master in batches; taken from our LSN when we
//! are a child. Either way the request itself goes through the request log (`requests.rs`), so
//! it is handled at most once however many copies arrive.
//!
//! Who may send one: the master (to an LSN), or our LSN (to its child). The master's signature
//! is checked in both cases, so an LSN can neither forge one nor alter the one it relays.
//!
//! Bounds: [`MAX_FLEET_HELD`] requests held; per request, a record per current child.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    time::Duration,
};

use super::Node;
use crate::{
    overlay::fleet,
    wire::{Ack, ErrorCode, FleetAcks, FleetRequest, Message},
    NodeId, Timestamp,
};

/// Most fleet requests an LSN holds (the master opens at most as many).
pub const MAX_FLEET_HELD: usize = 64;
/// Children handed a copy per second: a large subnet gets it over a few seconds, not in one
/// burst.
pub const FANOUT_PER_SECOND: usize = 100;
/// A child that did not acknowledge its copy gets another after this: a lost copy delays
/// the child's take by this much, and the LAN's round trip is a few milliseconds.
const CHILD_RETRY: Duration = Duration::from_secs(1);
/// Most children named in one batch of acknowledgements.
const MAX_ACKS_PER_BATCH: usize = 1000;
/// An unacknowledged batch is sent again after this.
const BATCH_RETRY: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_secs(1);

struct Held {
    copy: FleetRequest,
    expires: Timestamp,
    /// When we took it: the first batch waits a tick, so that it names the children that
    /// took it at once together with us (one Ack from the master, not two).
    since: Timestamp,
    /// Children that acknowledged their copy.
    took: BTreeSet<NodeId>,
    /// The last copy sent to each child not done yet: when, and its seq.
    sent: HashMap<NodeId, (Timestamp, u32)>,
    /// Children that took it, not yet acknowledged by the master (oldest first).
    unreported: Vec<NodeId>,
    /// The batch in flight: its seq, how many of `unreported` it named, when sent.
    batch: Option<(u32, usize, Timestamp)>,
}

/// (LSN) The fleet requests held for the children.
#[derive(Default)]
pub(super) struct FleetHeld {
    held: BTreeMap<u64, Held>,
    /// Copies awaiting a child's Ack: seq → (request, child).
    copies: HashMap<u32, (u64, NodeId)>,
    next_tick: Option<Timestamp>,
}

impl Node {
    /// Who may send a fanned-out message (a fleet request or query): the master, or our LSN
    /// passing on the master's signed copy; `verify` checks the master's signature. Refuses
    /// with an error reply otherwise. Some(true) when it came from the master itself.
    pub(super) fn check_fanout(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        seq: u32,
        what: &str,
        verify: impl FnOnce(&crate::trust::NetworkKey) -> bool,
    ) -> Option<bool> {
        let from_master = peer == self.master_id();
        let from_lsn = self.lsn.as_ref().is_some_and(|l| l.id == peer);
        if !from_master && !from_lsn {
            self.refusals.relay += 1;
            let why = format!("only the master or our LSN sends a {what}");
            self.reply_error(now, addr, seq, ErrorCode::REFUSED, &why);
            return None;
        }
        let network = *self.ep.trust().network();
        if !verify(&network) {
            self.refusals.relay += 1;
            let why = format!("{what} not signed by the master");
            self.reply_error(now, addr, seq, ErrorCode::BAD_REQUEST, &why);
            return None;
        }
        Some(from_master)
    }

    /// A fleet request from the master (we are an LSN) or from our LSN.
    pub(super) fn on_fleet_request(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        f: FleetRequest,
    ) {
        let what = "fleet request";
        let Some(from_master) =
            self.check_fanout(now, peer, addr, f.seq, what, |network| fleet::verify(network, &f))
        else {
            return;
        };
        // Now the answer can be sealed without a session with the master.
        self.learn_master_key(f.reply_key);
        let id = f.request.id;
        let me = self.node_id();
        let for_me = f.nodes.as_ref().is_none_or(|n| n.contains(&me));
        if !from_master || self.role.is_none() {
            // A child (or a node the master still takes for an LSN): handle it ourselves.
            if !for_me {
                self.refusals.relay += 1;
                let why = "fleet request not for this node";
                return self.reply_error(now, addr, f.seq, ErrorCode::BAD_REQUEST, why);
            }
            if self.answer_is_delivered(id) {
                // Our LSN need not tell the master we took it: the master has our answer.
                let why = "answered already";
                return self.reply_error(now, addr, f.seq, ErrorCode::ALREADY_REPORTED, why);
            }
            self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
            return self.take_fleet_copy(now, f.request);
        }
        let answered = self.answer_is_delivered(id);
        if let Some(h) = self.fleet.held.get_mut(&id) {
            // The master checking that we still hold it, or naming other nodes for a tag.
            h.copy.nodes = f.nodes.clone();
            h.copy.signature = f.signature;
            let take = for_me && !h.took.contains(&me);
            if take {
                h.took.insert(me);
                if !answered {
                    h.unreported.push(me);
                }
            }
            self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
            if take {
                self.take_fleet_copy(now, f.request);
            }
            return;
        }
        let expires = Timestamp::from_secs(f.request.expires);
        if expires <= now {
            return self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
        }
        if self.fleet.held.len() >= MAX_FLEET_HELD {
            // Not acknowledged: the master sends it again once one of ours expired.
            return self.reply_error(now, addr, f.seq, ErrorCode::BUSY, "fleet requests full");
        }
        self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
        let request = f.request.clone();
        // We take it too if it is for us, and say so with the first batch (unless the master
        // has our answer already).
        let took: BTreeSet<NodeId> = if for_me { [me].into() } else { BTreeSet::new() };
        let mine = if answered { Vec::new() } else { took.iter().copied().collect() };
        let held = Held {
            copy: f,
            expires,
            since: now,
            took,
            sent: HashMap::new(),
            unreported: mine,
            batch: None,
        };
        self.fleet.held.insert(id, held);
        self.fleet.next_tick = Some(now);
        // Answers follow within milliseconds, ours first: they all go in one batch.
        self.report_batch.gather(now);
        if for_me {
            self.take_fleet_copy(now, request);
        }
    }

    /// A child's [`ErrorCode::ALREADY_REPORTED`] reply to its copy: it took the request
    /// before and the master has its answer; true if it settled a copy.
    pub(super) fn fleet_copy_answered(&mut self, peer: NodeId, seq: u32, code: ErrorCode) -> bool {
        if code != ErrorCode::ALREADY_REPORTED {
            return false;
        }
        let Some(&(id, child)) = self.fleet.copies.get(&seq) else { return false };
        if child != peer {
            self.refusals.answer += 1;
            return true;
        }
        self.fleet.copies.remove(&seq);
        if let Some(h) = self.fleet.held.get_mut(&id) {
            h.sent.remove(&child);
            h.took.insert(child);
        }
        true
    }

    /// An Ack: true if it settled a child's copy or a batch of ours.
    pub(super) fn fleet_ack(&mut self, peer: NodeId, seq: u32) -> bool {
        if let Some(&(id, child)) = self.fleet.copies.get(&seq) {
            if child != peer {
                self.refusals.answer += 1;
                return true;
            }
            self.fleet.copies.remove(&seq);
            if let Some(h) = self.fleet.held.get_mut(&id) {
                h.sent.remove(&child);
                if h.took.insert(child) {
                    h.unreported.push(child);
                }
            }
            return true;
        }
        if peer != self.master_id() {
            return false;
        }
        for h in self.fleet.held.values_mut() {
            if let Some((batch, count, _)) = h.batch {
                if batch == seq {
                    h.unreported.drain(..count);
                    h.batch = None;
                    return true;
                }
            }
        }
        false
    }

    pub(super) fn fleet_timers(&mut self, now: Timestamp) {
        if self.fleet.next_tick.is_none_or(|t| now < t) {
            return;
        }
        let Some(role) = self.role.as_ref() else {
            // No longer an LSN: our successor gets them from the master.
            self.fleet = FleetHeld::default();
            return;
        };
        // Children that joined: only they get a copy (adopted ones have not joined yet).
        let children: Vec<(NodeId, SocketAddr)> = role
            .children
            .iter()
            .filter(|(_, c)| c.adopted_from.is_none())
            .map(|(id, c)| (*id, c.addr))
            .collect();
        let fleet = &mut self.fleet;
        fleet.held.retain(|_, h| h.expires > now);
        let live: BTreeSet<u64> = fleet.held.keys().copied().collect();
        fleet.copies.retain(|_, (id, _)| live.contains(id));
        let mut budget = FANOUT_PER_SECOND;
        let mut out = Vec::new();
        let mut seqs = Vec::new();
        for (id, h) in fleet.held.iter_mut() {
            h.sent.retain(|c, _| children.iter().any(|(id, _)| id == c));
            for (child, addr) in &children {
                if budget == 0 {
                    break;
                }
                if h.copy.nodes.as_ref().is_some_and(|n| !n.contains(child)) {
                    continue;
                }
                if h.took.contains(child)
                    || h.sent.get(child).is_some_and(|(t, _)| now < *t + CHILD_RETRY)
                {
                    continue;
                }
                budget -= 1;
                seqs.push((*id, *child, *addr));
            }
            let idle =
                h.batch.is_none_or(|(_, _, t)| now >= t + BATCH_RETRY) && now >= h.since + TICK;
            if idle && !h.unreported.is_empty() {
                let count = h.unreported.len().min(MAX_ACKS_PER_BATCH);
                out.push((*id, count));
            }
        }
        for (id, child, addr) in seqs {
            let seq = self.next_seq();
            let Some(h) = self.fleet.held.get_mut(&id) else { continue };
            if let Some((_, old)) = h.sent.insert(child, (now, seq)) {
                self.fleet.copies.remove(&old);
            }
            self.fleet.copies.insert(seq, (id, child));
            let copy = FleetRequest { seq, ..h.copy.clone() };
            self.send(now, addr, Message::FleetRequest(Box::new(copy)));
        }
        for (id, count) in out {
            let seq = self.next_seq();
            let Some(h) = self.fleet.held.get_mut(&id) else { continue };
            h.batch = Some((seq, count, now));
            let nodes = h.unreported[..count].to_vec();
            let master = self.cfg.master;
            self.send(now, master, Message::FleetAcks(Box::new(FleetAcks { seq, id, nodes })));
        }
        self.fleet.next_tick = (!self.fleet.held.is_empty()).then_some(now + TICK);
    }

    /// Our own copy of a fleet request, through the request log. Another copy of one whose
    /// answer the master acknowledged (a new LSN hands it out again) needs nothing more.
    fn take_fleet_copy(&mut self, now: Timestamp, request: crate::wire::Request) {
        if !self.answer_is_delivered(request.id) {
            self.on_request(now, request);
        }
    }

    pub(super) fn fleet_deadline(&self) -> Option<Timestamp> {
        self.fleet.next_tick
    }

    /// (LSN) Children (and us) counted as having taken request `id` but not yet reported
    /// to the master.
    #[cfg(test)]
    pub(crate) fn fleet_unreported(&self, id: u64) -> usize {
        self.fleet.held.get(&id).map_or(0, |h| h.unreported.len())
    }

    /// (LSN) Fleet requests held for the children.
    pub fn fleet_held(&self) -> usize {
        self.fleet.held.len()
    }
}
