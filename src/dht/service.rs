//! [`Dht`]: the DHT service a node embeds. It owns the [`RoutingTable`], the [`RecordStore`]
//! and the running [`Lookup`]s, answers `Kad*` requests and runs queries by sending `Kad*`
//! requests through its owner's endpoint.
//!
//! # Who enters the routing table
//!
//! Only peers the link layer authenticated with a certificate: the owner reports every
//! `Event::Connected` ([`handle_connected`](Dht::handle_connected)); a `Kad*` message then
//! refreshes its sender only if that sender is such a peer. Contacts named in answers are
//! hearsay: lookups ask them (which opens an authenticated session), and only that session
//! admits them.
//!
//! # Bootstrapping
//!
//! The first contact that enters an empty table starts a lookup for our own id (paper §2.3),
//! which fills the buckets near us and announces us to our neighbours. In a fleet the first
//! contacts are the LSN, the master and children, so no extra configuration is needed.
//!
//! # Queries
//!
//! *put* runs a find_node lookup for the key, then sends `KadStore` to the k closest nodes
//! that answered (and keeps a copy when this node is among them). *get* runs a find_value
//! lookup; the records of the first answer holding any are verified and returned, and a copy
//! goes to the closest node that answered without them (paper §2.3 caching). Records are
//! republished every republish interval and buckets refreshed when idle, both by the parts'
//! own timers.
//!
//! # Request numbers
//!
//! `Kad*` requests use numbers with the top bit set, so an `Error` answer can be matched to a
//! DHT request without colliding with the overlay's own sequence numbers (which count up from
//! 1).

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    net::SocketAddr,
};

use super::{
    persist::{StoreOp, PERSIST_DELAY},
    DhtConfig, DhtError, DhtEvent, InsertOutcome, Lookup, LookupOutcome, QueryId, QueryStats,
    RecordEvent, RecordStore, RoutingEvent, RoutingTable,
};
use crate::{
    wire::{
        Contact, ErrorCode, ErrorMessage, KadNodes, KadPing, KadPong, KadStore, KadStored,
        KadValue, Message, Record,
    },
    NodeId, Timestamp,
};

/// Most records one `KadValue` carries, so an answer stays within a datagram's budget.
const MAX_VALUES_PER_ANSWER: usize = 8;

mod restore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RpcKind {
    Lookup,
    Ping,
    Store,
}

#[derive(Clone, Copy, Debug)]
struct Rpc {
    peer: NodeId,
    query: Option<QueryId>,
    kind: RpcKind,
    deadline: Timestamp,
}

#[derive(Clone, Debug)]
enum Purpose {
    /// A public find_node.
    FindNode,
    /// A public get.
    Get,
    /// Store `record` at the k closest; `public` when an application asked.
    Put { record: Box<Record>, public: bool },
    /// Bootstrap or bucket refresh: no event.
    Refresh,
}

#[derive(Clone, Debug)]
struct Query {
    purpose: Purpose,
    lookup: Lookup,
    started: Timestamp,
    hops: u32,
    requests: usize,
    /// (put) Stores sent and not yet answered.
    pending_stores: usize,
    /// (put) Nodes holding the record.
    stored: usize,
    /// (put) First refusal heard.
    refusal: Option<String>,
    /// (get) Records found, with the closest node that answered without them.
    found: Option<(Vec<Record>, Option<Contact>)>,
}

/// The DHT service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Dht {
    me: NodeId,
    config: DhtConfig,
    table: RoutingTable,
    records: RecordStore,
    certified: HashSet<NodeId>,
    queries: BTreeMap<QueryId, Query>,
    rpcs: HashMap<u32, Rpc>,
    next_rpc: u32,
    next_query: u64,
    bootstrapped: bool,
    outbox: VecDeque<(SocketAddr, Message)>,
    events: VecDeque<DhtEvent>,
    /// Persistence, once [`restore`](Dht::restore) switched it on.
    persist: Option<Persist>,
}

/// What was last written to the store, and when to write the next difference.
#[derive(Clone, Debug, Default)]
struct Persist {
    records: BTreeMap<(NodeId, NodeId), u64>,
    contacts: BTreeMap<NodeId, Contact>,
    at: Option<Timestamp>,
    ops: VecDeque<StoreOp>,
}

