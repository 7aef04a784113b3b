//! [`Master`]: the management server's side of the overlay. It answers LSN queries, registers
//! LSNs, applies their presence deltas, keeps the topology, and delivers application messages
//! end to end.

mod adopts;
mod delivery;
mod dht;
mod durable;
mod election;
mod events;
mod fleet;
mod gsn;
mod introduce;
mod inventory;
mod isolation;
mod keepalive;
mod machine;
mod overdue;
mod query;
mod registry;
mod reports;
mod requests;
mod resync;
mod revoke;
mod rivals;
mod suspects;
mod topology;

use std::{collections::VecDeque, net::SocketAddr};

use self::{
    delivery::Deliveries,
    election::{Candidate, Decided, Elections},
    registry::Registry,
};
pub use self::{
    delivery::{DeliveryError, DeliveryId},
    durable::{
        KnownNode, MasterSaved, CERTS_TABLE, CERT_GRACE, LSNS_TABLE, MAX_KNOWN_NODES, NODES_TABLE,
        REVOCATIONS_TABLE,
    },
    events::{MasterCommand, MasterEvent, PresenceEvent},
    fleet::{FleetProgress, FLEET_RECHECK, FLEET_RETRY, FLEET_TABLE, MAX_FLEET_OPEN},
    gsn::{MAX_GSNS, MAX_GSN_CHOICES},
    introduce::{
        IntroducerStats, INTRODUCTION_TIMEOUT, MAX_CHECKED_IN, MAX_HELPERS, MAX_NAT_CLASSES,
        MAX_PENDING_INTRODUCTIONS, MAX_PENDING_PER_NODE,
    },
    inventory::{
        InventoryStats, INVENTORY_TABLE, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_ENTRIES,
        MAX_INVENTORY_BYTES, MAX_INVENTORY_DOCUMENTS,
    },
    query::{QueryOutcome, QUERY_GRACE},
    reports::{MAX_REPORT_BATCH, MAX_REPORT_WINDOWS},
    requests::{
        RequestError, RequestId, ASK_AGAIN, MAX_OUTBOX, MAX_QUEUED_PER_NODE, MAX_TTL, OUTBOX_TABLE,
        RETRY,
    },
    topology::{LsnView, NodeView, SubnetView, Topology},
};
use super::{MasterConfig, SubnetKey};
use crate::{
    endpoint::{Endpoint, Event},
    wire::{
        Ack, Adopt, ErrorCode, ErrorMessage, Join, LsnQuery, Message, NodeList, PartReason, Pong,
        Update,
    },
    NodeId, Timestamp, Transmit,
};

/// The master's overlay state machine. Sans-IO: see the [crate docs](crate) for the loop.
pub struct Master {
    ep: Endpoint,
    cfg: MasterConfig,
    seq: u32,
    reg: Registry,
    deliveries: Deliveries,
    /// Resync requests in flight (`resync.rs`).
    resyncs: resync::Resyncs,
    adopts: adopts::Adopts,
    /// LSNs a standby reported dead, being checked before we believe it (`suspects.rs`).
    suspects: suspects::Suspects,
    events: VecDeque<MasterEvent>,
    refusals: super::Refusals,
    dht: Option<crate::dht::Dht>,
    elections: Elections,
    /// Keepalive echoes LSNs asked for: (when due, LSN).
    echoes: std::collections::BTreeSet<(Timestamp, NodeId)>,
    /// Certificates, revocations and the node registry on their way to the store.
    durable: durable::Durable,
    /// The time of the input being handled (for the registry's timestamps).
    now: Timestamp,
    /// Nodes' report stamps seen lately (`reports.rs`).
    report_windows: reports::ReportWindows,
    /// Requests not answered yet (`requests.rs`).
    outbox: requests::Outbox,
    /// Fleet requests open (`fleet.rs`).
    fleet: fleet::Fleet,
    /// Every node's inventory (`inventory.rs`).
    inventories: inventory::Inventories,
    /// Fleet-wide aggregates open (`query.rs`).
    queries: query::Queries,
    /// NAT classes and introductions (`introduce.rs`).
    intro: Box<introduce::Introducer>,
    /// Whether the master hears from its LSNs (`isolation.rs`).
    isolation: isolation::Isolation,
    /// LSNs late with their keepalive (`overdue.rs`).
    overdue: overdue::Overdue,
    /// Subnets with duplicate LSNs, told about each other again (`rivals.rs`).
    duplicates: rivals::Duplicates,
}

