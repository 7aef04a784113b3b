//! Join transfer (Kademlia §2.5): handing held records to a node that should hold them, so
//! that no record is lost to churn between two republishes.
//!
//! Off unless [`DhtConfig::join_transfer`](crate::dht::DhtConfig::join_transfer) is set.
//!
//! # When
//!
//! - **A newcomer**: a certified peer enters the routing table
//!   ([`InsertOutcome::Inserted`](crate::dht::InsertOutcome::Inserted)): the paper's "any node
//!   learning of a new node issues STORE RPCs to transfer relevant key-value pairs".
//! - **A rejoin**: a certified peer asks us `KadFindNode` for its own id. Only the bootstrap
//!   and post-restore self-lookups do that, so the peer has just (re)started and may be empty:
//!   a node that reboots keeps its id, stays in its neighbours' tables and would never count
//!   as new. What we handed it before is forgotten and handed again.
//!
//! # What
//!
//! A held record (cache copies are nobody's to hand on) goes to the peer when
//! 1. the peer is among the k closest to its key among the nodes we know and ourselves:
//!    closer than us, or displacing the k-th closest we know; records it would not hold are
//!    not sent;
//! 2. we are among the [`TRANSFER_SENDERS`] closest to the key that we know, the peer left
//!    out: of the k holders, only the two nearest the key send, not all k (the paper's own
//!    optimisation sends from the closest only; two survive one of them being down or empty);
//! 3. we have not handed this version of it to this peer yet (forgotten on a rejoin).
//!
//! # Bounds (docs/BOUNDS.md)
//!
//! At most [`MAX_PER_NEWCOMER`] records per trigger, nearest the peer first, and
//! [`MAX_PER_MINUTE`] in all per minute: a peer that asks self-lookups over and over makes us
//! send only to itself, and no more than that. The memory of what was handed holds at most
//! [`MAX_HANDED`] entries, oldest forgotten first (a forgotten entry costs at most one
//! repeated `KadStore`). What a bound holds back reaches the peer with the next republish,
//! as it did before the transfer existed.
//!
//! The `KadStore`s are ordinary full stores (`cache: false`), tracked like a republish's
//! (an unanswered one counts against the peer), and counted as maintenance under
//! [`UpkeepCauses::transfer`](crate::dht::UpkeepCauses::transfer).

use std::{
    collections::{HashSet, VecDeque},
    net::SocketAddr,
    time::Duration,
};

use super::{query::RpcKind, Dht};
use crate::{
    dht::{
        traffic::{Cause, TrafficClass},
        RoutingTable,
    },
    wire::{KadStore, Message, Record},
    NodeId, Timestamp,
};

/// How many of the nodes nearest a key (among those we know) hand its record to a newcomer.
const TRANSFER_SENDERS: usize = 2;

/// Most records handed to one peer per trigger (newcomer or rejoin).
const MAX_PER_NEWCOMER: usize = 32;

/// Most records handed per minute, to all peers together.
const MAX_PER_MINUTE: usize = 128;

/// Most (peer, record version) pairs remembered as handed.
const MAX_HANDED: usize = 4096;

const WINDOW: Duration = Duration::from_secs(60);

/// (peer, key, publisher, version): one record version handed to one peer.
type Handed = (NodeId, NodeId, NodeId, u64);

/// What was handed to whom, and the rate window.
#[derive(Clone, Debug, Default)]
pub(super) struct Handoff {
    handed: HashSet<Handed>,
    /// `handed` in the order it was filled, to forget the oldest first.
    order: VecDeque<Handed>,
    window_start: Option<Timestamp>,
    sent_in_window: usize,
}

impl Handoff {
    /// How many records may still be handed in the current minute.
    fn budget(&mut self, now: Timestamp) -> usize {
        if self.window_start.is_none_or(|start| now >= start + WINDOW) {
            self.window_start = Some(now);
            self.sent_in_window = 0;
        }
        MAX_PER_MINUTE.saturating_sub(self.sent_in_window)
    }

    fn was_handed(&self, peer: &NodeId, record: &Record) -> bool {
        self.handed.contains(&(*peer, record.key, record.publisher, record.version))
    }

    fn note(&mut self, peer: NodeId, record: &Record) {
        let entry = (peer, record.key, record.publisher, record.version);
        if !self.handed.insert(entry) {
            return;
        }
        self.order.push_back(entry);
        while self.order.len() > MAX_HANDED {
            if let Some(old) = self.order.pop_front() {
                self.handed.remove(&old);
            }
        }
        self.sent_in_window += 1;
    }

    /// Forgets what was handed to `peer`: it restarted and may hold nothing.
    fn forget(&mut self, peer: &NodeId) {
        self.order.retain(|(p, ..)| p != peer);
        self.handed.retain(|(p, ..)| p != peer);
    }
}

/// Whether `me`, holding a record under `key`, hands it to `peer` (rules 1 and 2 of the
/// [module docs](self)), judged by what `table` knows.
fn should_hand(table: &RoutingTable, me: &NodeId, k: usize, key: &NodeId, peer: &NodeId) -> bool {
    let mine = me.distance(key);
    let others = || table.iter().map(|e| e.contact.id).filter(|id| id != peer);
    // Rule 2 first: it is the one most records fail, and stops early.
    if others().filter(|id| id.distance(key) < mine).take(TRANSFER_SENDERS).count()
        >= TRANSFER_SENDERS
    {
        return false;
    }
    let theirs = peer.distance(key);
    let closer = others().filter(|id| id.distance(key) < theirs).take(k).count();
    closer + usize::from(mine < theirs) < k
}

impl Dht {
    /// `peer` at `addr` is new to the table (`rejoined` false) or asked a self-lookup
    /// (`rejoined` true): hands it the held records it should hold (see the
    /// [module docs](self)).
    pub(super) fn hand_over(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        rejoined: bool,
    ) {
        if !self.config.join_transfer || !self.certified.contains(&peer) || peer == self.me {
            return;
        }
        if rejoined {
            self.handoff.forget(&peer);
        }
        let budget = self.handoff.budget(now).min(MAX_PER_NEWCOMER);
        if budget == 0 || self.records.is_empty() {
            return;
        }
        let (me, k, secs) = (self.me, self.config.k, now.as_secs());
        let mut due: Vec<Record> = self
            .records
            .iter_held()
            .filter(|r| r.expires_at > secs && !self.handoff.was_handed(&peer, r))
            .filter(|r| should_hand(&self.table, &me, k, &r.key, &peer))
            .cloned()
            .collect();
        // The records the peer is nearest to are the ones it is surest to be asked for.
        due.sort_by_key(|r| peer.distance(&r.key));
        due.truncate(budget);
        let cause = Some(Cause::Transfer);
        for record in due {
            self.handoff.note(peer, &record);
            let rpc = self.fresh_rpc();
            self.track(now, rpc, peer, None, RpcKind::Store, cause);
            let store = KadStore { rpc, record, cache: false, client: false };
            let message = Message::KadStore(Box::new(store));
            self.request(peer, addr, message, TrafficClass::Maintenance, cause);
        }
    }
}

#[cfg(test)]
mod tests;
