//! [`Lookup`]: the iterative, parallel Kademlia lookup (find_node and find_value) as a sans-IO
//! state machine.
//!
//! # Algorithm (Kademlia paper §2.3)
//!
//! The lookup starts from the k closest contacts the routing table knows and keeps a candidate
//! list ordered by XOR distance to the target. It keeps up to α requests in flight, always to
//! the closest candidates not yet asked. Every answer merges the (at most k) contacts it names
//! into the list. When an answer brings nothing closer than the closest candidate already
//! known, the lookup has *stalled* and widens to k requests in flight, so the paper's final
//! round ("resend the FIND_NODE to all of the k closest nodes it has not already queried")
//! happens without waiting for α at a time. The lookup **finishes** when the k closest
//! candidates that have not failed have all answered; candidates that failed or timed out no
//! longer count, so their places go to the next closest.
//!
//! A find_value lookup finishes early on the first answer carrying a record for the key, and
//! reports where to cache it: the node closest to the key among those that answered without the
//! value (paper §2.3).
//!
//! A *find_all* lookup ([`Lookup::find_all`]) is a find_value that does not stop there: keys
//! with many publishers (provider records) may have each publisher's record at a different
//! subset of the k closest, so it runs to the find_node end (the k closest nodes that did not
//! fail have all answered, which also bounds it) and the owner merges the records of every
//! holder. Holders answer with records instead of contacts, so the lookup goes on through the
//! contacts the others name. It reports the first holder as `Found` and no cache node.
//!
//! # Timeouts
//!
//! Each request has a deadline (the request timeout). A peer that misses it stops counting
//! towards α and towards the k closest, so the lookup moves on; a late answer from it is still
//! used. [`LookupResult::failed`] lists the peers that failed or timed out, for
//! [`RoutingTable::handle_failure`](super::RoutingTable::handle_failure).
//!
//! # Hops
//!
//! A seed (a contact from our own table) is one hop away; a contact first named in the answer
//! of a peer `h` hops away is `h + 1` hops away (the shortest chain wins if several name it).
//! [`LookupResult::hops`] is the hop distance of the answer that mattered: the peer that sent
//! the value (find_value), or the closest peer that answered (find_node). It measures the
//! depth of the response chain, not wall-clock rounds, so it does not depend on α or latency.
//!
//! # Driving it
//!
//! The owner sends every [`LookupRequest`] from [`poll_request`](Lookup::poll_request) (for
//! example as [`LookupRequest::message`] with a fresh rpc number it maps back to this lookup and
//! peer), feeds answers to [`handle_nodes`](Lookup::handle_nodes) or
//! [`handle_record`](Lookup::handle_record) and errors to
//! [`handle_failure`](Lookup::handle_failure), calls [`handle_timeout`](Lookup::handle_timeout)
//! at [`poll_timeout`](Lookup::poll_timeout), and takes the result from
//! [`poll_event`](Lookup::poll_event). Answers after the result are ignored. Only answers that
//! arrived on an authenticated session from the peer asked may be fed in; the contacts they name
//! are hearsay and must not go into the routing table before a session to them is verified.

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use super::DhtConfig;
use crate::{
    wire::{Contact, KadFindNode, KadFindValue, Message, Record},
    Distance, NodeId, Timestamp,
};

/// What a lookup looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// The k nodes closest to the target (`KadFindNode`).
    FindNode,
    /// The record stored under the target key (`KadFindValue`).
    FindValue,
}

/// A request the lookup wants sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupRequest {
    /// Whom to ask.
    pub to: Contact,
    /// The id or key sought.
    pub target: NodeId,
    /// Which request to send.
    pub kind: LookupKind,
}

impl LookupRequest {
    /// The wire message for this request, numbered `rpc`.
    pub fn message(&self, rpc: u32) -> Message {
        match self.kind {
            LookupKind::FindNode => {
                Message::KadFindNode(KadFindNode { rpc, target: self.target, client: false })
            }
            LookupKind::FindValue => {
                Message::KadFindValue(KadFindValue { rpc, key: self.target, client: false })
            }
        }
    }
}

/// How a lookup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupOutcome {
    /// (find_node) The k closest nodes that answered, closest first.
    Closest(Vec<Contact>),
    /// (find_value) A peer answered with a record for the key.
    Found {
        /// The record, as received: the caller verified it before handing it in.
        record: Box<Record>,
        /// Who sent it.
        from: Contact,
        /// The closest node to the key that answered without the record: store a copy there
        /// (paper §2.3). `None` when nobody answered without it.
        cache_at: Option<Contact>,
    },
    /// (find_value) The lookup converged without finding a record; the k closest nodes that
    /// answered, closest first (where a publisher would store it).
    NotFound(Vec<Contact>),
    /// Nobody answered: no seeds, or every peer asked failed.
    Failed,
}

