//! The GSN directory, both sides (issue 16; thesis 4.1: LSNs measure round trips to a few
//! GSNs and hand their children the nearest). The tickets and the directory's key are in
//! `overlay/gsn_ticket.rs`; the master's side is `overlay/master/gsn.rs`.
//!
//! * **GSN.** A grant's ticket, once it verifies (the master's, for us), is published under
//!   the directory key within [`PUBLISH_SPREAD`] (retried every [`PUBLISH_RETRY`] while the
//!   put reaches nobody). At half the ticket's life we report our NAT class again, and the
//!   master answers with a fresh grant and ticket, which we publish in turn.
//! * **LSN.** [`SURVEY_FIRST`] after becoming LSN, then [`SURVEY_EVERY`] after each choice,
//!   twice as long after each survey that left it unchanged, up to [`SURVEY_MAX`]. While the
//!   directory holds nothing usable, or no GSN answered, the next survey comes after
//!   [`SURVEY_RETRY`], twice as long each time up to [`SURVEY_MAX`] (a fleet without GSNs);
//!   while some GSN was never probed, after [`SURVEY_RETRY`]. The LSN reads the directory,
//!   keeps the GSNs whose tickets verify, and probes [`GSN_PROBES`] of them: the one it chose,
//!   then those measured longest ago, those silent last time last. Each gets two
//!   [`GsnProbe`]s, the second sent when the first is answered (the first may wait for a
//!   handshake); the smaller round trip counts.
//!   [`GSN_PROBE_WAIT`] after the probes left, the LSN takes the GSN with the smallest round
//!   trip measured in its last two surveys (ties: the longer tenure), and tells the master
//!   ([`GsnChoice`]) when that changed. The master names it in every introduction the LSN or
//!   one of its children asks for, so their relayed sessions run through a GSN near them.
//!   An LSN that is itself a GSN chooses itself: its children reach it over the LAN.
//!
//! The directory's records are read through the DHT like any get, but their results are the
//! node's own: they never reach the application as [`NodeEvent::Dht`](super::NodeEvent::Dht).
//!
//! Bounds: [`MAX_CANDIDATES`] GSNs kept, at most `2 × GSN_PROBES` probes in flight.
//! Authorization (docs/AUTHORIZATION.md): a grant's ticket must be the master's and name us;
//! `GsnProbe` is answered only by a serving GSN; `GsnProbeAck` only from the GSN probed,
//! with the nonce it was sent.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use super::{Node, NodeState};
use crate::{
    dht::{DhtEvent, QueryId},
    overlay::gsn_ticket::{
        directory_key, directory_value, read_directory_record, verify_ticket, TICKET_TTL,
    },
    wire::{GsnChoice, GsnProbe, GsnProbeAck, GsnTicket, Message, Record},
    NodeId, Timestamp,
};

/// First survey after a node becomes LSN.
pub const SURVEY_FIRST: Duration = Duration::from_secs(60);
/// Between surveys after one that changed the choice.
pub const SURVEY_EVERY: Duration = Duration::from_secs(3600);
/// Between surveys, at most: each survey that leaves the choice as it was doubles the wait.
/// A survey costs a DHT get and a handshake and two probes per GSN probed: hourly, about 6 kB
/// per LSN, which a subnet's nodes share.
pub const SURVEY_MAX: Duration = Duration::from_secs(8 * 3600);
/// Between surveys while the directory held no usable GSN.
pub const SURVEY_RETRY: Duration = Duration::from_secs(300);
/// GSNs probed per survey.
pub const GSN_PROBES: usize = 4;
/// How long probes may take before the choice is made.
pub const GSN_PROBE_WAIT: Duration = Duration::from_secs(5);
/// GSNs kept from the directory.
pub const MAX_CANDIDATES: usize = 64;
/// A GSN's put that reached nobody is tried again after this.
pub const PUBLISH_RETRY: Duration = Duration::from_secs(60);
/// A GSN publishes a ticket at a random moment within this after it came.
pub const PUBLISH_SPREAD: Duration = Duration::from_secs(60);

/// What the directory did on this node (for tests and the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SurveyStats {
    /// (GSN) Tickets published.
    pub published: u64,
    /// (LSN) Directory reads.
    pub surveys: u64,
    /// (LSN) Probes sent.
    pub probes: u64,
    /// (LSN) Choices told the master.
    pub choices: u64,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    ticket: GsnTicket,
    /// The smallest round trip of the survey that measured it last, and when.
    rtt: Option<(Duration, Timestamp)>,
    /// It did not answer the last survey's probes: probed last from then on. A ticket
    /// outlives a GSN's restart (which loses its grant) by up to its whole life.
    silent: bool,
}

#[derive(Clone, Copy, Debug)]
struct Probe {
    gsn: NodeId,
    sent: Timestamp,
    /// The first of the pair (its answer sends the second).
    first: bool,
}