impl Master {
    /// The master over `endpoint` (configured with [`EndpointConfig::master`](crate::EndpointConfig::master)).
    pub fn new(endpoint: Endpoint, cfg: MasterConfig) -> Self {
        Master {
            ep: endpoint,
            cfg,
            seq: 0,
            reg: Registry::default(),
            deliveries: Deliveries::default(),
            resyncs: Default::default(),
            adopts: Default::default(),
            suspects: Default::default(),
            events: VecDeque::new(),
            refusals: super::Refusals::default(),
            dht: None,
            elections: Elections::default(),
            echoes: std::collections::BTreeSet::new(),
            durable: Default::default(),
            now: Timestamp::ZERO,
            report_windows: Default::default(),
            outbox: Default::default(),
            fleet: Default::default(),
            inventories: Default::default(),
            queries: Default::default(),
            intro: Box::default(),
            isolation: Default::default(),
            overdue: Default::default(),
            duplicates: Default::default(),
        }
    }

    /// The master's node id.
    pub fn node_id(&self) -> NodeId {
        self.ep.node_id()
    }

    /// The link layer.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Control messages refused because their sender may not send them, by reason.
    pub fn refusals(&self) -> super::Refusals {
        self.refusals
    }

    /// The topology now: subnets, their LSNs (with the path of our session to each),
    /// children, routes, last seen, RTT.
    pub fn topology(&self) -> Topology {
        let mut topology = self.reg.topology();
        for lsn in topology.subnets.iter_mut().flat_map(|s| &mut s.lsns) {
            lsn.path = self.ep.peer_path(&lsn.id);
            lsn.nat = self.nat_class(&lsn.id).map(|(c, _)| c);
            lsn.gsn = self.gsn_choice(&lsn.id);
            for child in &mut lsn.children {
                child.nat = self.nat_class(&child.id).map(|(c, _)| c);
            }
        }
        topology
    }

    /// Whether `node` is present (not pending after a lost LSN or a move).
    pub fn is_present(&self, node: &NodeId) -> bool {
        self.reg.is_present(node)
    }

    /// Number of present nodes, LSNs included.
    pub fn present_count(&self) -> usize {
        self.reg.present_count()
    }

    /// The LSN a message to `node` goes through now (`node` itself if it is an LSN); `None`
    /// unless it is present.
    pub fn route_of(&self, node: &NodeId) -> Option<NodeId> {
        self.reg.next_hop(node).map(|(lsn, _)| lsn)
    }

    /// Makes the master forget a node, as a lost update would (tests the digest repair).
    #[cfg(test)]
    pub(crate) fn forget(&mut self, node: &NodeId) {
        self.reg.forget(node);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&mut self, now: Timestamp, addr: SocketAddr, message: Message) {
        if let Err(error) = self.ep.send_to(now, addr, message) {
            self.events.push_back(MasterEvent::Link(Event::CommandFailed { error: error.into() }));
        }
    }

    fn presence(&mut self, events: Vec<PresenceEvent>) {
        self.note_presence(self.now, &events);
        self.outbox_presence(self.now, &events);
        self.fleet_presence(self.now, &events);
        self.gsn_presence(&events);
        self.events.extend(events.into_iter().map(MasterEvent::Presence));
    }