/// The result of a finished lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResult {
    /// The id or key sought.
    pub target: NodeId,
    /// What was looked for.
    pub kind: LookupKind,
    /// How it ended.
    pub outcome: LookupOutcome,
    /// Depth of the response chain that led to the answer (see the [module docs](self)); 0
    /// when nobody answered.
    pub hops: u32,
    /// Every peer that answered, closest to the target first.
    pub queried: Vec<Contact>,
    /// Peers that failed or did not answer in time.
    pub failed: Vec<NodeId>,
    /// Requests sent.
    pub requests: usize,
    /// Time from start to result.
    pub elapsed: Duration,
}

impl LookupResult {
    /// Whether the lookup achieved its purpose: closest nodes found (find_node) or a record
    /// found (find_value).
    pub fn is_success(&self) -> bool {
        matches!(self.outcome, LookupOutcome::Closest(_) | LookupOutcome::Found { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotContacted,
    Waiting {
        deadline: Timestamp,
    },
    /// Missed its deadline; a late answer is still taken.
    Unresponsive,
    Succeeded,
    Failed,
}

#[derive(Clone, Debug)]
struct Peer {
    contact: Contact,
    state: State,
    hops: u32,
}

/// One iterative lookup. See the [module docs](self).
///
/// ```
/// use fleetmesh_proto::{dht::{DhtConfig, Lookup, LookupOutcome}, wire::Contact, NodeId, Timestamp};
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let addr = "192.0.2.1:4000".parse::<std::net::SocketAddr>().unwrap().into();
/// let seed = Contact { id: NodeId::hash(b"seed"), addr };
/// let target = NodeId::hash(b"target");
/// let config = DhtConfig::default();
/// let mut lookup = Lookup::find_node(now, NodeId::hash(b"me"), target, [seed], &config);
/// let request = lookup.poll_request().unwrap();
/// assert_eq!(request.to, seed);
/// // The seed knows nobody closer.
/// lookup.handle_nodes(now, &seed.id, vec![]);
/// let result = lookup.poll_event().unwrap();
/// assert_eq!(result.outcome, LookupOutcome::Closest(vec![seed]));
/// assert_eq!(result.hops, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Lookup {
    local: NodeId,
    target: NodeId,
    kind: LookupKind,
    k: usize,
    alpha: usize,
    timeout: Duration,
    started: Timestamp,
    /// Every candidate, closest first.
    peers: BTreeMap<Distance, Peer>,
    stalled: bool,
    requests_sent: usize,
    requests: VecDeque<LookupRequest>,
    found: Option<(Record, Distance)>,
    /// (find_all) Go on after the first record.
    collect: bool,
    done: bool,
    result: Option<LookupResult>,
}

impl Lookup {
    /// A lookup for the nodes closest to `target`, started at `now` from `seeds` (normally
    /// the routing table's `closest(target, k)`). `local` is this node, never asked.
    pub fn find_node(
        now: Timestamp,
        local: NodeId,
        target: NodeId,
        seeds: impl IntoIterator<Item = Contact>,
        config: &DhtConfig,
    ) -> Self {
        Self::new(now, local, target, LookupKind::FindNode, seeds, config, false)
    }

    /// A lookup for the record under `key`, started at `now` from `seeds`.
    pub fn find_value(
        now: Timestamp,
        local: NodeId,
        key: NodeId,
        seeds: impl IntoIterator<Item = Contact>,
        config: &DhtConfig,
    ) -> Self {
        Self::new(now, local, key, LookupKind::FindValue, seeds, config, false)
    }

    /// A lookup for the records of every holder under `key` among the k closest nodes (see
    /// the [module docs](self)), started at `now` from `seeds`. It sends `KadFindValue`.
    pub fn find_all(
        now: Timestamp,
        local: NodeId,
        key: NodeId,
        seeds: impl IntoIterator<Item = Contact>,
        config: &DhtConfig,
    ) -> Self {
        Self::new(now, local, key, LookupKind::FindValue, seeds, config, true)
    }

    fn new(
        now: Timestamp,
        local: NodeId,
        target: NodeId,
        kind: LookupKind,
        seeds: impl IntoIterator<Item = Contact>,
        config: &DhtConfig,
        collect: bool,
    ) -> Self {
        let mut lookup = Lookup {
            local,
            target,
            kind,
            k: config.k,
            alpha: config.alpha,
            timeout: config.request_timeout,
            started: now,
            peers: BTreeMap::new(),
            stalled: false,
            requests_sent: 0,
            requests: VecDeque::new(),
            found: None,
            collect,
            done: false,
            result: None,
        };
        for seed in seeds {
            lookup.add(seed, 1);
        }
        lookup.advance(now);
        lookup
    }

    /// A find_node lookup that is over before it starts: `nodes` (closest first) are taken as
    /// the closest, with no request sent. For a holder republishing into a neighbourhood its
    /// table knows first-hand (see `service/query.rs`).
    pub fn known(
        now: Timestamp,
        local: NodeId,
        target: NodeId,
        nodes: Vec<Contact>,
        config: &DhtConfig,
    ) -> Self {
        let mut lookup = Self::new(now, local, target, LookupKind::FindNode, [], config, false);
        lookup.done = true;
        lookup.requests.clear();
        lookup.result = Some(LookupResult {
            target,
            kind: LookupKind::FindNode,
            outcome: LookupOutcome::Closest(nodes),
            hops: 0,
            queried: Vec::new(),
            failed: Vec::new(),
            requests: 0,
            elapsed: Duration::ZERO,
        });
        lookup
    }

    /// The id or key sought.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// What is looked for.
    pub fn kind(&self) -> LookupKind {
        self.kind
    }

    /// Whether the lookup has its result (taken or not).
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Whether a request to `id` is outstanding (sent, not answered, not failed).
    pub fn is_waiting_for(&self, id: &NodeId) -> bool {
        self.peers.get(&id.distance(&self.target)).is_some_and(|p| {
            p.contact.id == *id && matches!(p.state, State::Waiting { .. } | State::Unresponsive)
        })
    }

    /// `from` answered with contacts closer to the target (a `KadNodes`, or a `KadValue`
    /// without a record). At most k of them (other than us) are used.
    pub fn handle_nodes(&mut self, now: Timestamp, from: &NodeId, closer: Vec<Contact>) {
        self.take_nodes(now, from, closer, true);
    }

    /// `from` answered with contacts, but does not serve the DHT (a client, see
    /// [`DhtMode`](super::DhtMode)): its contacts are used, and it does not count among the
    /// closest nodes (a put would store at it, a get ask it again).
    pub fn handle_client_nodes(&mut self, now: Timestamp, from: &NodeId, closer: Vec<Contact>) {
        self.take_nodes(now, from, closer, false);
    }

    fn take_nodes(&mut self, now: Timestamp, from: &NodeId, closer: Vec<Contact>, serves: bool) {
        let Some(hops) = self.answered(from) else { return };
        if !serves {
            if let Some(peer) = self.peer_mut(from) {
                peer.state = State::Failed;
            }
        }
        let closest_before = self.peers.keys().next().copied();
        let local = self.local;
        for contact in closer.into_iter().filter(|c| c.id != local).take(self.k) {
            self.add(contact, hops + 1);
        }
        self.stalled = self.peers.keys().next().copied() == closest_before;
        self.advance(now);
    }

    /// `from` answered a find_value with `record`. The caller has checked the record's
    /// signature and freshness (see [`RecordStore::check`](super::RecordStore::check)); a record
    /// for another key counts as a failure of `from`.
    pub fn handle_record(&mut self, now: Timestamp, from: &NodeId, record: Record) {
        if self.kind != LookupKind::FindValue || record.key != self.target {
            self.handle_failure(now, from);
            return;
        }
        if self.answered(from).is_some() {
            if self.found.is_none() || !self.collect {
                self.found = Some((record, from.distance(&self.target)));
            }
            self.advance(now);
        }
    }

    /// The request to `from` failed (error answer, session refused, link lost).
    pub fn handle_failure(&mut self, now: Timestamp, from: &NodeId) {
        if let Some(peer) = self.peer_mut(from) {
            if matches!(peer.state, State::Waiting { .. } | State::Unresponsive) {
                peer.state = State::Failed;
                self.advance(now);
            }
        }
    }

    /// The earliest outstanding request deadline.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.done {
            return None;
        }
        self.peers
            .values()
            .filter_map(|p| match p.state {
                State::Waiting { deadline } => Some(deadline),
                _ => None,
            })
            .min()
    }