/// The directory's state on one node.
#[derive(Clone, Debug, Default)]
pub(super) struct Directory {
    /// (GSN) Our ticket, and when to publish it (again).
    ticket: Option<GsnTicket>,
    publish_at: Option<Timestamp>,
    /// (GSN) When to ask for a fresh ticket.
    renew_at: Option<Timestamp>,
    /// DHT queries whose results are ours: the put in flight and the survey's get.
    put: Option<QueryId>,
    get: Option<QueryId>,
    /// (LSN) When our tenure as LSN began; `None` while not LSN.
    tenure: Option<Timestamp>,
    /// (LSN) The next survey; `None` while not LSN.
    survey_at: Option<Timestamp>,
    /// (LSN) When the probes of the survey under way are over.
    decide_at: Option<Timestamp>,
    candidates: BTreeMap<NodeId, Candidate>,
    probes: BTreeMap<u32, Probe>,
    next_nonce: u32,
    /// (LSN) The GSN chosen, with its round trip.
    choice: Option<(NodeId, Duration)>,
    /// (LSN) The wait before the next survey (zero before the first choice).
    every: Duration,
    /// (LSN) The wait before the next survey while no GSN is chosen (zero once one is).
    retry: Duration,
    stats: SurveyStats,
}

impl Directory {
    /// Whether `query` is one of ours.
    pub(super) fn owns(&self, query: QueryId) -> bool {
        self.put == Some(query) || self.get == Some(query)
    }
}

impl Node {
    /// The GSN this node (as LSN) chose for itself and its children, with the round trip it
    /// measured.
    pub fn gsn_choice(&self) -> Option<(NodeId, Duration)> {
        self.gsn.dir.choice
    }

    /// What the GSN directory did on this node.
    pub fn survey_stats(&self) -> SurveyStats {
        self.gsn.dir.stats
    }

    /// (GSN) The grant carried a ticket: keep it if it is the master's and ours, and publish
    /// it. `false` when it does not verify.
    pub(super) fn take_ticket(&mut self, now: Timestamp, ticket: GsnTicket) -> bool {
        let network = *self.ep.trust().network();
        if let Err(error) = verify_ticket(&network, &ticket, &self.node_id(), now.as_secs()) {
            tracing::debug!(%error, "GSN ticket refused");
            return false;
        }
        // A repeated grant (our NAT class reported again for another reason) for the ticket we
        // hold, with more than half its life left: the directory has it; a put is a lookup and
        // k stores.
        if let Some(held) = self.gsn.dir.ticket {
            let fresh = held.expires.saturating_sub(now.as_secs()) > TICKET_TTL.as_secs() / 2;
            if fresh && held.addr == ticket.addr && held.since == ticket.since {
                return true;
            }
        }
        // Spread: the master appoints the GSNs of a fleet that starts together within a
        // second or two, and a put is a lookup and k stores. Drawn from our id, not the
        // endpoint's generator, whose draws the rest of the node's behaviour follows.
        let id = self.node_id();
        let b = id.as_bytes();
        let seed = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let spread = (seed ^ ticket.expires) % PUBLISH_SPREAD.as_millis() as u64;
        let d = &mut self.gsn.dir;
        d.ticket = Some(ticket);
        d.publish_at = Some(now + Duration::from_millis(spread));
        let half = ticket.expires.saturating_sub(now.as_secs()) / 2;
        d.renew_at = Some(now + Duration::from_secs(half.max(1)));
        true
    }

    /// (GSN) The grant was withdrawn: stop renewing; the ticket runs out in the directory.
    pub(super) fn drop_ticket(&mut self) {
        let d = &mut self.gsn.dir;
        (d.ticket, d.publish_at, d.renew_at) = (None, None, None);
    }

    pub(super) fn survey_deadline(&self) -> Option<Timestamp> {
        let d = &self.gsn.dir;
        // Not while the query they would start is still out (its result moves them).
        let publish = d.publish_at.filter(|_| d.put.is_none());
        let survey = d.survey_at.filter(|_| d.get.is_none());
        [publish, d.renew_at, survey, d.decide_at].into_iter().flatten().min()
    }

    pub(super) fn survey_timers(&mut self, now: Timestamp) {
        self.survey_schedule(now);
        let d = &mut self.gsn.dir;
        if d.renew_at.is_some_and(|t| t <= now) {
            d.renew_at = Some(now + SURVEY_RETRY);
            self.nat_report_again(now);
        }
        let d = &mut self.gsn.dir;
        if d.publish_at.is_some_and(|t| t <= now) && d.put.is_none() {
            d.publish_at = None;
            self.publish_ticket(now);
        }
        let d = &mut self.gsn.dir;
        if d.survey_at.is_some_and(|t| t <= now) && d.get.is_none() {
            // Stands unless the survey brings a choice.
            d.retry = (d.retry * 2).clamp(SURVEY_RETRY, SURVEY_MAX);
            d.survey_at = Some(now + d.retry);
            self.survey(now);
        }
        if self.gsn.dir.decide_at.is_some_and(|t| t <= now) {
            self.gsn.dir.decide_at = None;
            self.decide(now);
        }
    }