    /// Feeds one datagram received over UDP.
    pub fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        self.handle_datagram_on(now, src, crate::Path::Udp, datagram);
    }

    /// Feeds one received datagram and the path (UDP or TCP) it came over.
    pub fn handle_datagram_on(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: crate::Path,
        datagram: &[u8],
    ) {
        self.now = now;
        self.ep.handle_datagram_on(now, src, path, datagram);
        self.pump(now);
    }

    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.now = now;
        self.ep.handle_timeout(now);
        let events = self.reg.expire(now, &self.cfg);
        self.presence(events);
        self.check_suspects(now);
        self.resync_timers(now);
        self.adopt_timers(now);
        for decided in self.elections.expire(now) {
            self.designate(now, decided);
        }
        self.dht_timers(now);
        self.send_echoes(now);
        self.wake_lsns(now);
        self.sweep_certificates(now);
        for settled in self.deliveries.expire(now) {
            self.delivery_failed(now, settled, DeliveryError::Timeout);
        }
        self.resend_deliveries(now);
        self.outbox_timers(now);
        self.fleet_timers(now);
        self.query_timers(now);
        self.intro_timers(now);
        self.isolation_timers(now);
        self.overdue_timers(now);
        self.rival_timers(now);
        self.pump(now);
    }

    /// Carries out an application command; failures come back as events.
    pub fn handle_command(&mut self, now: Timestamp, command: MasterCommand) {
        self.now = now;
        let (node, id, result) = match command {
            MasterCommand::Send { node, id, data } => {
                (node, id, self.send_message(now, node, id, &data))
            }
            MasterCommand::Poll { node } => (node, 0, self.poll_node(now, node)),
            MasterCommand::Revoke { nodes } => {
                self.revoke(now, &nodes);
                return;
            }
            MasterCommand::Wake => return,
        };
        if let Err(error) = result {
            self.events.push_back(MasterEvent::DeliveryFailed { id, node, error });
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ep.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MasterEvent> {
        self.events.pop_front()
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let suspects = self.suspects.next_deadline();
        [
            self.ep.poll_timeout(),
            self.reg.next_deadline(&self.cfg),
            self.deliveries.next_deadline(),
            suspects,
            self.resyncs.next_deadline(),
            self.adopts.next_deadline(),
            self.elections.next_deadline(),
            self.dht_deadline(),
            self.echoes.first().map(|(t, _)| *t),
            self.wake_deadline(),
            self.outbox_deadline(),
            self.fleet_deadline(),
            self.query_deadline(),
            self.cert_sweep_deadline(),
            self.intro_deadline(),
            self.isolation_deadline(),
            self.overdue.next_deadline(),
            self.duplicates.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn pump(&mut self, now: Timestamp) {
        while let Some(event) = self.ep.poll_event() {
            match event {
                Event::Message { peer, addr, message } => self.on_message(now, peer, addr, message),
                Event::PeerEnrolled { peer, ref certificate } => {
                    self.save_certificate(certificate);
                    self.reg.remember_certificate((**certificate).clone());
                    let _ = peer;
                    self.events.push_back(MasterEvent::Link(event));
                }
                Event::Connected { peer, addr, initiator, .. } => {
                    self.dht_connected(now, peer, addr, initiator);
                    self.offer_revocations(now, peer);
                    self.events.push_back(MasterEvent::Link(event));
                }
                Event::Disconnected { peer, .. } => {
                    self.dht_disconnected(now, peer);
                    self.events.push_back(MasterEvent::Link(event));
                }
                other => self.events.push_back(MasterEvent::Link(other)),
            }
        }
        self.dht_flush(now);
    }

    fn on_message(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, message: Message) {
        self.reg.seen(now, &peer, addr);
        if self.reg.is_lsn(&peer) {
            self.heard_from_lsn(now);
            self.overdue_heard(now, peer);
        }
        let Some(message) = self.dht_message(now, peer, addr, message) else { return };
        // Anything from an LSN a standby called dead proves it alive: present again; the two
        // settle it (`node/rival.rs`).
        if self.suspects.remove(&peer) {
            self.reg.clear_suspicion(&peer);
            // The standby that reported it moved some of its children meanwhile.
            self.resync(now, peer);
        }
        match message {
            Message::LsnQuery(q) => self.on_lsn_query(now, peer, addr, q),
            Message::Join(j) => self.on_join(now, peer, addr, j),
            Message::Update(u) => self.on_update(now, peer, addr, u),
            Message::Ping(p) => {
                self.send(now, addr, Message::Pong(Pong { seq: p.seq, lsn: None }));
                if !self.reg.is_lsn(&peer) {
                    self.refuse_unregistered(now, addr, p.seq);
                }
                // Keep telling duplicate LSNs about each other until they have settled
                // (their first exchange may have been lost to a partition).
                if let Some(lsns) = self.reg.rivals_of(&peer) {
                    self.send(now, addr, Message::NodeList(NodeList { seq: 0, nodes: lsns }));
                }
            }
            Message::Keepalive(k) => self.on_keepalive(now, peer, addr, k),
            Message::Part(p) => self.on_part(now, peer, p),
            Message::Pong(p) if self.demoted_by_pong(&peer, &p) => {
                let part = crate::wire::Part { reason: PartReason::Yield, better_lsn: p.lsn };
                self.on_part(now, peer, part);
            }
            Message::Certificate(cert) => {
                if self.ep.trust().verify(&cert, now).is_ok() {
                    let node = cert.node_id();
                    self.reg.remember_certificate(*cert);
                    self.certificate_came(now, node);
                }
            }
            Message::NodeList(list) => self.on_resync_answer(now, peer, list),
            Message::Report(r) => self.on_report(now, peer, addr, *r),
            Message::ReportBatch(b) => self.on_report_batch(now, peer, addr, *b),
            Message::ReachProof(p) => {
                if let Some(decided) = self.elections.proof(now, &peer, p.nonce) {
                    self.designate(now, decided);
                }
            }
            Message::FleetAcks(a) => self.on_fleet_acks(now, peer, addr, *a),
            Message::ObserveMe(o) => self.on_observe_me(now, peer, addr, o),
            Message::NatReport(r) => self.on_nat_report(now, peer, addr, r),
            Message::Introduce(i) => self.on_introduce(now, peer, addr, i),
            Message::Introduced(i) => self.on_introduced(now, peer, addr, i),
            Message::GsnChoice(c) => self.on_gsn_choice(peer, c),
            Message::InventoryBatch(b) => self.on_inventory_batch(now, peer, addr, *b),
            Message::Ack(Ack { seq }) if self.fleet_acked(now, peer, seq) => {}
            Message::Ack(Ack { seq }) if self.query_acked(peer, seq) => {}
            Message::QueryAnswer(a) => self.on_query_answer(now, peer, addr, *a),
            Message::Ack(Ack { seq }) => {
                if self.deliveries.wrong_hop(&peer, seq) {
                    self.refusals.answer += 1;
                }
                if let Some((settled, rtt)) = self.deliveries.acked(now, &peer, seq) {
                    let (id, node) = (settled.id, settled.node);
                    self.reg.set_rtt(&node, rtt);
                    if settled.request {
                        self.outbox_delivered(now, id);
                    } else {
                        self.events.push_back(MasterEvent::Delivered { id, node, rtt });
                    }
                }
            }
            Message::Error(e) => {
                if self.deliveries.wrong_hop(&peer, e.seq) {
                    self.refusals.answer += 1;
                }
                if let Some(settled) = self.deliveries.failed(&peer, e.seq) {
                    let error = if e.code == ErrorCode::UNREACHABLE {
                        DeliveryError::Unreachable(e.detail)
                    } else {
                        DeliveryError::Refused(e.detail)
                    };
                    self.delivery_failed(now, settled, error);
                }
            }
            other => self.events.push_back(MasterEvent::Link(Event::Message {
                peer,
                addr,
                message: other,
            })),
        }
    }

    fn on_lsn_query(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, q: LsnQuery) {
        let subnet = SubnetKey::new(q.local.0.ip(), q.prefix_len, addr.ip());
        let contact = crate::wire::Contact { id: peer, addr: q.local };
        let proven = self.elections.is_proven(now, &peer, q.local.0);
        if self.elections.is_open(&subnet) && !self.reg.is_lsn(&peer) {
            return self.elect(now, subnet, contact, addr, q.seq, proven);
        }
        let nodes = self.reg.lsns_for_query(now, subnet, contact, &self.cfg);
        if nodes.is_empty()
            && !proven
            && !self.reg.is_lsn(&peer)
            && !self.cfg.reach_probe_wait.is_zero()
        {
            // The registry would designate it: hold that until it proves it is reachable.
            self.reg.undesignate(&subnet, &peer);
            return self.elect(now, subnet, contact, addr, q.seq, false);
        }
        let reply = if nodes.is_empty() {
            Message::Ack(Ack { seq: q.seq })
        } else {
            Message::NodeList(NodeList { seq: q.seq, nodes })
        };
        self.send(now, addr, reply);
    }

    /// Puts a querier into its subnet's LSN election (see `election.rs`); a proven one wins it
    /// at once.
    fn elect(
        &mut self,
        now: Timestamp,
        subnet: SubnetKey,
        contact: crate::wire::Contact,
        addr: SocketAddr,
        seq: u32,
        proven: bool,
    ) {
        use rand_core::RngCore;
        let nonce = self.ep.rng().next_u64();
        let cand = Candidate::new(contact, addr, seq, nonce);
        if proven {
            let mut candidates = self.elections.take(&subnet);
            candidates.push(cand);
            let winner = candidates.len() - 1;
            return self.designate(now, (subnet, candidates, winner));
        }
        for (prober, request) in self.elections.enter(now, subnet, cand, self.cfg.reach_probe_wait)
        {
            self.send(now, prober, Message::ProbeRequest(request));
        }
    }

    /// Answers a decided election: the winner becomes the LSN, the others are named it.
    fn designate(&mut self, now: Timestamp, (subnet, candidates, winner): Decided) {
        let Some(w) = candidates.get(winner).copied() else { return };
        tracing::debug!(lsn = ?w.contact.id, candidates = candidates.len(), "LSN designated");
        self.reg.designate(now, subnet, w.contact, &self.cfg);
        self.send(now, w.addr, Message::Ack(Ack { seq: w.seq }));
        for c in candidates.iter().filter(|c| c.contact.id != w.contact.id) {
            let list = NodeList { seq: c.seq, nodes: vec![w.contact] };
            self.send(now, c.addr, Message::NodeList(list));
        }
    }

    fn on_join(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, j: Join) {
        let subnet = SubnetKey::new(j.local.0.ip(), j.prefix_len, addr.ip());
        let contact = crate::wire::Contact { id: peer, addr: j.local };
        // An LSN is nobody's child, so no LSN reports its certificate: keep the one its
        // session proved, or the master could not seal messages to it (a node certified
        // out of band, or enrolled before the master's state was lost).
        if self.reg.certificate(&peer).is_none() {
            if let Some(cert) = self.ep.peer_certificate(&peer).cloned() {
                self.reg.remember_certificate(cert);
            }
        }
        // A Join from an LSN already filed at this address is a repeat: our Ack was lost (or
        // the Join that carried it), so the path is lossy and the Ack goes twice. (Repeats
        // are rare; a new LSN's registration waits on them after a crash.)
        let repeat = self.reg.lsn_addr(&peer) == Some(addr);
        let events = self.reg.register_lsn(now, subnet, contact, addr);
        self.overdue_heard(now, contact.id);
        self.presence(events);
        self.fleet_lsn_registered(now, &peer);
        for _ in 0..if repeat { 2 } else { 1 } {
            self.send(now, addr, Message::Ack(Ack { seq: j.seq }));
        }
        // Two LSNs in one subnet: tell each about the others, senior first, until they
        // settle it (`rivals.rs`, `node/rival.rs`).
        self.tell_rivals(now, subnet);
    }

    fn on_update(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, u: Update) {
        if !self.reg.is_lsn(&peer) {
            let detail = "register as LSN first".to_owned();
            return self.send(
                now,
                addr,
                Message::Error(ErrorMessage { seq: u.seq, code: ErrorCode::NOT_ADMITTED, detail }),
            );
        }
        let mut events = Vec::new();
        let mut adopt = Vec::new();
        let joined = |c: &&crate::wire::PresenceChange| c.kind == crate::wire::PresenceKind::Joined;
        // LSNs this update files as children, and where their sessions are (below).
        let demoted: Vec<(NodeId, SocketAddr)> = (u.changes.iter().filter(joined))
            .filter_map(|c| self.reg.lsn_addr(&c.node).map(|a| (c.node, a)))
            .collect();
        let lsn_joined = !demoted.is_empty();
        for change in &u.changes {
            if matches!(change.kind, crate::wire::PresenceKind::Parted(_)) {
                // A standby reporting the LSN it replaced: hand it that LSN's children at once
                // (those its list missed), but check the claim before reporting the LSN lost:
                // a LAN split makes a live LSN look dead to its standby.
                if let Some(children) = self.reg.replaced_children(&peer, &change.node) {
                    adopt.push(Adopt { old: change.node, children });
                    // One that already left (shut down, revoked) needs no checking.
                    if self.reg.is_lsn(&change.node) {
                        self.suspect(now, change.node, peer);
                    }
                    continue;
                }
            }
            events.extend(self.reg.apply(now, &peer, change, &u.route, &self.cfg));
        }
        for a in adopt.into_iter().filter(|a| !a.children.is_empty()) {
            self.send_adopt(now, peer, addr, a);
        }
        self.presence(events);
        self.send(now, addr, Message::Ack(Ack { seq: u.seq }));
        if let Some(digest) = u.digest {
            self.check_digest(now, peer, digest);
        }
        if lsn_joined {
            // An LSN now reports to `peer` (it yielded): its children wait for `peer` to
            // report them, and those that never left `peer` it never will (`resync.rs`).
            self.resync(now, peer);
        }
        // Or it did not: `peer` took over a dead LSN and reports its adopted children, one of
        // which took over too. Told at once, such an LSN registers again and the rivals settle
        // it (`rivals.rs`); left alone it led children absent here until its next message
        // to us, up to a keepalive test's 52 s of silence. One that did yield ignores this.
        for (lsn, at) in demoted {
            if !self.reg.is_lsn(&lsn) {
                self.refuse_unregistered(now, at, 0);
                self.watch_demoted(now, lsn);
            }
        }
    }
}