impl Dht {
    /// A service for the node with id `me`, started at `now`. `master` is the master's id (whose
    /// records override everyone's); `seed` drives the refresh targets.
    pub fn new(
        now: Timestamp,
        me: NodeId,
        master: NodeId,
        config: DhtConfig,
        seed: [u8; 32],
    ) -> Self {
        Dht {
            me,
            table: RoutingTable::new(me, &config, now, seed),
            records: RecordStore::new(&config, master),
            config,
            certified: HashSet::new(),
            queries: BTreeMap::new(),
            rpcs: HashMap::new(),
            next_rpc: 0,
            next_query: 0,
            bootstrapped: false,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            persist: None,
        }
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// The records held here.
    pub fn records(&self) -> &RecordStore {
        &self.records
    }

    /// The configuration.
    pub fn config(&self) -> &DhtConfig {
        &self.config
    }

    /// Number of queries running.
    pub fn running(&self) -> usize {
        self.queries.len()
    }

    /// The link layer authenticated `peer` (with a certificate) at `addr`.
    pub fn handle_connected(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        self.certified.insert(peer);
        self.seen(now, peer, addr);
    }

    /// The session with `peer` ended: requests to it fail.
    pub fn handle_disconnected(&mut self, now: Timestamp, peer: NodeId) {
        self.certified.remove(&peer);
        let rpcs: Vec<u32> =
            self.rpcs.iter().filter(|(_, r)| r.peer == peer).map(|(n, _)| *n).collect();
        for rpc in rpcs {
            self.fail_rpc(now, rpc);
        }
        self.advance(now);
    }

    /// Takes a `Kad*` message (or an `Error` answering one) from `peer` at `addr`. Returns the
    /// message when it is not for the DHT.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        message: Message,
    ) -> Option<Message> {
        match message {
            Message::KadPing(p) => self.reply(addr, Message::KadPong(KadPong { rpc: p.rpc })),
            Message::KadFindNode(f) => {
                let nodes = self.table.closest(&f.target, self.config.k);
                self.reply(addr, Message::KadNodes(KadNodes { rpc: f.rpc, nodes }));
            }
            Message::KadFindValue(f) => {
                let records: Vec<Record> = self
                    .records
                    .get(&f.key)
                    .filter(|r| r.expires_at > now.as_secs())
                    .take(MAX_VALUES_PER_ANSWER)
                    .cloned()
                    .collect();
                let closer = if records.is_empty() {
                    self.table.closest(&f.key, self.config.k)
                } else {
                    vec![]
                };
                let value = KadValue { rpc: f.rpc, records, closer };
                self.reply(addr, Message::KadValue(Box::new(value)));
            }
            Message::KadStore(s) => {
                let KadStore { rpc, record } = *s;
                let answer =
                    match record.embedded_key().and_then(|key| self.records.put(now, record, &key))
                    {
                        Ok(_) => Message::KadStored(KadStored { rpc }),
                        Err(error) => Message::Error(ErrorMessage {
                            seq: rpc,
                            code: ErrorCode::REFUSED,
                            detail: error.to_string(),
                        }),
                    };
                self.reply(addr, answer);
            }
            Message::KadPong(p) => {
                if self.take_rpc(p.rpc, peer, RpcKind::Ping).is_some() {
                    self.table.handle_verified(now, Contact { id: peer, addr: addr.into() });
                }
            }
            Message::KadNodes(n) => {
                if let Some(query) = self.take_rpc(n.rpc, peer, RpcKind::Lookup) {
                    if let Some(q) = self.queries.get_mut(&query) {
                        q.lookup.handle_nodes(now, &peer, n.nodes);
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
        // Any Kad message on an authenticated session proves its sender alive there.
        if self.certified.contains(&peer) {
            self.seen(now, peer, addr);
        }
        self.advance(now);
        None
    }

    /// Starts a find_node lookup for `target`.
    pub fn find_node(&mut self, now: Timestamp, target: NodeId) -> QueryId {
        self.start(now, target, Purpose::FindNode)
    }

    /// Starts a get: every record under `key`.
    pub fn get(&mut self, now: Timestamp, key: NodeId) -> QueryId {
        let local: Vec<Record> =
            self.records.get(&key).filter(|r| r.expires_at > now.as_secs()).cloned().collect();
        if !local.is_empty() {
            let query = self.fresh_query();
            let stats = QueryStats::default();
            self.events.push_back(DhtEvent::Got { query, key, result: Ok(local), stats });
            return query;
        }
        self.start(now, key, Purpose::Get)
    }

    /// Starts a put of a signed `record`: checked here first (a refusal comes back at once as
    /// [`DhtError::Refused`]), then stored at the k closest nodes.
    pub fn put(&mut self, now: Timestamp, record: Record) -> QueryId {
        let checked = record.embedded_key().and_then(|key| self.records.check(now, &record, &key));
        if let Err(error) = checked {
            let query = self.fresh_query();
            self.events.push_back(DhtEvent::Put {
                query,
                key: record.key,
                result: Err(DhtError::Refused(error)),
                stats: QueryStats::default(),
            });
            return query;
        }
        let key = record.key;
        self.start(now, key, Purpose::Put { record: Box::new(record), public: true })
    }

    /// The next message to send, and where.
    pub fn poll_message(&mut self) -> Option<(SocketAddr, Message)> {
        self.outbox.pop_front()
    }

    /// The next query result.
    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let rpcs = self.rpcs.values().map(|r| r.deadline).min();
        let lookups = self.queries.values().filter_map(|q| q.lookup.poll_timeout()).min();
        let persist = self.persist.as_ref().and_then(|p| p.at);
        [rpcs, lookups, self.table.poll_timeout(), self.records.poll_timeout(), persist]
            .into_iter()
            .flatten()
            .min()
    }

    /// Expires requests, refreshes idle buckets, republishes and expires records.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let due: Vec<u32> =
            self.rpcs.iter().filter(|(_, r)| r.deadline <= now).map(|(n, _)| *n).collect();
        for rpc in due {
            self.fail_rpc(now, rpc);
        }
        for q in self.queries.values_mut() {
            if q.lookup.poll_timeout().is_some_and(|t| t <= now) {
                q.lookup.handle_timeout(now);
            }
        }
        self.table.handle_timeout(now);
        self.records.handle_timeout(now);
        self.advance(now);
        if self.persist.as_ref().is_some_and(|p| p.at.is_some_and(|t| t <= now)) {
            self.write_difference();
        }
    }

    fn reply(&mut self, addr: SocketAddr, message: Message) {
        self.outbox.push_back((addr, message));
    }

    fn seen(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        let was_empty = self.table.is_empty();
        let outcome = self.table.handle_verified(now, Contact { id: peer, addr: addr.into() });
        if was_empty && outcome == InsertOutcome::Inserted && !self.bootstrapped {
            self.bootstrapped = true;
            let me = self.me;
            self.start(now, me, Purpose::Refresh);
        }
    }

    fn fresh_query(&mut self) -> QueryId {
        self.next_query += 1;
        QueryId(self.next_query)
    }

    fn fresh_rpc(&mut self) -> u32 {
        self.next_rpc = self.next_rpc.wrapping_add(1);
        self.next_rpc | 0x8000_0000
    }

    fn start(&mut self, now: Timestamp, target: NodeId, purpose: Purpose) -> QueryId {
        let query = self.fresh_query();
        let seeds = self.table.closest(&target, self.config.k);
        let lookup = match purpose {
            Purpose::Get => Lookup::find_value(now, self.me, target, seeds, &self.config),
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
            refusal: None,
            found: None,
        };
        self.queries.insert(query, q);
        self.advance(now);
        query
    }

    fn take_rpc(&mut self, rpc: u32, peer: NodeId, kind: RpcKind) -> Option<QueryId> {
        let entry = self.rpcs.get(&rpc)?;
        if entry.peer != peer || entry.kind != kind {
            return None;
        }
        let entry = self.rpcs.remove(&rpc)?;
        // A ping has no query; report it as a hit with a dummy id the callers ignore.
        entry.query.or(Some(QueryId(0)))
    }

    fn fail_rpc(&mut self, now: Timestamp, rpc: u32) {
        let Some(entry) = self.rpcs.remove(&rpc) else { return };
        self.table.handle_failure(now, &entry.peer);
        let Some(q) = entry.query.and_then(|q| self.queries.get_mut(&q)) else { return };
        match entry.kind {
            RpcKind::Lookup => q.lookup.handle_failure(now, &entry.peer),
            RpcKind::Store => q.pending_stores -= 1,
            RpcKind::Ping => {}
        }
    }

    fn on_value(&mut self, now: Timestamp, peer: NodeId, value: KadValue) {
        let Some(query) = self.take_rpc(value.rpc, peer, RpcKind::Lookup) else { return };
        let Some(q) = self.queries.get_mut(&query) else { return };
        if value.records.is_empty() {
            q.lookup.handle_nodes(now, &peer, value.closer);
            return;
        }
        let target = q.lookup.target();
        let records: Vec<Record> = value
            .records
            .into_iter()
            .filter(|r| {
                r.key == target
                    && r.embedded_key().and_then(|k| self.records.check(now, r, &k)).is_ok()
            })
            .collect();
        match records.first() {
            // Forged or stale records only: the peer failed us.
            None => q.lookup.handle_failure(now, &peer),
            Some(first) => {
                q.lookup.handle_record(now, &peer, first.clone());
                q.found = Some((records, None));
            }
        }
    }

    /// Sends what the parts want sent and finishes what is done.
    fn advance(&mut self, now: Timestamp) {
        while let Some(event) = self.table.poll_event() {
            match event {
                RoutingEvent::Ping { contact } => {
                    let rpc = self.fresh_rpc();
                    self.track(now, rpc, contact.id, None, RpcKind::Ping);
                    self.reply(contact.addr.0, Message::KadPing(KadPing { rpc }));
                }
                RoutingEvent::Refresh { target } => {
                    self.start(now, target, Purpose::Refresh);
                }
            }
        }
        while let Some(event) = self.records.poll_event() {
            if let RecordEvent::Republish { record } = event {
                let key = record.key;
                self.start(now, key, Purpose::Put { record: Box::new(record), public: false });
            }
        }
        let ids: Vec<QueryId> = self.queries.keys().copied().collect();
        for id in ids {
            self.step(now, id);
        }
        // Something may have changed: write the difference a little later, in one batch.
        if let Some(p) = self.persist.as_mut() {
            p.at.get_or_insert(now + PERSIST_DELAY);
        }
    }

    fn track(
        &mut self,
        now: Timestamp,
        rpc: u32,
        peer: NodeId,
        query: Option<QueryId>,
        kind: RpcKind,
    ) {
        // Lookup requests outlive the lookup's own deadline a little, so a late answer is
        // still matched (the lookup uses late answers).
        let wait = if kind == RpcKind::Lookup {
            self.config.request_timeout * 2
        } else {
            self.config.request_timeout
        };
        self.rpcs.insert(rpc, Rpc { peer, query, kind, deadline: now + wait });
    }

    fn step(&mut self, now: Timestamp, id: QueryId) {
        let mut sends = Vec::new();
        let Some(q) = self.queries.get_mut(&id) else { return };
        while let Some(request) = q.lookup.poll_request() {
            sends.push(request);
        }
        q.requests += sends.len();
        for request in sends {
            let rpc = self.fresh_rpc();
            self.track(now, rpc, request.to.id, Some(id), RpcKind::Lookup);
            self.reply(request.to.addr.0, request.message(rpc));
        }
        let Some(q) = self.queries.get_mut(&id) else { return };
        if let Some(result) = q.lookup.poll_event() {
            q.hops = result.hops;
            self.table.handle_lookup(now, &result.target);
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
            (Purpose::Refresh, _) => {
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
            (Purpose::Get, LookupOutcome::Found { cache_at, .. }) => {
                let records = self.queries.remove(&id).and_then(|q| q.found).map(|f| f.0);
                let records = records.unwrap_or_default();
                if let (Some(at), Some(first)) = (cache_at, records.first()) {
                    // Paper §2.3: a copy at the closest node that answered without it.
                    let rpc = self.fresh_rpc();
                    let store = KadStore { rpc, record: first.clone() };
                    self.reply(at.addr.0, Message::KadStore(Box::new(store)));
                }
                let result = Ok(records);
                self.events.push_back(DhtEvent::Got { query: id, key: target, result, stats });
            }
            (Purpose::Get, other) => {
                let result = Err(failure(&other, DhtError::NotFound));
                self.queries.remove(&id);
                self.events.push_back(DhtEvent::Got { query: id, key: target, result, stats });
            }
            (Purpose::Put { record, .. }, LookupOutcome::Closest(nodes)) => {
                let k = self.config.k;
                let me_close = nodes.len() < k
                    || nodes
                        .last()
                        .is_some_and(|l| self.me.distance(&target) < l.id.distance(&target));
                let mut stored = 0;
                if me_close {
                    if let Ok(key) = record.embedded_key() {
                        if self.records.put(now, (*record).clone(), &key).is_ok() {
                            stored += 1;
                        }
                    }
                }
                let mut sent = 0;
                for node in nodes.iter().take(k) {
                    let rpc = self.fresh_rpc();
                    self.track(now, rpc, node.id, Some(id), RpcKind::Store);
                    let store = KadStore { rpc, record: (*record).clone() };
                    self.reply(node.addr.0, Message::KadStore(Box::new(store)));
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

fn stats(q: &Query, now: Timestamp) -> QueryStats {
    QueryStats { hops: q.hops, requests: q.requests, elapsed: now.saturating_since(q.started) }
}

#[cfg(test)]
mod tests;
