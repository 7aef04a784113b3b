//! [`Dht`]: the DHT service a node embeds. It owns the [`RoutingTable`], the [`RecordStore`]
//! and the running [`Lookup`]s, answers `Kad*` requests and runs queries by sending `Kad*`
//! requests through its owner's endpoint.
//!
//! | file | concept |
//! |---|---|
//! | `service.rs` | the service's state, inputs and outputs |
//! | `service/answer.rs` | answering other nodes' requests |
//! | `service/query.rs` | queries: starting lookups, following them, finishing them |
//! | `service/renew.rs` | republishing in short: renewing the copies peers hold |
//! | `service/restore.rs` | persistence: restoring after a restart, writing the difference |
//! | `service/transfer.rs` | join transfer: handing records to a node that (re)joined near them |
//!
//! # Who enters the routing table
//!
//! Only peers the link layer authenticated with a certificate: the owner reports every
//! `Event::Connected` ([`handle_connected`](Dht::handle_connected)), which admits a peer we
//! dialled; a `Kad*` message then admits or refreshes its sender only if that sender is such
//! a peer and serves the DHT (see [Clients](#clients)). Contacts named in answers are
//! hearsay: lookups ask them (which opens an authenticated session), and only that session
//! admits them.
//!
//! # Clients
//!
//! A node that cannot take unsolicited inbound uses the DHT without serving it
//! ([`DhtMode`](super::DhtMode), [`set_client`](Dht::set_client)): every `Kad*` message it
//! sends says so (`client`), and a receiver neither adds it to its routing table (it drops
//! it if it was there) nor hands it to others. Hence a session the peer opened
//! ([`handle_connected`](Dht::handle_connected) with `initiator == false`) admits nobody
//! by itself: the peer's first `Kad*` message tells whether it serves. A client keeps no copy
//! of the records it puts; a node that starts serving looks itself up again, so its
//! neighbours learn it.
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
//! goes to the closest node that answered without them (paper §2.3 caching), marked as a cache
//! copy (`KadStore::cache`) so it lives for the cache TTL only and is not republished.
//! *get_all* (provider records) does not stop at the first holder: it runs until the k closest
//! nodes that did not fail have answered and merges the records of every holder, so a record
//! stored at only some of them is still found. *get_from* is a get that accepts only records
//! of one publisher (or the master), for keys whose publisher is known, such as a node's
//! contact record. Records are republished every republish interval and buckets refreshed
//! when idle, both by the parts' own timers. A republish names the records to peers that
//! hold them already rather than sending them again (`service/renew.rs`).
//!
//! # Addresses in answers
//!
//! Answers list contacts with the address we know them at. A contact at an address on our own
//! local network ([`set_local_network`](Dht::set_local_network)) goes only to askers on that
//! network: elsewhere the address names nothing, or another host on the asker's own LAN.
//! Peers elsewhere learn such a node at the public address its sessions with them show, and
//! reach it through an introduction when its NAT filters.
//!
//! # Churn
//!
//! A dead peer costs a lookup one request timeout at most, and not even that in wall-clock
//! terms: it stops counting towards α when its deadline passes and its place among the k
//! closest goes to the next candidate, while the other α − 1 requests keep going (see
//! [`lookup`](super::lookup)). A failed request also counts against the peer in the routing
//! table ([`RoutingTable::handle_failure`]), and a lost session
//! ([`handle_disconnected`](Dht::handle_disconnected)) fails its outstanding requests at
//! once. Records live at the k closest nodes and are re-stored there every republish interval
//! by the first holder that comes due. Between republishes the join transfer keeps them there
//! (`service/transfer.rs`): a node that enters our table near a record we hold, or that asks
//! us a self-lookup because it (re)started, possibly empty, is handed the records it should
//! hold by the holders nearest their keys, so a record survives its holders rebooting one
//! after the other. A node that restarts without persistence starts from an empty table and
//! bootstraps again from its first overlay session; with persistence
//! ([`restore`](Dht::restore)) it checks its saved contacts with a self-lookup.
//!
//! # Request numbers
//!
//! `Kad*` requests use numbers with the top bit set, so an `Error` answer can be matched to a
//! DHT request without colliding with the overlay's own sequence numbers (which count up from
//! 1).
//!
//! # Traffic
//!
//! Every message sent is counted in [`traffic`](Dht::traffic), by class (see
//! [`traffic`](super::traffic)).

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    net::SocketAddr,
};