    /// Marks requests past their deadline as unanswered and moves on.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if self.done {
            return;
        }
        for peer in self.peers.values_mut() {
            if matches!(peer.state, State::Waiting { deadline } if deadline <= now) {
                peer.state = State::Unresponsive;
            }
        }
        self.advance(now);
    }

    /// The next request to send.
    pub fn poll_request(&mut self) -> Option<LookupRequest> {
        self.requests.pop_front()
    }

    /// The lookup's one event: its result, once it is finished.
    pub fn poll_event(&mut self) -> Option<LookupResult> {
        self.result.take()
    }

    fn peer_mut(&mut self, id: &NodeId) -> Option<&mut Peer> {
        self.peers.get_mut(&id.distance(&self.target)).filter(|p| p.contact.id == *id)
    }

    /// Records an answer from `from`; its hop distance if it was asked and the lookup runs.
    fn answered(&mut self, from: &NodeId) -> Option<u32> {
        if self.done {
            return None;
        }
        let peer = self.peer_mut(from)?;
        if !matches!(peer.state, State::Waiting { .. } | State::Unresponsive) {
            return None;
        }
        peer.state = State::Succeeded;
        Some(peer.hops)
    }

    fn add(&mut self, contact: Contact, hops: u32) {
        if contact.id == self.local {
            return;
        }
        let peer = self.peers.entry(contact.id.distance(&self.target)).or_insert(Peer {
            contact,
            state: State::NotContacted,
            hops,
        });
        peer.hops = peer.hops.min(hops);
    }

    /// Sends what α (or k, when stalled) allows and detects the end.
    fn advance(&mut self, now: Timestamp) {
        if self.done {
            return;
        }
        if self.found.is_some() && !self.collect {
            return self.finish(now);
        }
        let parallelism = if self.stalled { self.k } else { self.alpha };
        let mut in_flight =
            self.peers.values().filter(|p| matches!(p.state, State::Waiting { .. })).count();
        let mut counted = 0;
        let mut all_answered = true;
        for peer in self.peers.values_mut() {
            match peer.state {
                State::Failed | State::Unresponsive => continue,
                State::Succeeded => {}
                State::Waiting { .. } => all_answered = false,
                State::NotContacted => {
                    all_answered = false;
                    if in_flight < parallelism {
                        peer.state = State::Waiting { deadline: now + self.timeout };
                        in_flight += 1;
                        self.requests_sent += 1;
                        self.requests.push_back(LookupRequest {
                            to: peer.contact,
                            target: self.target,
                            kind: self.kind,
                        });
                    }
                }
            }
            counted += 1;
            if counted == self.k {
                break;
            }
        }
        if all_answered {
            self.finish(now);
        }
    }

    fn finish(&mut self, now: Timestamp) {
        self.done = true;
        let answered: Vec<&Peer> =
            self.peers.values().filter(|p| p.state == State::Succeeded).collect();
        let failed = self
            .peers
            .values()
            .filter(|p| matches!(p.state, State::Failed | State::Unresponsive))
            .map(|p| p.contact.id)
            .collect();
        let closest: Vec<Contact> = answered.iter().take(self.k).map(|p| p.contact).collect();
        let (outcome, hops) = match self.found.take() {
            Some((record, distance)) => {
                // `found` is only set for a peer that answered, so it is in the map.
                let source = &self.peers[&distance];
                let cache_at = answered
                    .iter()
                    .find(|p| p.contact.id != source.contact.id)
                    .filter(|_| !self.collect);
                let outcome = LookupOutcome::Found {
                    record: Box::new(record),
                    from: source.contact,
                    cache_at: cache_at.map(|p| p.contact),
                };
                (outcome, source.hops)
            }
            None => {
                let hops = answered.first().map_or(0, |p| p.hops);
                let outcome = match (closest.is_empty(), self.kind) {
                    (true, _) => LookupOutcome::Failed,
                    (false, LookupKind::FindNode) => LookupOutcome::Closest(closest),
                    (false, LookupKind::FindValue) => LookupOutcome::NotFound(closest),
                };
                (outcome, hops)
            }
        };
        self.result = Some(LookupResult {
            target: self.target,
            kind: self.kind,
            outcome,
            hops,
            queried: answered.iter().map(|p| p.contact).collect(),
            failed,
            requests: self.requests_sent,
            elapsed: now.saturating_since(self.started),
        });
        self.requests.clear();
    }
}

#[cfg(test)]
mod tests;
