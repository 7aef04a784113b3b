//! Queries: starting a lookup for a purpose, feeding it the answers, sending what it asks,
//! and turning its outcome into a [`DhtEvent`] (or the stores of a put).

use std::net::SocketAddr;

use super::Dht;
use crate::{
    dht::{
        traffic::{Cause, TrafficClass},
        DhtError, DhtEvent, Lookup, LookupOutcome, QueryId, QueryStats, RecordEvent, RoutingEvent,
    },
    wire::{Contact, KadPing, KadStore, KadValue, Message, Record},
    NodeId, Timestamp,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RpcKind {
    Lookup,
    Ping,
    Store,
    /// A [`KadRenew`](crate::wire::KadRenew): its records are in `Renewals`.
    Renew,
}

/// A request in flight.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rpc {
    pub(super) peer: NodeId,
    query: Option<QueryId>,
    kind: RpcKind,
    /// The maintenance it serves, if any: its answer is charged there.
    cause: Option<Cause>,
    pub(super) deadline: Timestamp,
}

#[derive(Clone, Debug)]
pub(super) enum Purpose {
    /// A public find_node.
    FindNode,
    /// A public get; `only` names the one publisher (besides the master) accepted.
    Get { only: Option<NodeId> },
    /// A public get that merges the records of every holder among the k closest.
    GetAll,
    /// Store `record` at the k closest; `public` when an application asked, otherwise a
    /// republish.
    Put { record: Box<Record>, public: bool },
    /// Bootstrap, post-restore check (`cause` Bootstrap) or bucket refresh: no event.
    Refresh { cause: Cause },
}

impl Purpose {
    /// The class its messages are counted in.
    fn class(&self) -> TrafficClass {
        match self {
            Purpose::FindNode | Purpose::Get { .. } | Purpose::GetAll => TrafficClass::Query,
            Purpose::Put { public: true, .. } => TrafficClass::Query,
            Purpose::Put { public: false, .. } | Purpose::Refresh { .. } => {
                TrafficClass::Maintenance
            }
        }
    }

