//! [`Node`]: the overlay state machine of every managed device (thesis 5.3).
//!
//! States: `NoConnection → LookingForLsn → Joining → HasLsn | IsLsn`. The code is split by
//! state and concern: `find` (looking for an LSN and joining one), `child` (life under an LSN:
//! liveness, the hot standby, failover), `adopt` (a new LSN taking over the dead one's
//! children, paced), `lsn` (being the LSN: children, ranking, forwarding), `rival`
//! (settling duplicate LSNs, and who may make us yield) and `uplink` (the LSN's link to the master: registration,
//! keepalive, presence deltas).

mod adopt;
mod bulk;
pub use bulk::{
    BulkError, BulkStats, ACK_DELAY as BULK_ACK_DELAY, INCOMING_IDLE as BULK_INCOMING_IDLE,
    INITIAL_WINDOW as BULK_INITIAL_WINDOW, MAX_CHUNK as MAX_BULK_CHUNK,
    MAX_INCOMING as MAX_BULK_INCOMING, MAX_INCOMING_BYTES as MAX_BULK_INCOMING_BYTES,
    MAX_INCOMING_PER_PEER as MAX_BULK_INCOMING_PER_PEER, MAX_OUTGOING as MAX_BULK_OUTGOING,
    STALL as BULK_STALL, WINDOW as BULK_WINDOW,
};
mod child;
mod dht;
mod events;
pub use events::{NodeCommand, NodeEvent, NodeState};
mod find;
mod fleet;
mod gsn;
mod gsn_survey;
mod introduce;
mod inventory;
mod inventory_lsn;
mod machine;
mod nat;
mod query;
pub use fleet::{FANOUT_PER_SECOND, MAX_FLEET_HELD};
pub use gsn::{
    relay_addr, GsnStats, CIRCUIT_IDLE, MAX_CIRCUITS, MAX_RELAY_PATHS, MAX_RELAY_WAITS,
    RELAY_AFTER, RELAY_PATH_IDLE, UPGRADE_FIRST, UPGRADE_MAX,
};
pub use gsn_survey::*;
pub use introduce::{
    IntroStats, COOLDOWN, INTRO_RETRY, INTRO_TIMEOUT, MAX_ASKED, MAX_COOLDOWN, MAX_INTRODUCED,
    MAX_WATCHED, PREDICT_BUDGET, PREDICT_WINDOW,
};
pub use inventory::{MAX_RESULT_WAIT, RESULT_WAIT};
pub use inventory_lsn::{
    BATCH_RETRY, GATHER, INVENTORY_BATCH_GAP, MAX_INVENTORY_QUEUED, MAX_INVENTORY_QUEUED_BYTES,
};
pub use nat::{OBSERVE_TIMEOUT, PROBE_HELD, PROBE_WAIT, RETRY as NAT_RETRY};
mod keepalive;
mod lost;
mod lsn;
mod pings;
mod reach;
mod relay;
mod renew;
mod report;
mod report_batch;
mod requests;
pub use report::{ReportError, MAX_PENDING_REPORTS, REPORT_LIFETIME};
pub use requests::{RespondError, MAX_ANSWER_LEN, MAX_HANDLED, MAX_LOGGED_BYTES, REQUESTS_TABLE};
mod rival;
mod status;
pub use status::NodeStatus;
mod takeover;
mod uplink;

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use self::{child::LsnLink, find::Finder, lsn::LsnRole};
use super::OverlayConfig;
use crate::{
    discovery::{Candidate, DiscoveryRequest},
    endpoint::{Endpoint, Event},
    wire::{Contact, ErrorCode, ErrorMessage, Message, PartReason, Pong, WireAddr},
    NodeId, Timestamp, Transmit,
};

/// A request awaiting an answer: its number, its deadline and how often it was sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    pub(crate) seq: u32,
    pub(crate) deadline: Timestamp,
    pub(crate) tries: u32,
}