    /// Starts surveying when the node begins a tenure as LSN, and stops when it ends one: a
    /// new tenure (another subnet, or the same later) starts its waits over. Read from the
    /// role's start, so a tenure that ended between two timers is noticed too.
    fn survey_schedule(&mut self, now: Timestamp) {
        let lsn = self.state == NodeState::IsLsn && self.cfg.dht.enabled;
        let tenure = self.role.as_ref().filter(|_| lsn).map(|r| r.since);
        let d = &mut self.gsn.dir;
        if d.tenure == tenure {
            return;
        }
        let first = tenure.map(|_| now + SURVEY_FIRST);
        (d.tenure, d.survey_at, d.decide_at, d.choice) = (tenure, first, None, None);
        (d.every, d.retry) = (Duration::ZERO, Duration::ZERO);
        d.probes.clear();
    }

    fn publish_ticket(&mut self, now: Timestamp) {
        let Some(ticket) = self.gsn.dir.ticket else { return };
        if !self.cfg.dht.enabled {
            return;
        }
        let value = directory_value(&ticket);
        // The record lives as long as the ticket; the version orders our puts.
        let record = Record::sign(
            self.ep.identity(),
            directory_key(),
            value,
            now.as_micros(),
            ticket.expires,
        );
        self.gsn.dir.put = Some(self.dht_put_record(now, record));
    }

    /// Reads the directory, unless we serve ourselves.
    fn survey(&mut self, now: Timestamp) {
        if self.is_gsn() {
            let me = self.node_id();
            return self.choose(now, Some((me, Duration::ZERO)));
        }
        self.gsn.dir.stats.surveys += 1;
        self.gsn.dir.get = Some(self.dht_get(now, directory_key()));
    }

    /// A DHT result for one of our queries (`dht.rs` hands them here).
    pub(super) fn on_directory_event(&mut self, now: Timestamp, event: DhtEvent) {
        match event {
            DhtEvent::Put { query, result, .. } if self.gsn.dir.put == Some(query) => {
                self.gsn.dir.put = None;
                match result {
                    // More than ourselves hold it.
                    Ok(n) if n > 1 => self.gsn.dir.stats.published += 1,
                    _ => self.gsn.dir.publish_at = Some(now + PUBLISH_RETRY),
                }
            }
            DhtEvent::Got { query, result, .. } if self.gsn.dir.get == Some(query) => {
                self.gsn.dir.get = None;
                self.on_directory(now, result.unwrap_or_default());
            }
            _ => {}
        }
    }

    /// The directory's records: keep the GSNs whose tickets verify, probe a few.
    fn on_directory(&mut self, now: Timestamp, records: Vec<Record>) {
        let network = *self.ep.trust().network();
        let me = self.node_id();
        let d = &mut self.gsn.dir;
        let mut found = BTreeMap::new();
        for r in &records {
            let Ok(ticket) = read_directory_record(&network, r, now.as_secs()) else {
                tracing::debug!(publisher = ?r.publisher, "GSN directory record refused");
                continue;
            };
            if ticket.gsn == me || found.len() >= MAX_CANDIDATES {
                continue;
            }
            let old = d.candidates.get(&ticket.gsn);
            let (rtt, silent) = old.map_or((None, false), |c| (c.rtt, c.silent));
            found.insert(ticket.gsn, Candidate { ticket, rtt, silent });
        }
        d.candidates = found;
        if d.candidates.is_empty() {
            return;
        }
        // The one chosen, then those measured longest ago (never first), longest serving first.
        let chosen = d.choice.map(|(id, _)| id);
        let mut order: Vec<&Candidate> = d.candidates.values().collect();
        order.sort_by_key(|c| {
            let measured = c.rtt.map(|(_, at)| at);
            (Some(c.ticket.gsn) != chosen, c.silent, measured, c.ticket.since, c.ticket.gsn)
        });
        let picked: Vec<GsnTicket> = order.iter().take(GSN_PROBES).map(|c| c.ticket).collect();
        for t in &picked {
            // Silent (and unmeasured) until its answer comes: a GSN that stopped serving does
            // not answer, and must not be chosen on an old figure.
            if let Some(c) = self.gsn.dir.candidates.get_mut(&t.gsn) {
                (c.rtt, c.silent) = (None, true);
            }
        }
        for ticket in picked {
            self.probe(now, ticket, true);
        }
        self.gsn.dir.decide_at = Some(now + GSN_PROBE_WAIT);
    }

