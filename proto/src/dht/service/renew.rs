//! Republishing in short: a holder's republish renews the copies its peers already hold with
//! one [`KadRenew`] per peer naming the records (key, publisher, version), and stores in full
//! only the records a peer answers it lacks.
//!
//! # Why
//!
//! A republish re-stored the whole signed record at each of the k closest nodes, hourly, and
//! nearly always at nodes that held that very version already: in a 300-node night the
//! republishes' `KadStore`s and their answers were two thirds of the DHT's upkeep. A record
//! named costs about 50 bytes where the record costs about 190, and the records a holder
//! republishes at one moment (its store brings those coming due within the next minute
//! forward with the one due, see `record/republish.rs`) share the peers they go to, so they
//! also share one message and one answer per peer.
//!
//! # How
//!
//! A republish whose lookup finished (or was skipped) queues its record for each node found
//! instead of sending a store. The queue goes out once no other republish is still looking
//! up its nodes, or [`GATHER`] after its oldest entry, as one `KadRenew` per peer (at most
//! [`MAX_RENEW_ENTRIES`] records each). The peer renews every named record it holds in that
//! version for the network, exactly as a store of the same record would
//! ([`RecordStore::renew`](crate::dht::RecordStore::renew)), and answers [`KadRenewed`] with
//! the positions of the others; those go out as full `KadStore`s, tracked for the same
//! republish. A renew that fails (no answer, a refusal, the session lost) counts as a store
//! that failed, for every record it named; those whose republish skipped its lookup are
//! republished again at once, after a lookup.
//!
//! A renew gives a peer no power a store of the same record would not: it can only extend
//! the lifetime of a copy the receiver holds, within the record's own signed expiry.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::Duration,
};

use super::{
    query::{Purpose, RpcKind},
    Dht,
};
use crate::{
    dht::{
        traffic::{Cause, TrafficClass},
        QueryId,
    },
    wire::{
        KadPing, KadRenew, KadRenewed, KadStore, Message, Record, RecordRef, MAX_RENEW_ENTRIES,
    },
    NodeId, Timestamp,
};

/// The longest a republish's records wait for the other republishes of the same moment.
pub(crate) const GATHER: Duration = Duration::from_secs(5);

/// One record to renew at one peer, for one republish.
#[derive(Clone, Debug)]
struct Entry {
    query: QueryId,
    record: Box<Record>,
    /// The republish looked its nodes up (rather than trusting the table's neighbourhood).
    looked_up: bool,
}

/// Renews waiting to go out, and those in flight.
#[derive(Clone, Debug, Default)]
pub(super) struct Renewals {
    /// Per peer, its address and the records for it, in the order queued.
    pending: BTreeMap<NodeId, (SocketAddr, Vec<Entry>)>,
    /// When the oldest pending entry was queued.
    since: Option<Timestamp>,
    /// What each renew in flight named, by request number.
    inflight: HashMap<u32, Vec<Entry>>,
    /// Republishes waiting for pings to their neighbourhood.
    parked: Vec<Parked>,
    /// Republishes due together are being started: nothing goes out before the last.
    starting: bool,
}

/// Records due together whose neighbourhoods the table knows but has not heard from lately:
/// they wait for the pings to it.
#[derive(Clone, Debug)]
struct Parked {
    records: Vec<Record>,
    pings: Vec<u32>,
    until: Timestamp,
}

impl Renewals {
    /// When the pending renews go out at the latest.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        let parked = self.parked.iter().map(|p| p.until).min();
        [self.since.map(|t| t + GATHER), parked].into_iter().flatten().min()
    }
}

impl Dht {
    /// Starts the republishes of `records`, due together. Where the table knows a record's
    /// neighbourhood but has not heard some of it within the liveness window, those contacts
    /// are pinged first (a ping and its answer cost a fraction of a lookup) and the
    /// republishes wait for the answers: a contact that answers is known alive and the
    /// republish renews there without a lookup; one that does not counts a failure, and the
    /// republish looks the neighbourhood up.
    pub(super) fn republish(&mut self, now: Timestamp, records: Vec<Record>) {
        let (k, window) = (self.config.k, self.config.liveness_window);
        let mut stale: BTreeMap<NodeId, SocketAddr> = BTreeMap::new();
        for r in &records {
            let found = self.records.neighbourhood(&r.key, &r.publisher);
            let seeds = self.table.closest(&r.key, k);
            let failing =
                seeds.iter().any(|c| self.table.get(&c.id).is_none_or(|e| e.failures > 0));
            if found == 0 || seeds.len() < found.min(k) || failing {
                continue; // a lookup either way
            }
            for c in seeds {
                let heard = self.table.get(&c.id).map(|e| e.last_seen);
                if heard.is_none_or(|t| now.saturating_since(t) >= window) {
                    stale.insert(c.id, c.addr.0);
                }
            }
        }
        if stale.is_empty() {
            self.start_republishes(now, records);
            return;
        }
        let cause = Some(Cause::Republish);
        let mut pings = Vec::new();
        for (peer, addr) in stale {
            let rpc = self.fresh_rpc();
            self.track(now, rpc, peer, None, RpcKind::Ping, cause);
            let ping = Message::KadPing(KadPing { rpc, client: false });
            self.request(peer, addr, ping, TrafficClass::Maintenance, cause);
            pings.push(rpc);
        }
        let until = pings.iter().filter_map(|n| self.rpcs.get(n)).map(|r| r.deadline).max();
        let until = until.unwrap_or(now);
        self.renewals.parked.push(Parked { records, pings, until });
    }