/// The overlay state machine of one node. Sans-IO: see the [crate docs](crate) for the loop.
pub struct Node {
    ep: Endpoint,
    cfg: OverlayConfig,
    state: NodeState,
    started: Timestamp,
    seq: u32,
    events: VecDeque<NodeEvent>,
    refusals: super::Refusals,
    rtts: status::Rtts,
    requests: VecDeque<DiscoveryRequest>,
    /// When the state machine wants to act next (start, retry after backoff).
    wake: Option<Timestamp>,
    backoff: Duration,
    finder: Finder,
    lsn: Option<LsnLink>,
    /// The LSN we last joined, kept after we lose it: a takeover must name it (`takeover.rs`).
    last_lsn: Option<NodeId>,
    // Boxed, as the endpoint's cold parts are: most nodes are not LSNs and many run without a
    // DHT, and a compact node keeps its hot fields on fewer cache lines (the fleet simulator
    // touches tens of thousands of nodes).
    role: Option<Box<LsnRole>>,
    dht: Option<Box<crate::dht::Dht>>,
    /// An unsolicited reach probe got in over UDP (`reach.rs`).
    inbound_ok: bool,
    /// No renewal request before this (`renew.rs`).
    renew_retry: Timestamp,
    /// The master's envelopes accepted lately: a relay cannot deliver one twice.
    envelopes: crate::secure::EnvelopeWindow,
    /// Our reports awaiting the master (`report.rs`).
    reports: report::Reports,
    /// (LSN) Children's reports waiting to go to the master together (`report_batch.rs`).
    report_batch: report_batch::ReportBatcher,
    /// The master's requests taken, and their answers (`requests.rs`).
    taken: requests::RequestLog,
    /// (LSN) Fleet requests held for the children (`fleet.rs`).
    fleet: fleet::FleetHeld,
    /// Our inventory and where the master stands (`inventory.rs`).
    inventory: inventory::OwnInventory,
    /// (LSN) The children's inventory changes for the master (`inventory_lsn.rs`).
    inventory_queue: inventory_lsn::InventoryQueue,
    /// Aggregate queries asked of our children, or of us (`query.rs`).
    queries: query::Queries,
    /// What we learned of our NAT (`nat.rs`).
    nat: nat::NatCheck,
    /// Introductions asked, received and watched for (`introduce.rs`).
    intro: Box<introduce::Introductions>,
    /// Relay paths and, as GSN, circuits (`gsn.rs`).
    gsn: Box<gsn::Gsn>,
    /// Bulk transfers under way (`bulk/`), once there was one.
    bulk: Option<Box<bulk::Bulk>>,
}

impl Node {
    /// A node over `endpoint` (which holds its identity, certificate and trust).
    pub fn new(endpoint: Endpoint, cfg: OverlayConfig) -> Self {
        Node {
            ep: endpoint,
            cfg,
            state: NodeState::NoConnection,
            started: Timestamp::ZERO,
            seq: 0,
            events: VecDeque::new(),
            refusals: super::Refusals::default(),
            rtts: status::Rtts::default(),
            requests: VecDeque::new(),
            wake: Some(Timestamp::ZERO),
            backoff: Duration::from_millis(500),
            finder: Finder::default(),
            lsn: None,
            last_lsn: None,
            role: None,
            dht: None,
            inbound_ok: false,
            renew_retry: Timestamp::ZERO,
            envelopes: crate::secure::EnvelopeWindow::default(),
            reports: report::Reports::default(),
            report_batch: report_batch::ReportBatcher::default(),
            taken: requests::RequestLog::default(),
            fleet: fleet::FleetHeld::default(),
            inventory: inventory::OwnInventory::default(),
            inventory_queue: inventory_lsn::InventoryQueue::default(),
            queries: query::Queries::default(),
            nat: nat::NatCheck::default(),
            intro: Box::default(),
            gsn: Box::default(),
            bulk: None,
        }
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.ep.node_id()
    }

    /// The current state.
    pub fn state(&self) -> NodeState {
        self.state
    }

    /// The LSN this node is a child of (itself when it is the LSN).
    pub fn lsn(&self) -> Option<NodeId> {
        match self.state {
            NodeState::IsLsn => Some(self.node_id()),
            _ => self.lsn.as_ref().map(|l| l.id),
        }
    }

    /// Control messages refused because their sender may not send them, by reason.
    pub fn refusals(&self) -> super::Refusals {
        self.refusals
    }

    /// The link layer.
    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// The configuration.
    pub fn config(&self) -> &OverlayConfig {
        &self.cfg
    }

    /// The master's envelopes accepted lately, with the re-deliveries refused.
    pub fn envelope_window(&self) -> &crate::secure::EnvelopeWindow {
        &self.envelopes
    }

    fn me(&self) -> Contact {
        Contact { id: self.node_id(), addr: WireAddr(self.cfg.listen) }
    }

    /// Our address on the local network: what the master hands to other nodes of the subnet.
    fn local_addr(&self) -> SocketAddr {
        SocketAddr::new(self.cfg.local.addr, self.cfg.listen.port())
    }