    fn probe(&mut self, now: Timestamp, ticket: GsnTicket, first: bool) {
        let d = &mut self.gsn.dir;
        if d.probes.len() >= 2 * GSN_PROBES {
            return;
        }
        d.next_nonce = d.next_nonce.wrapping_add(1);
        let nonce = d.next_nonce;
        d.probes.insert(nonce, Probe { gsn: ticket.gsn, sent: now, first });
        d.stats.probes += 1;
        if !self.ep.is_connected(&ticket.gsn) {
            self.ep.connect(now, ticket.addr.0, Some(ticket.gsn));
        }
        self.send(now, ticket.addr.0, Message::GsnProbe(GsnProbe { nonce }));
    }

    /// (GSN) A probe: answered while we serve.
    pub(super) fn on_gsn_probe(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        p: GsnProbe,
    ) {
        if !self.is_gsn() {
            tracing::debug!(?peer, "GSN probe to a node not serving: refused");
            self.refusals.gsn += 1;
            return;
        }
        self.send(now, addr, Message::GsnProbeAck(GsnProbeAck { nonce: p.nonce }));
    }

    /// (LSN) A probe's answer: only from the GSN probed.
    pub(super) fn on_gsn_probe_ack(&mut self, now: Timestamp, peer: NodeId, a: GsnProbeAck) {
        let d = &mut self.gsn.dir;
        let Some(probe) = d.probes.get(&a.nonce).copied().filter(|p| p.gsn == peer) else {
            tracing::debug!(?peer, "GSN probe answer not asked for: refused");
            self.refusals.gsn += 1;
            return;
        };
        d.probes.remove(&a.nonce);
        let rtt = now.saturating_since(probe.sent);
        let Some(c) = d.candidates.get_mut(&peer) else { return };
        c.silent = false;
        // The second answer (its probe sent on the first's answer) keeps the smaller.
        c.rtt = Some(match c.rtt {
            Some((old, _)) => (old.min(rtt), now),
            None => (rtt, now),
        });
        if probe.first {
            let ticket = c.ticket;
            self.probe(now, ticket, false);
        }
    }

    /// The probes are over: take the nearest GSN measured lately.
    fn decide(&mut self, now: Timestamp) {
        let d = &mut self.gsn.dir;
        d.probes.clear();
        let horizon = 2 * d.every.max(SURVEY_EVERY);
        let recent = |at: Timestamp| now.saturating_since(at) <= horizon;
        let best = (d.candidates.values())
            .filter_map(|c| c.rtt.filter(|(_, at)| recent(*at)).map(|(rtt, _)| (c, rtt)))
            .min_by_key(|(c, rtt)| (*rtt, c.ticket.since, c.ticket.gsn))
            .map(|(c, rtt)| (c.ticket.gsn, rtt));
        // GSNs never probed yet: the next survey comes soon, until each was measured once.
        let unprobed = d.candidates.values().any(|c| c.rtt.is_none() && !c.silent);
        self.choose(now, best);
        if unprobed {
            let soon = now + SURVEY_RETRY;
            let d = &mut self.gsn.dir;
            d.survey_at = d.survey_at.map(|t| t.min(soon));
        }
    }

    /// Tells the master of a new choice (not of the same GSN at another round trip), and
    /// schedules the next survey.
    fn choose(&mut self, now: Timestamp, best: Option<(NodeId, Duration)>) {
        let d = &mut self.gsn.dir;
        let old = d.choice.map(|(id, _)| id);
        d.choice = best;
        let same = best.map(|(id, _)| id) == old;
        d.every = if same { (d.every * 2).clamp(SURVEY_EVERY, SURVEY_MAX) } else { SURVEY_EVERY };
        // Nobody answered: soon again, the next candidates in line.
        let wait = if best.is_some() { d.every } else { d.retry.max(SURVEY_RETRY) };
        if best.is_some() {
            d.retry = Duration::ZERO;
        }
        d.survey_at = Some(now + wait);
        if same || self.state != NodeState::IsLsn {
            return;
        }
        d.stats.choices += 1;
        let rtt_ms = best.map_or(0, |(_, rtt)| rtt.as_millis().min(u32::MAX as u128) as u32);
        let choice = GsnChoice { gsn: best.map(|(id, _)| id), rtt_ms };
        // Past `send`: a message the master does not answer must not count as uplink traffic,
        // which puts off the next keepalive and with it the check that the master answers.
        if let Err(error) = self.ep.send_to(now, self.cfg.master, Message::GsnChoice(choice)) {
            tracing::debug!(%error, "GSN choice not sent");
        }
    }
}

#[cfg(test)]
#[path = "tests_gsn_survey.rs"]
mod tests;