use super::{
    persist::StoreOp,
    traffic::{Cause, DhtTraffic, TrafficClass},
    DhtConfig, DhtError, DhtEvent, InsertOutcome, QueryId, QueryStats, RecordStore, RoutingTable,
};
use crate::{
    overlay::LocalNetwork,
    wire::{Contact, Message, Record},
    NodeId, Timestamp,
};

mod answer;
mod query;
mod renew;
mod restore;
mod transfer;

use query::{Purpose, Query, Rpc};

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
    outbox: VecDeque<(SocketAddr, Option<NodeId>, Message)>,
    events: VecDeque<DhtEvent>,
    traffic: DhtTraffic,
    /// Persistence, once [`restore`](Dht::restore) switched it on.
    persist: Option<Persist>,
    /// The node's own local network, to count LAN traffic apart (see
    /// [`set_local_network`](Dht::set_local_network)).
    lan: Option<LocalNetwork>,
    /// Join transfer: what was handed to whom (see `service/transfer.rs`).
    handoff: transfer::Handoff,
    /// Republishes' renews, waiting and in flight (see `service/renew.rs`).
    renewals: renew::Renewals,
    /// We only use the DHT (see [`set_client`](Dht::set_client)).
    client: bool,
    /// The sessions kept open while silent (see [`session_used`](Dht::session_used)).
    lingering: super::Lingering,
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
    /// records override everyone's); `seed` drives the refresh targets and the spread of
    /// republish times.
    pub fn new(
        now: Timestamp,
        me: NodeId,
        master: NodeId,
        config: DhtConfig,
        seed: [u8; 32],
    ) -> Self {
        let mut records = RecordStore::new(&config, master);
        // Its own stream: the table's refresh targets draw from `seed` itself.
        let mut record_seed = seed;
        record_seed[31] ^= 0x5a;
        records.seed(record_seed);
        Dht {
            me,
            table: RoutingTable::new(me, &config, now, seed),
            records,
            config,
            certified: HashSet::new(),
            queries: BTreeMap::new(),
            rpcs: HashMap::new(),
            next_rpc: 0,
            next_query: 0,
            bootstrapped: false,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            traffic: DhtTraffic::default(),
            persist: None,
            lan: None,
            handoff: transfer::Handoff::default(),
            renewals: renew::Renewals::default(),
            client: false,
            lingering: super::Lingering::default(),
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

    /// What this service has sent since it was created, by class (see
    /// [`traffic`](super::traffic)).
    pub fn traffic(&self) -> DhtTraffic {
        self.traffic
    }

    /// The node's own local network: messages to addresses on it are counted as LAN traffic
    /// ([`DhtTraffic::maintenance_lan`], [`DhtTraffic::answer_lan`]).
    pub fn set_local_network(&mut self, lan: LocalNetwork) {
        self.lan = Some(lan);
    }

    /// Whether `addr` is on the node's own local network.
    pub fn is_lan(&self, addr: &SocketAddr) -> bool {
        self.lan.as_ref().is_some_and(|l| l.contains(addr.ip()))
    }

    /// Notes that a DHT message came over the session with `peer` at `addr` at `now`: what
    /// the endpoint is to keep open, and what it may let close (see [`super::linger`]).
    pub fn session_used(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
    ) -> Option<super::LingerUpdate> {
        self.lingering.used(&self.config, now, peer, addr)
    }

    /// The owner opened a session to `addr` to send one of this service's messages: counted
    /// in [`DhtTraffic::dials`].
    pub fn note_dial(&mut self, addr: &SocketAddr) {
        self.traffic.dials = self.traffic.dials.saturating_add(1);
        if self.is_lan(addr) {
            self.traffic.dials_lan = self.traffic.dials_lan.saturating_add(1);
        }
    }

    /// Whether this node only uses the DHT (see [`set_client`](Self::set_client)).
    pub fn is_client(&self) -> bool {
        self.client
    }

    /// Makes this node a DHT client (`true`: its messages say so, peers keep it out of their
    /// tables, it keeps no copies of its own puts) or a server. A client that becomes a
    /// server looks itself up, so the nodes near it learn it.
    pub fn set_client(&mut self, now: Timestamp, client: bool) {
        if self.client == client {
            return;
        }
        self.client = client;
        if !client && self.bootstrapped {
            let me = self.me;
            self.start(now, me, Purpose::Refresh { cause: Cause::Bootstrap });
            self.advance(now);
        }
    }

    /// The link layer authenticated `peer` (with a certificate) at `addr`; `initiator`: we
    /// opened the session. A peer that opened it enters the table only with its first `Kad*`
    /// message, which says whether it serves (see [Clients](self#clients)).
    pub fn handle_connected(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        initiator: bool,
    ) {
        self.certified.insert(peer);
        if !initiator {
            return;
        }
        let inserted = self.table_addr(peer, addr).map(|a| (a, self.seen(now, peer, a)));
        if let Some((addr, InsertOutcome::Inserted)) = inserted {
            self.hand_over(now, peer, addr, false);
        }
        // A full bucket may want its head pinged: send it now, not at the next event.
        self.advance(now);
    }

    /// The session with `peer` ended: requests to it fail.
    pub fn handle_disconnected(&mut self, now: Timestamp, peer: NodeId) {
        self.certified.remove(&peer);
        self.lingering.ended(&peer);
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
        use Message as M;
        let request = matches!(
            message,
            M::KadPing(_)
                | M::KadFindNode(_)
                | M::KadFindValue(_)
                | M::KadStore(_)
                | M::KadRenew(_)
        );
        // Only a node's bootstrap or post-restore lookup asks for its own id: it (re)joined.
        let rejoined = matches!(&message, M::KadFindNode(f) if f.target == peer);
        let client = super::sent_by_client(&message) == Some(true);
        let other =
            self.answer(now, addr, message).and_then(|m| self.handle_reply(now, peer, addr, m));
        if client {
            // It uses the DHT without serving it: answered, and its answers used, but never
            // a contact of ours.
            self.table.remove(&peer);
            self.advance(now);
            return other;
        }
        if other.is_some() {
            return other;
        }
        // Any Kad message on an authenticated session proves its sender alive there.
        if let (true, Some(addr)) = (self.certified.contains(&peer), self.table_addr(peer, addr)) {
            let inserted = self.seen(now, peer, addr) == InsertOutcome::Inserted;
            if inserted || rejoined {
                self.hand_over(now, peer, addr, rejoined);
            }
            // A request is a lookup (or store) of the sender's that went through us: traffic
            // that flows anyway, keeping the sender's range of our table in use.
            if request {
                self.table.handle_touched(now, &peer);
            }
        }
        self.advance(now);
        None
    }

    /// Starts a find_node lookup for `target`.
    pub fn find_node(&mut self, now: Timestamp, target: NodeId) -> QueryId {
        self.start(now, target, Purpose::FindNode)
    }

    /// Starts a get: the records under `key` that the first holder found returns (answered at
    /// once when this node holds any).
    pub fn get(&mut self, now: Timestamp, key: NodeId) -> QueryId {
        self.get_matching(now, key, None)
    }

    /// Starts a get that accepts only records published by `publisher` (or the master), for
    /// keys whose rightful publisher the reader knows: a node's contact record
    /// ([`KeyKind::Contact`](super::KeyKind::Contact), published by the node), trust records
    /// (the master). Records of other publishers are dropped as if the answer had none, so the
    /// lookup goes on to other holders.
    pub fn get_from(&mut self, now: Timestamp, key: NodeId, publisher: NodeId) -> QueryId {
        self.get_matching(now, key, Some(publisher))
    }

    fn get_matching(&mut self, now: Timestamp, key: NodeId, only: Option<NodeId>) -> QueryId {
        let local: Vec<Record> = self
            .records
            .get(&key)
            .filter(|r| r.expires_at > now.as_secs() && self.allowed(only, r))
            .cloned()
            .collect();
        if !local.is_empty() {
            let query = self.fresh_query();
            let stats = QueryStats::default();
            self.events.push_back(DhtEvent::Got { query, key, result: Ok(local), stats });
            return query;
        }
        self.start(now, key, Purpose::Get { only })
    }

    /// Starts a get that collects the records of every holder among the k closest nodes
    /// (and this node), one per publisher, newest version first found: what provider lookups
    /// need, since each provider's record may sit at a different subset of the k closest.
    pub fn get_all(&mut self, now: Timestamp, key: NodeId) -> QueryId {
        let local: Vec<Record> =
            self.records.get(&key).filter(|r| r.expires_at > now.as_secs()).cloned().collect();
        self.start_with(now, key, Purpose::GetAll, local)
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
        self.outbox.pop_front().map(|(addr, _, message)| (addr, message))
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
        let renew = self.renewals.poll_timeout();
        [rpcs, lookups, self.table.poll_timeout(), self.records.poll_timeout(), persist, renew]
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

    /// Queues `message` for `addr`, counted in `class` (and under `cause`, for maintenance).
    fn send(
        &mut self,
        addr: SocketAddr,
        message: Message,
        class: TrafficClass,
        cause: Option<Cause>,
    ) {
        self.queue(addr, None, message, class, cause);
    }

    /// Queues a request for the contact `peer` at `addr`, counted as [`send`](Self::send)
    /// does; `peer` goes with it so a dial that fails can be helped by an introduction.
    fn request(
        &mut self,
        peer: NodeId,
        addr: SocketAddr,
        message: Message,
        class: TrafficClass,
        cause: Option<Cause>,
    ) {
        self.queue(addr, Some(peer), message, class, cause);
    }

    fn queue(
        &mut self,
        addr: SocketAddr,
        peer: Option<NodeId>,
        mut message: Message,
        class: TrafficClass,
        cause: Option<Cause>,
    ) {
        super::mark_client(&mut message, self.client);
        let lan = self.is_lan(&addr);
        self.traffic.count(class, cause, lan, &message);
        self.outbox.push_back((addr, peer, message));
    }

    /// Like [`poll_message`](Self::poll_message), with the contact a request is meant for
    /// (`None` for answers): a node whose dial to it fails can have it introduced.
    pub fn poll_message_to(&mut self) -> Option<(SocketAddr, Option<NodeId>, Message)> {
        self.outbox.pop_front()
    }

    /// Whether `record` passes a get's publisher rule.
    fn allowed(&self, only: Option<NodeId>, record: &Record) -> bool {
        only.is_none_or(|p| record.publisher == p || record.publisher == self.records.master())
    }

    /// The address to hold `peer` at, heard from at `addr`. A peer heard through a GSN's
    /// relay is at a stand-in address in `100::/64` that only our node can use: handed to
    /// others in our answers it would send them nowhere, so it counts as alive at the
    /// address the table holds for it, and is not added without one.
    fn table_addr(&self, peer: NodeId, addr: SocketAddr) -> Option<SocketAddr> {
        if crate::endpoint::is_relay_addr(&addr) {
            self.table.get(&peer).map(|entry| entry.contact.addr.0)
        } else {
            Some(addr)
        }
    }

    fn seen(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) -> InsertOutcome {
        let was_empty = self.table.is_empty();
        let outcome = self.table.handle_verified(now, Contact { id: peer, addr: addr.into() });
        if was_empty && outcome == InsertOutcome::Inserted && !self.bootstrapped {
            self.bootstrapped = true;
            let me = self.me;
            self.start(now, me, Purpose::Refresh { cause: Cause::Bootstrap });
        }
        outcome
    }

    fn fresh_query(&mut self) -> QueryId {
        self.next_query += 1;
        QueryId(self.next_query)
    }

    fn fresh_rpc(&mut self) -> u32 {
        self.next_rpc = self.next_rpc.wrapping_add(1);
        self.next_rpc | 0x8000_0000
    }
}

#[cfg(test)]
mod tests;