    fn uptime_secs(&self, now: Timestamp) -> u32 {
        u32::try_from(now.saturating_since(self.started).as_secs()).unwrap_or(u32::MAX)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn set_state(&mut self, to: NodeState) {
        if self.state != to {
            let from = self.state;
            self.state = to;
            tracing::debug!(node = ?self.node_id(), ?from, ?to, "state");
            self.events.push_back(NodeEvent::State { from, to });
        }
    }

    /// Sends `message` to whoever is at `addr`, opening a session if needed. A failure to even
    /// queue it is reported, never dropped silently.
    fn send(&mut self, now: Timestamp, addr: SocketAddr, message: Message) {
        if addr == self.cfg.master {
            self.uplink_sent(now);
        }
        if let Err(error) = self.ep.send_to(now, addr, message) {
            tracing::debug!(%addr, %error, "send failed");
            self.events.push_back(NodeEvent::Link(Event::CommandFailed { error: error.into() }));
        }
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
        self.ep.handle_datagram_on(now, src, path, datagram);
        self.pump(now);
    }

    /// Does whatever is due at `now`, including work that handling it scheduled for `now`
    /// (e.g. a ranking push after a lost child), so that afterwards nothing is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        // Bounded: each round only runs work the previous round made due.
        for _ in 0..4 {
            self.ep.handle_timeout(now);
            self.pump(now);
            if self.wake.is_some_and(|t| now >= t) {
                self.wake = None;
                self.on_wake(now);
            }
            self.child_timers(now);
            self.lsn_timers(now);
            self.find_timers(now);
            self.dht_timers(now);
            self.renew_timers(now);
            self.report_timers(now);
            self.report_batch_timers(now);
            self.fleet_timers(now);
            self.inventory_timers(now);
            self.inventory_queue_timers(now);
            self.query_timers(now);
            self.nat_timers(now);
            self.intro_timers(now);
            self.gsn_timers(now);
            self.bulk_timers(now);
            self.pump(now);
            if self.poll_timeout().is_none_or(|t| t > now) {
                break;
            }
        }
    }

