//! Republishing in short: a holder's republish renews the copies its peers already hold with
//! a [`KadRenew`] naming the record (key, publisher, version), and stores the whole record only
//! at a peer that answers it lacks it.
//!
//! # Why
//!
//! A republish re-stored the whole signed record at each of the k closest nodes, hourly, and
//! nearly always at nodes that held that very version already: in a 300-node night the
//! republishes' `KadStore`s and their answers were two thirds of the DHT's upkeep. A record
//! named costs about 50 bytes where the record costs about 190. Records whose republishes
//! start at the same moment share one renew per peer.
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
//! that failed, for every record it named.
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
    wire::{KadRenew, KadRenewed, KadStore, Message, Record, RecordRef, MAX_RENEW_ENTRIES},
    NodeId, Timestamp,
};

/// The longest a republish's records wait for the other republishes of the same moment.
pub(crate) const GATHER: Duration = Duration::from_secs(5);

/// One record to renew at one peer, for one republish.
#[derive(Clone, Debug)]
struct Entry {
    query: QueryId,
    record: Box<Record>,
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
    /// Republishes due together are being started: nothing goes out before the last.
    starting: bool,
}

impl Renewals {
    /// When the pending renews go out at the latest.
    pub(super) fn poll_timeout(&self) -> Option<Timestamp> {
        self.since.map(|t| t + GATHER)
    }
}

impl Dht {
    /// Starts the republishes of `records`, due together: their renews go out once all of
    /// them have their nodes.
    pub(super) fn start_republishes(&mut self, now: Timestamp, records: Vec<Record>) {
        let outer = std::mem::replace(&mut self.renewals.starting, true);
        for record in records {
            let key = record.key;
            self.start(now, key, Purpose::Put { record: Box::new(record), public: false });
        }
        self.renewals.starting = outer;
        self.flush_renewals(now);
    }

    /// Queues `record`, republished by query `id`, for renewal at `peer`.
    pub(super) fn queue_renew(
        &mut self,
        now: Timestamp,
        id: QueryId,
        peer: NodeId,
        addr: SocketAddr,
        record: &Record,
    ) {
        let r = &mut self.renewals;
        r.since.get_or_insert(now);
        let slot = r.pending.entry(peer).or_insert_with(|| (addr, Vec::new()));
        slot.0 = addr;
        slot.1.push(Entry { query: id, record: Box::new(record.clone()) });
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
        for (i, Entry { query: id, record }) in entries.into_iter().enumerate() {
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

    /// A renew failed: every record it named counts as a store that failed.
    pub(super) fn renew_failed(&mut self, rpc: u32) {
        for entry in self.renewals.inflight.remove(&rpc).unwrap_or_default() {
            if let Some(q) = self.queries.get_mut(&entry.query) {
                q.pending_stores = q.pending_stores.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