    /// Starts the parked republishes whose pings all came back or failed.
    pub(super) fn resume_parked(&mut self, now: Timestamp) {
        let (ready, waiting): (Vec<Parked>, Vec<Parked>) =
            std::mem::take(&mut self.renewals.parked).into_iter().partition(|p| {
                now >= p.until || p.pings.iter().all(|n| !self.rpcs.contains_key(n))
            });
        self.renewals.parked = waiting;
        let records: Vec<Record> = ready.into_iter().flat_map(|p| p.records).collect();
        if !records.is_empty() {
            self.start_republishes(now, records);
        }
    }

    /// Starts the republishes of `records` together: their renews go out once all of them
    /// have their nodes.
    fn start_republishes(&mut self, now: Timestamp, records: Vec<Record>) {
        let outer = std::mem::replace(&mut self.renewals.starting, true);
        for record in records {
            let key = record.key;
            self.start(now, key, Purpose::Put { record: Box::new(record), public: false });
        }
        self.renewals.starting = outer;
        self.flush_renewals(now);
    }

    /// Queues `record`, republished by query `id` (`looked_up`: after a lookup), for renewal
    /// at `peer`.
    pub(super) fn queue_renew(
        &mut self,
        now: Timestamp,
        id: QueryId,
        peer: NodeId,
        addr: SocketAddr,
        record: &Record,
        looked_up: bool,
    ) {
        let r = &mut self.renewals;
        r.since.get_or_insert(now);
        let slot = r.pending.entry(peer).or_insert_with(|| (addr, Vec::new()));
        slot.0 = addr;
        slot.1.push(Entry { query: id, record: Box::new(record.clone()), looked_up });
    }

    /// Sends the pending renews once no republish is still looking up its nodes, or when the
    /// oldest has waited [`GATHER`].
    pub(super) fn flush_renewals(&mut self, now: Timestamp) {
        let Some(since) = self.renewals.since else { return };
        if self.renewals.starting {
            return;
        }
        let looking = self.queries.values().any(|q| {
            matches!(q.purpose, Purpose::Put { public: false, .. }) && !q.lookup.is_finished()
        });
        if looking && now < since + GATHER {
            return;
        }
        self.renewals.since = None;
        let cause = Some(Cause::Republish);
        for (peer, (addr, entries)) in std::mem::take(&mut self.renewals.pending) {
            let mut entries = entries.into_iter().peekable();
            while entries.peek().is_some() {
                let chunk: Vec<Entry> = entries.by_ref().take(MAX_RENEW_ENTRIES).collect();
                let records = chunk.iter().map(|e| RecordRef::of(&e.record)).collect();
                let rpc = self.fresh_rpc();
                self.track(now, rpc, peer, None, RpcKind::Renew, cause);
                let renew = KadRenew { rpc, records, client: false };
                let message = Message::KadRenew(Box::new(renew));
                self.request(peer, addr, message, TrafficClass::Maintenance, cause);
                self.renewals.inflight.insert(rpc, chunk);
            }
        }
    }

    /// `peer` answered our renew: the records it renewed count as stored, the others go to
    /// it in full.
    pub(super) fn on_renewed(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        renewed: KadRenewed,
    ) {
        if self.take_rpc(renewed.rpc, peer, RpcKind::Renew).is_none() {
            return;
        }
        let Some(entries) = self.renewals.inflight.remove(&renewed.rpc) else { return };
        let cause = Some(Cause::Republish);
        for (i, Entry { query: id, record, .. }) in entries.into_iter().enumerate() {
            let held = u16::try_from(i).is_ok_and(|i| !renewed.missing.contains(&i));
            if held {
                if let Some(q) = self.queries.get_mut(&id) {
                    q.pending_stores = q.pending_stores.saturating_sub(1);
                    q.stored += 1;
                }
                continue;
            }
            // Still pending for the query: the store's own answer (or failure) settles it.
            let rpc = self.fresh_rpc();
            self.track(now, rpc, peer, Some(id), RpcKind::Store, cause);
            let store = KadStore { rpc, record: *record, cache: false, client: false };
            let message = Message::KadStore(Box::new(store));
            self.request(peer, addr, message, TrafficClass::Maintenance, cause);
            if let Some(q) = self.queries.get_mut(&id) {
                q.requests += 1;
            }
        }
    }

    /// A renew failed: every record it named counts as a store that failed, and a record
    /// whose republish trusted the table's neighbourhood is republished again at once, after
    /// a lookup (the peer now counts a failure, so the table no longer vouches for the
    /// neighbourhood): the dead neighbour's place goes to the next closest node now, not an
    /// interval later.
    pub(super) fn renew_failed(&mut self, now: Timestamp, rpc: u32) {
        let mut again = Vec::new();
        for entry in self.renewals.inflight.remove(&rpc).unwrap_or_default() {
            if let Some(q) = self.queries.get_mut(&entry.query) {
                q.pending_stores = q.pending_stores.saturating_sub(1);
            }
            if !entry.looked_up {
                again.push(*entry.record);
            }
        }
        if !again.is_empty() {
            self.start_republishes(now, again);
        }
    }
}

#[cfg(test)]
mod tests;