    /// Candidates from discovery, answering [`DiscoveryRequest::Discover`].
    pub fn handle_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        self.on_candidates(now, candidates);
        self.pump(now);
    }

    /// Carries out an application command.
    pub fn handle_command(&mut self, now: Timestamp, command: NodeCommand) {
        match command {
            NodeCommand::Move(local) => self.relocate(now, local),
            NodeCommand::Leave => self.leave(now),
            NodeCommand::Dht(command) => {
                self.dht_command(now, command);
            }
            NodeCommand::Respond { id, status, body } => {
                if let Err(error) = self.respond(now, id, status, body) {
                    tracing::warn!(id, %error, "answer refused");
                }
            }
            NodeCommand::SendBulk { id, peer, addr, data } => {
                if let Err(error) = self.send_bulk_as(now, id, peer, addr, data) {
                    self.events.push_back(NodeEvent::BulkFailed { peer, id, error });
                }
            }
            NodeCommand::Report { id, data } => {
                if let Err(error) = self.report(now, id, &data) {
                    self.events.push_back(NodeEvent::ReportFailed { id, error });
                }
            }
        }
        self.pump(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.next_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }

    /// The next thing the node needs from discovery.
    pub fn poll_request(&mut self) -> Option<DiscoveryRequest> {
        self.requests.pop_front()
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [
            self.ep.poll_timeout(),
            self.wake,
            self.child_deadline(),
            self.lsn_deadline(),
            self.find_deadline(),
            self.dht_deadline(),
            self.renew_deadline(),
            self.report_deadline(),
            self.report_batch_deadline(),
            self.fleet_deadline(),
            self.inventory_deadline(),
            self.query_deadline(),
            self.nat_deadline(),
            self.intro_deadline(),
            self.gsn_deadline(),
            self.bulk_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles what the link layer reported.
    fn pump(&mut self, now: Timestamp) {
        self.gsn.clock = self.gsn.clock.max(now);
        while let Some(event) = self.ep.poll_event() {
            match event {
                Event::Message { peer, addr, message } => self.on_message(now, peer, addr, message),
                Event::ConnectFailed { addr, ref error, .. } => {
                    tracing::debug!(%addr, %error, "connect failed");
                    self.on_unreachable(now, addr);
                    if self.ep.certificate().is_none() && addr == self.cfg.master {
                        // The enrollment dial found no master (down, restarting): no session,
                        // so no enrollment timeout will come either. Dial again later.
                        self.retry_later(now);
                    }
                    self.events.push_back(NodeEvent::Link(event));
                }
                Event::Connected { peer, addr, initiator, .. } => {
                    self.intro_connected(now, peer);
                    self.relay_connected(peer, addr);
                    self.dht_connected(now, peer, addr, initiator);
                    self.report_connected(now, peer);
                    self.bulk_connected(now, peer);
                    self.events.push_back(NodeEvent::Link(event));
                }
                Event::Disconnected { peer, .. } => {
                    self.dht_disconnected(now, peer);
                    self.on_disconnected(now, peer);
                    self.events.push_back(NodeEvent::Link(event));
                }
                Event::ReachProbe { addr, path, nonce, session } => {
                    if !self.nat_probe(now, nonce, session) {
                        self.on_reach_probe(now, addr, path, nonce, session);
                    }
                    self.events.push_back(NodeEvent::Link(event));
                }
                Event::Enrolled { .. } | Event::EnrollmentFailed { .. } => {
                    let enrolled = matches!(event, Event::Enrolled { .. });
                    self.events.push_back(NodeEvent::Link(event));
                    if enrolled {
                        // The enrollment session stays up: the master is our first DHT contact.
                        let (master, addr) = (self.master_id(), self.cfg.master);
                        self.dht_connected(now, master, addr, true);
                    }
                    if enrolled && self.state == NodeState::NoConnection {
                        self.wake = Some(now);
                    } else if !enrolled {
                        self.retry_later(now);
                    }
                }
                Event::PathChanged { peer, path: crate::Path::Tcp, .. }
                | Event::PathSilent { peer, .. } => {
                    self.relay_fallback(now, peer);
                    self.events.push_back(NodeEvent::Link(event));
                }
                other => self.events.push_back(NodeEvent::Link(other)),
            }
        }
        self.dht_flush(now);
    }

    fn on_wake(&mut self, now: Timestamp) {
        if self.state != NodeState::NoConnection || self.finder.stopped {
            return;
        }
        if self.started == Timestamp::ZERO {
            self.started = now;
        }
        if self.ep.certificate().is_none() {
            // First contact: enroll with the master before anything else.
            let master = self.cfg.master;
            let id = self.ep.trust().network().master_id();
            self.ep.connect(now, master, Some(id));
            return;
        }
        self.start_looking(now);
    }

    /// Tries again after the current backoff, which doubles up to the configured ceiling.
    fn retry_later(&mut self, now: Timestamp) {
        self.wake = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.max_backoff);
    }

    fn on_message(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, message: Message) {
        if self.lsn.as_ref().is_some_and(|l| l.id == peer) {
            self.heard_from_lsn(now);
        }
        if peer == self.master_id() {
            self.uplink_heard(now);
        }
        let Some(message) = self.dht_message(now, peer, addr, message) else { return };
        match &message {
            Message::Ack(crate::wire::Ack { seq })
            | Message::NodeList(crate::wire::NodeList { seq, .. }) => {
                self.count_foreign_answer(peer, addr, *seq)
            }
            Message::Error(e) => self.count_foreign_answer(peer, addr, e.seq),
            _ => {}
        }
        match message {
            Message::Ping(ping) => {
                let lsn = match self.state {
                    NodeState::IsLsn => Some(self.me()),
                    _ => self.lsn.as_ref().map(|l| l.contact()),
                };
                self.send(now, addr, Message::Pong(Pong { seq: ping.seq, lsn }));
                self.on_child_ping(now, peer, addr);
            }
            Message::Pong(pong) => self.on_pong(now, peer, addr, pong),
            Message::Join(join) => self.on_join(now, peer, addr, join),
            Message::Ack(ack) => self.on_ack(now, peer, addr, ack.seq),
            Message::NodeList(list) => self.on_node_list(now, peer, addr, list),
            Message::Error(error) => self.on_error(now, peer, addr, error),
            Message::Part(part) => self.on_part(now, peer, part),
            Message::Takeover(t) => self.on_takeover(now, peer, addr, t),
            Message::Uptime(u) => self.on_uptime(now, peer, addr, u),
            Message::Resync(r) => self.on_resync(now, peer, addr, r),
            Message::Adopt(a) => self.on_adopt(now, peer, a),
            Message::Forward(f) => self.on_forward(now, peer, addr, *f),
            Message::Report(r) => self.on_report(now, peer, addr, *r),
            Message::ReportAcks(a) => self.on_report_acks(now, peer, *a),
            Message::FleetRequest(f) => self.on_fleet_request(now, peer, addr, *f),
            Message::InventoryChange(c) => self.on_inventory_change(now, peer, addr, *c),
            Message::InventoryAcks(a) => self.on_inventory_acks(now, peer, *a),
            Message::InventoryResult(r) => self.on_inventory_result(now, peer, r),
            Message::FleetQuery(q) => self.on_fleet_query(now, peer, addr, *q),
            Message::QueryAnswer(a) => self.on_query_answer(now, peer, *a),
            Message::ProbeRequest(r) => self.on_probe_request(peer, r),
            Message::ReachProof(p) => self.on_reach_proof(now, peer, p),
            Message::Keepalive(_) => self.uplink_echo(now, peer),
            Message::Revocations(list) => self.on_revocations(now, peer, &list),
            Message::ObserveMe(o) => self.on_observe_me(now, addr, o),
            Message::Observed(o) => self.on_observed(now, peer, o),
            Message::NatReport(r) => self.on_nat_share(peer, r),
            Message::Introduction(i) => self.on_introduction(now, peer, *i),
            Message::BulkChunk(c) => self.on_bulk_chunk(now, peer, *c),
            Message::BulkAck(a) => self.on_bulk_ack(now, peer, *a),
            Message::BulkStop(s) => self.on_bulk_stop(peer, s),
            other => {
                let Some(other) = self.on_gsn_message(now, peer, addr, other) else { return };
                tracing::debug!(?peer, kind = ?other.message_type(), "message not for the overlay");
                self.events.push_back(NodeEvent::Link(Event::Message {
                    peer,
                    addr,
                    message: other,
                }));
            }
        }
    }

    fn on_error(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, error: ErrorMessage) {
        if self.intro_refused(now, peer, error.seq) {
            return;
        }
        if self.finder.on_error(peer, addr, error.seq) {
            self.events.push_back(NodeEvent::JoinRefused { peer, detail: error.detail });
            self.try_next_candidate(now);
        } else {
            self.on_lsn_error(now, peer, error);
        }
    }

    fn reply_error(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        seq: u32,
        code: ErrorCode,
        detail: &str,
    ) {
        self.send(now, addr, Message::Error(ErrorMessage { seq, code, detail: detail.into() }));
    }

    fn on_unreachable(&mut self, now: Timestamp, addr: SocketAddr) {
        self.find_unreachable(now, addr);
        self.uplink_unreachable(now, addr);
    }

    fn on_disconnected(&mut self, now: Timestamp, peer: NodeId) {
        if self.lsn.as_ref().is_some_and(|l| l.id == peer) {
            self.lsn_dead(now);
        }
        self.child_disconnected(now, peer);
    }

    /// Moves to another network.
    fn relocate(&mut self, now: Timestamp, local: super::LocalNetwork) {
        self.part_all(now, PartReason::Moved);
        self.cfg.local = local;
        // Dials held back for an introduction to what is now our own network go in full.
        self.ep.dial_in_full_within(now, |a| local.contains(a.ip()));
        self.nat_reset();
        self.finder.stopped = false;
        self.start_looking(now);
    }

    /// Leaves the overlay.
    fn leave(&mut self, now: Timestamp) {
        self.part_all(now, PartReason::Shutdown);
        self.finder = Finder::default();
        self.finder.stopped = true;
        self.set_state(NodeState::NoConnection);
    }

    /// Announces a part to the LSN, or (as LSN) to the children with the standby as the better
    /// LSN, and drops the role.
    fn part_all(&mut self, now: Timestamp, reason: PartReason) {
        if let Some(lsn) = self.lsn.take() {
            self.send(now, lsn.addr, Message::Part(crate::wire::Part { reason, better_lsn: None }));
        }
        self.resign(now, reason, None);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_authz;
#[cfg(test)]
mod tests_bulk;
#[cfg(test)]
mod tests_fleet;
#[cfg(test)]
mod tests_gsn;
#[cfg(test)]
mod tests_inventory;
#[cfg(test)]
mod tests_nat;
#[cfg(test)]
mod tests_query;
#[cfg(test)]
mod tests_report;
#[cfg(test)]
mod tests_requests;
#[cfg(test)]
mod tests_requests_chaos;