    /// The maintenance it serves, if any.
    fn cause(&self) -> Option<Cause> {
        match self {
            Purpose::Refresh { cause } => Some(*cause),
            Purpose::Put { public: false, .. } => Some(Cause::Republish),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct Query {
    pub(super) purpose: Purpose,
    pub(super) lookup: Lookup,
    started: Timestamp,
    hops: u32,
    pub(super) requests: usize,
    /// (put) Stores (and renews, per record) sent and not yet answered.
    pub(super) pending_stores: usize,
    /// (put) Nodes holding the record.
    pub(super) stored: usize,
    /// (republish) We found k nodes closer to the key than ourselves: once one of them took
    /// the record, our copy waits longer before its next republish (`RecordStore::surplus`).
    surplus: bool,
    /// (put) First refusal heard.
    refusal: Option<String>,
    /// (get) Verified records found, one per publisher.
    found: Vec<Record>,
}

impl Dht {
    pub(super) fn start(&mut self, now: Timestamp, target: NodeId, purpose: Purpose) -> QueryId {
        self.start_with(now, target, purpose, Vec::new())
    }

    /// Starts a query for `purpose` that already holds the records `found` (a get_all's own).
    pub(super) fn start_with(
        &mut self,
        now: Timestamp,
        target: NodeId,
        purpose: Purpose,
        found: Vec<Record>,
    ) -> QueryId {
        let query = self.fresh_query();
        let seeds = self.table.closest(&target, self.config.k);
        let lookup = match &purpose {
            // A republish into a neighbourhood we know first-hand (as many contacts as its
            // last lookup found, at most k, each heard from within the liveness window, none
            // failing since) skips the lookup: we hold the record, so we are among its k
            // closest, and Kademlia nodes know their own neighbourhood best. The lookup costs
            // more than the stores.
            Purpose::Put { record, public: false }
                if self.knows_first_hand(
                    now,
                    &seeds,
                    self.records.neighbourhood(&record.key, &record.publisher),
                ) =>
            {
                Lookup::known(now, self.me, target, seeds, &self.config)
            }
            Purpose::Get { .. } => Lookup::find_value(now, self.me, target, seeds, &self.config),
            Purpose::GetAll => Lookup::find_all(now, self.me, target, seeds, &self.config),
            _ => Lookup::find_node(now, self.me, target, seeds, &self.config),
        };
        let q = Query {
            purpose,
            lookup,
            started: now,
            hops: 0,
            requests: 0,
            pending_stores: 0,
            stored: 0,
            surplus: false,
            refusal: None,
            found,
        };
        self.queries.insert(query, q);
        self.advance(now);
        query
    }

    /// Whether `nodes` are as many contacts as the last lookup there found (`found`, 0 for
    /// none yet) or k, whichever is fewer, all heard from within the liveness window, none
    /// failing since.
    fn knows_first_hand(&self, now: Timestamp, nodes: &[Contact], found: usize) -> bool {
        let window = self.config.liveness_window;
        found > 0
            && nodes.len() >= found.min(self.config.k)
            && nodes.iter().all(|c| {
                self.table
                    .get(&c.id)
                    .is_some_and(|e| e.failures == 0 && now.saturating_since(e.last_seen) < window)
            })
    }

    /// Takes an answer to one of our requests; returns `message` when it is none.
    pub(super) fn handle_reply(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        message: Message,
    ) -> Option<Message> {
        let rpc = match &message {
            Message::KadPong(p) => Some(p.rpc),
            Message::KadNodes(n) => Some(n.rpc),
            Message::KadValue(v) => Some(v.rpc),
            Message::KadStored(s) => Some(s.rpc),
            Message::KadRenewed(r) => Some(r.rpc),
            Message::Error(e) => Some(e.seq),
            _ => None,
        };
        let cause = rpc.and_then(|n| self.rpcs.get(&n)).filter(|r| r.peer == peer);
        if let Some(cause) = cause.and_then(|r| r.cause) {
            self.traffic.count_reply(cause, &message);
        }
        match message {
            Message::KadPong(p) => {
                if self.take_rpc(p.rpc, peer, RpcKind::Ping).is_some() {
                    self.table.handle_verified(now, Contact { id: peer, addr: addr.into() });
                }
            }
            Message::KadNodes(n) => {
                if let Some(query) = self.take_rpc(n.rpc, peer, RpcKind::Lookup) {
                    if let Some(q) = self.queries.get_mut(&query) {
                        if n.client {
                            q.lookup.handle_client_nodes(now, &peer, n.nodes);
                        } else {
                            q.lookup.handle_nodes(now, &peer, n.nodes);
                        }
                    }
                }
            }
            Message::KadValue(v) => self.on_value(now, peer, *v),
            Message::KadStored(s) => {
                if let Some(query) = self.take_rpc(s.rpc, peer, RpcKind::Store) {
                    if let Some(q) = self.queries.get_mut(&query) {
                        q.pending_stores -= 1;
                        q.stored += 1;
                    }
                }
            }
            Message::KadRenewed(r) => self.on_renewed(now, peer, addr, r),
            Message::Error(e) if self.rpcs.get(&e.seq).is_some_and(|r| r.peer == peer) => {
                if let Some(rpc) = self.rpcs.get(&e.seq).copied() {
                    if rpc.kind == RpcKind::Store {
                        if let Some(q) = rpc.query.and_then(|q| self.queries.get_mut(&q)) {
                            q.refusal.get_or_insert(e.detail);
                        }
                    }
                }
                self.fail_rpc(now, e.seq);
            }
            other => return Some(other),
        }
        None
    }

    pub(super) fn take_rpc(&mut self, rpc: u32, peer: NodeId, kind: RpcKind) -> Option<QueryId> {
        let entry = self.rpcs.get(&rpc)?;
        if entry.peer != peer || entry.kind != kind {
            return None;
        }
        let entry = self.rpcs.remove(&rpc)?;
        // A ping has no query; report it as a hit with a dummy id the callers ignore.
        entry.query.or(Some(QueryId(0)))
    }

    pub(super) fn fail_rpc(&mut self, now: Timestamp, rpc: u32) {
        let Some(entry) = self.rpcs.remove(&rpc) else { return };
        self.table.handle_failure(now, &entry.peer);
        if entry.kind == RpcKind::Renew {
            self.renew_failed(rpc);
            return;
        }
        let Some(q) = entry.query.and_then(|q| self.queries.get_mut(&q)) else { return };
        match entry.kind {
            RpcKind::Lookup => q.lookup.handle_failure(now, &entry.peer),
            RpcKind::Store => q.pending_stores -= 1,
            RpcKind::Ping | RpcKind::Renew => {}
        }
    }

    fn on_value(&mut self, now: Timestamp, peer: NodeId, value: KadValue) {
        let Some(query) = self.take_rpc(value.rpc, peer, RpcKind::Lookup) else { return };
        let Some(q) = self.queries.get(&query) else { return };
        let target = q.lookup.target();
        let only = match q.purpose {
            Purpose::Get { only } => only,
            _ => None,
        };
        let holds = !value.records.is_empty();
        let records: Vec<Record> = value
            .records
            .into_iter()
            .filter(|r| {
                r.key == target
                    && self.allowed(only, r)
                    && r.embedded_key().and_then(|k| self.records.check(now, r, &k)).is_ok()
            })
            .collect();
        let Some(q) = self.queries.get_mut(&query) else { return };
        if !holds && value.client {
            q.lookup.handle_client_nodes(now, &peer, value.closer);
            return;
        }
        if !holds {
            q.lookup.handle_nodes(now, &peer, value.closer);
            return;
        }
        match records.first() {
            // Forged, stale or foreign records only: the peer failed us.
            None => q.lookup.handle_failure(now, &peer),
            Some(first) => {
                q.lookup.handle_record(now, &peer, first.clone());
                merge(&mut q.found, records);
            }
        }
    }

    /// Sends what the parts want sent and finishes what is done.
    pub(super) fn advance(&mut self, now: Timestamp) {
        while let Some(event) = self.table.poll_event() {
            match event {
                RoutingEvent::Ping { contact } => {
                    let rpc = self.fresh_rpc();
                    self.track(now, rpc, contact.id, None, RpcKind::Ping, Some(Cause::Ping));
                    let ping = Message::KadPing(KadPing { rpc, client: false });
                    let (to, addr) = (contact.id, contact.addr.0);
                    self.request(to, addr, ping, TrafficClass::Maintenance, Some(Cause::Ping));
                }
                // A client's table only seeds its own lookups, which touch the buckets they
                // use; nobody looks for it. Refreshing its idle buckets was most of the DHT's
                // upkeep in the 1,000-node day (42,889 of 59,839 WAN bytes per node-hour).
                RoutingEvent::Refresh { .. } if self.client => {}
                RoutingEvent::Refresh { target } => {
                    self.start(now, target, Purpose::Refresh { cause: Cause::Refresh });
                }
            }
        }
        let mut due = Vec::new();
        while let Some(event) = self.records.poll_event() {
            if let RecordEvent::Republish { record } = event {
                due.push(record);
            }
        }
        if !due.is_empty() {
            self.start_republishes(now, due);
        }
        let ids: Vec<QueryId> = self.queries.keys().copied().collect();
        for id in ids {
            self.step(now, id);
        }
        self.flush_renewals(now);
        // Something may have changed: write the difference a little later, in one batch.
        if let Some(p) = self.persist.as_mut() {
            p.at.get_or_insert(now + crate::dht::persist::PERSIST_DELAY);
        }
    }

    pub(super) fn track(
        &mut self,
        now: Timestamp,
        rpc: u32,
        peer: NodeId,
        query: Option<QueryId>,
        kind: RpcKind,
        cause: Option<Cause>,
    ) {
        // Lookup requests outlive the lookup's own deadline a little, so a late answer is
        // still matched (the lookup uses late answers).
        let wait = if kind == RpcKind::Lookup {
            self.config.request_timeout * 2
        } else {
            self.config.request_timeout
        };
        self.rpcs.insert(rpc, Rpc { peer, query, kind, cause, deadline: now + wait });
    }

    fn step(&mut self, now: Timestamp, id: QueryId) {
        let mut sends = Vec::new();
        let Some(q) = self.queries.get_mut(&id) else { return };
        while let Some(request) = q.lookup.poll_request() {
            sends.push(request);
        }
        q.requests += sends.len();
        let (class, cause) = (q.purpose.class(), q.purpose.cause());
        for request in sends {
            let rpc = self.fresh_rpc();
            self.track(now, rpc, request.to.id, Some(id), RpcKind::Lookup, cause);
            let (to, addr) = (request.to.id, request.to.addr.0);
            self.request(to, addr, request.message(rpc), class, cause);
        }
        let Some(q) = self.queries.get_mut(&id) else { return };
        if let Some(result) = q.lookup.poll_event() {
            q.hops = result.hops;
            self.table.handle_lookup(now, &result.target);
            // The lookup also went into the range of every contact that answered it.
            for contact in &result.queried {
                self.table.handle_touched(now, &contact.id);
            }
            self.finish_lookup(now, id, result.outcome);
        }
        let Some(q) = self.queries.get(&id) else { return };
        if q.lookup.is_finished() && q.pending_stores == 0 {
            if let Purpose::Put { record, public } = &q.purpose {
                let result = if q.stored > 0 {
                    Ok(q.stored)
                } else if let Some(detail) = &q.refusal {
                    Err(DhtError::RefusedByPeers { detail: detail.clone() })
                } else {
                    Err(DhtError::TimedOut)
                };
                if q.surplus && q.stored > 0 {
                    self.records.surplus(now, &record.key, &record.publisher);
                }
                if *public {
                    let event =
                        DhtEvent::Put { query: id, key: record.key, result, stats: stats(q, now) };
                    self.events.push_back(event);
                }
                self.queries.remove(&id);
            }
        }
    }

    fn finish_lookup(&mut self, now: Timestamp, id: QueryId, outcome: LookupOutcome) {
        let Some(q) = self.queries.get(&id) else { return };
        let target = q.lookup.target();
        let stats = stats(q, now);
        let failure = |outcome: &LookupOutcome, none: DhtError| match outcome {
            LookupOutcome::Failed if self.table.is_empty() => DhtError::NoPeers,
            LookupOutcome::Failed => DhtError::TimedOut,
            _ => none,
        };
        match (q.purpose.clone(), outcome) {
            (Purpose::Refresh { .. }, _) => {
                self.queries.remove(&id);
            }
            (Purpose::FindNode, LookupOutcome::Closest(nodes)) => {
                self.queries.remove(&id);
                let result = Ok(nodes);
                self.events.push_back(DhtEvent::FoundNodes { query: id, target, result, stats });
            }
            (Purpose::FindNode, other) => {
                let result = Err(failure(&other, DhtError::TimedOut));
                self.queries.remove(&id);
                self.events.push_back(DhtEvent::FoundNodes { query: id, target, result, stats });
            }
            (Purpose::Get { .. }, LookupOutcome::Found { cache_at, .. }) => {
                let records = self.queries.remove(&id).map(|q| q.found).unwrap_or_default();
                if let (Some(at), Some(first)) = (cache_at, records.first()) {
                    // Paper §2.3: a copy at the closest node that answered without it, marked
                    // as a cache copy so it lives for the cache TTL only. Unanswered: nothing
                    // depends on it.
                    let rpc = self.fresh_rpc();
                    let store = KadStore { rpc, record: first.clone(), cache: true, client: false };
                    let message = Message::KadStore(Box::new(store));
                    self.send(at.addr.0, message, TrafficClass::Query, None);
                }
                let result = Ok(records);
                self.events.push_back(DhtEvent::Got { query: id, key: target, result, stats });
            }
            (Purpose::Get { .. } | Purpose::GetAll, other) => {
                let records = self.queries.remove(&id).map(|q| q.found).unwrap_or_default();
                let result = if records.is_empty() {
                    Err(failure(&other, DhtError::NotFound))
                } else {
                    Ok(records)
                };
                self.events.push_back(DhtEvent::Got { query: id, key: target, result, stats });
            }
            (Purpose::Put { record, public }, LookupOutcome::Closest(nodes)) => {
                let k = self.config.k;
                // A client holds no copies: nobody would ask it.
                let me_close = !self.client
                    && (nodes.len() < k
                        || nodes
                            .last()
                            .is_some_and(|l| self.me.distance(&target) < l.id.distance(&target)));
                if !public && q.requests > 0 {
                    // A lookup ran (not one skipped as known): what it found is the
                    // neighbourhood the next republish checks the table against.
                    self.records.found_neighbourhood(&record.key, &record.publisher, nodes.len());
                }
                if !public {
                    let t = &mut self.traffic;
                    t.republishes = t.republishes.saturating_add(1);
                    if !me_close {
                        t.republishes_outside = t.republishes_outside.saturating_add(1);
                        if let Some(q) = self.queries.get_mut(&id) {
                            q.surplus = true;
                        }
                    } else {
                        self.records.responsible(&record.key, &record.publisher);
                    }
                }
                let mut stored = 0;
                if me_close {
                    if let Ok(key) = record.embedded_key() {
                        if self.records.put(now, (*record).clone(), &key).is_ok() {
                            stored += 1;
                        }
                    }
                }
                let (class, cause) = if public {
                    (TrafficClass::Query, None)
                } else {
                    (TrafficClass::Maintenance, Some(Cause::Republish))
                };
                let mut sent = 0;
                if !public {
                    // A republish renews what its peers hold (`renew.rs`).
                    for node in nodes.iter().take(k) {
                        self.queue_renew(now, id, node.id, node.addr.0, &record);
                        sent += 1;
                    }
                }
                for node in nodes.iter().take(k).filter(|_| public) {
                    let rpc = self.fresh_rpc();
                    self.track(now, rpc, node.id, Some(id), RpcKind::Store, cause);
                    let store =
                        KadStore { rpc, record: (*record).clone(), cache: false, client: false };
                    let message = Message::KadStore(Box::new(store));
                    self.request(node.id, node.addr.0, message, class, cause);
                    sent += 1;
                }
                if let Some(q) = self.queries.get_mut(&id) {
                    q.stored += stored;
                    q.pending_stores += sent;
                    q.requests += sent;
                }
            }
            (Purpose::Put { record, .. }, _) => {
                // Nobody to store at: keep our own copy so a later republish spreads it.
                if let Ok(key) = record.embedded_key() {
                    if self.records.put(now, (*record).clone(), &key).is_ok() {
                        if let Some(q) = self.queries.get_mut(&id) {
                            q.stored += 1;
                        }
                    }
                }
            }
        }
    }
}

/// Adds `records` to `found`, one per publisher: a newer version replaces an older one.
fn merge(found: &mut Vec<Record>, records: Vec<Record>) {
    for record in records {
        match found.iter_mut().find(|r| r.publisher == record.publisher) {
            Some(held) if held.version < record.version => *held = record,
            Some(_) => {}
            None => found.push(record),
        }
    }
}

fn stats(q: &Query, now: Timestamp) -> QueryStats {
    QueryStats { hops: q.hops, requests: q.requests, elapsed: now.saturating_since(q.started) }
}
