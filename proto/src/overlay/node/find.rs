//! LookingForLsn and Joining: find the subnet's LSN (LAN and cache through discovery, then
//! the master) and join it, or become the LSN when the master says there is none.

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use super::{Node, NodeEvent, NodeState, Probe};
use crate::{
    discovery::{Candidate, DiscoveryRequest, Source},
    wire::{Contact, Join, LsnQuery, Message, NodeList, WireAddr},
    NodeId, Timestamp,
};

/// How long the node waits for discovery's answer before asking the master anyway.
const DISCOVERY_WAIT: Duration = Duration::from_secs(2);

/// How many times a successor that has not noticed its LSN's death yet is asked again, half a
/// `takeover_wait` apart, before the next in line is tried: it watches the LSN as closely as
/// we do, so it notices within about a heartbeat; one that does not is cut off from it.
const SUCCESSOR_WAITS: u32 = 4;

/// How many times a Join goes to a candidate whose session is up before the next candidate
/// is tried, `join_timeout / 4` apart, half that over a session with a node of our LAN
/// (within the same `join_timeout`, or half: a dead candidate costs no longer than before).
/// A single Join (or its Ack) lost used to send the node on to the next candidate, then to
/// the master, which answers a querier that asks again so soon with no LSN
/// (`lsns_for_query`): the node led a duplicate LSN of its own. At 20 % loss each way one
/// round trip fails 36 % of the time, four in a row 1.7 %.
const JOIN_TRIES: u32 = 4;

#[derive(Default)]
pub(crate) struct Finder {
    /// Set by `Leave`: do not look for an LSN until told to.
    pub(crate) stopped: bool,
    discovering: Option<Timestamp>,
    pub(super) candidates: VecDeque<(SocketAddr, Option<NodeId>)>,
    /// Whether the current candidates came from the master (else from discovery).
    from_master: bool,
    join: Option<JoinAttempt>,
    query: Option<Probe>,
    /// After the LSN died: the ranked survivors to try if no takeover is announced by then.
    pub(crate) takeover: Option<(Timestamp, Vec<Contact>)>,
    /// The LSN we lost and its ranking, while we try its successors: when the candidate
    /// next in line is ourselves, every successor before us failed to answer, and we take
    /// over with this list (`child.rs`).
    pub(crate) replacing: Option<(NodeId, Vec<Contact>)>,
    /// The LSN that the one we lost had itself replaced moments ago, with its ranking and
    /// until when it counts (`LsnLink::predecessor`): taking over, we finish that takeover too.
    pub(crate) predecessor: Option<(NodeId, Vec<Contact>, Timestamp)>,
    /// Times a successor we asked answered that it still follows the dead LSN (it has not
    /// noticed the death yet) and we waited for it to.
    pub(super) successor_waits: u32,
    /// Candidates whose Join went unanswered in this search: a sibling that still names one
    /// as its LSN does not send us back to it (seed 229 of the cascade sweep spent 2 s on a
    /// dead LSN twice). Bounded by [`MAX_FAILED`]; cleared when the search ends.
    failed: Vec<NodeId>,
    /// We were a hot standby of the LSN we lost: we watched it as closely as the first
    /// standby, so a successor ranked before us whose takeover notice has not come by our
    /// turn is most likely dead too, and our Joins to it use the short LAN window.
    pub(super) watched: bool,
}

/// Most unanswered candidates remembered in one search.
const MAX_FAILED: usize = 16;

/// Our Join in flight: where it went, whom we expect to answer, and its retry state.
#[derive(Clone, Copy)]
struct JoinAttempt {
    addr: SocketAddr,
    /// The candidate's id when we know it (from the master or the cache); a LAN answer may
    /// not carry one.
    expect: Option<NodeId>,
    probe: Probe,
    /// The Join as sent (repeated unchanged, with the same number).
    join: Join,
    /// When it was first sent (the round trip is measured from a first try only).
    sent: Timestamp,
    /// When it is repeated, if the session is up by then.
    resend: Timestamp,
    /// The time its tries are spread over.
    span: Duration,
}

impl JoinAttempt {
    /// Whether a reply numbered `seq` from `peer` at `addr` answers this Join: only the
    /// candidate may accept or refuse it (any certified node could otherwise guess the
    /// number and steer us to itself, or away from our LSN).
    fn answered_by(&self, peer: NodeId, addr: SocketAddr, seq: u32) -> bool {
        self.probe.seq == seq
            && match self.expect {
                Some(id) => id == peer,
                None => self.addr == addr,
            }
    }
}

impl Finder {
    /// Where our Join in flight went (tests).
    #[cfg(test)]
    pub(crate) fn joining(&self) -> Option<SocketAddr> {
        self.join.map(|j| j.addr)
    }

    /// The search is over (we lead): the candidates that failed it may answer the next.
    pub(crate) fn forget_failed(&mut self) {
        self.failed.clear();
        self.watched = false;
    }

    /// Whether our LsnQuery awaits the master's answer.
    pub(crate) fn query_pending(&self) -> bool {
        self.query.is_some()
    }

    /// A refusal of our Join: the caller tries the next candidate.
    pub(crate) fn on_error(&mut self, peer: NodeId, addr: SocketAddr, seq: u32) -> bool {
        if self.join.is_some_and(|j| j.answered_by(peer, addr, seq)) {
            self.join = None;
            return true;
        }
        false
    }
}

impl Node {
    /// Counts an answer numbered `seq` to our Join or LsnQuery that came from someone other
    /// than the one we asked (it is then ignored by the handlers).
    pub(super) fn count_foreign_answer(&mut self, peer: NodeId, addr: SocketAddr, seq: u32) {
        let join =
            self.finder.join.is_some_and(|j| j.probe.seq == seq && !j.answered_by(peer, addr, seq));
        let query = self.finder.query.is_some_and(|p| p.seq == seq) && peer != self.master_id();
        if join || query {
            self.refusals.answer += 1;
        }
    }

    pub(super) fn start_looking(&mut self, now: Timestamp) {
        self.lsn = None;
        self.finder.join = None;
        self.finder.query = None;
        self.finder.candidates.clear();
        self.set_state(NodeState::LookingForLsn);
        self.finder.discovering = Some(now + DISCOVERY_WAIT);
        self.requests.push_back(DiscoveryRequest::Discover);
    }

    pub(super) fn on_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        if self.finder.discovering.take().is_none() || self.state != NodeState::LookingForLsn {
            return;
        }
        let me = self.cfg.listen;
        let mine = self.node_id();
        // LAN answers first, then cached LSNs: the thesis' order (4.3.1).
        let mut list: Vec<Candidate> =
            candidates.into_iter().filter(|c| c.addr != me && c.id != Some(mine)).collect();
        list.sort_by_key(|c| match c.source {
            Source::Lan => 0,
            Source::Cache => 1,
            _ => 2,
        });
        if list.is_empty() {
            self.query_master(now);
        } else {
            self.finder.candidates = list.into_iter().map(|c| (c.addr, c.id)).collect();
            self.finder.from_master = false;
            self.set_state(NodeState::Joining);
            self.try_next_candidate(now);
        }
    }

    pub(super) fn query_master(&mut self, now: Timestamp) {
        let seq = self.next_seq();
        let query = LsnQuery {
            seq,
            local: WireAddr(self.local_addr()),
            prefix_len: self.cfg.local.prefix_len,
        };
        let master = self.cfg.master;
        self.ep.connect(now, master, Some(self.ep.trust().network().master_id()));
        self.send(now, master, Message::LsnQuery(query));
        let deadline = now + self.cfg.join_timeout + self.cfg.join_timeout;
        self.finder.query = Some(Probe { seq, deadline, tries: 1 });
        self.set_state(NodeState::LookingForLsn);
    }

    /// Notes the round trip of our LsnQuery, answered now.
    fn query_answered(&mut self, now: Timestamp) {
        if let Some(p) = self.finder.query {
            let timeout = self.cfg.join_timeout;
            self.master_answered(now, p.deadline - timeout - timeout);
        }
    }

    /// Sends a Join to the next candidate, or falls back when none is left.
    pub(super) fn try_next_candidate(&mut self, now: Timestamp) {
        self.finder.join = None;
        let me = self.node_id();
        while self.finder.candidates.front().is_some_and(|(_, id)| *id == Some(me)) {
            self.finder.candidates.pop_front();
            if let Some((old, ranked)) = self.finder.replacing.take() {
                return self.succeed_from(now, old, ranked);
            }
        }
        let Some((addr, expect)) = self.finder.candidates.pop_front() else {
            self.finder.replacing = None;
            if self.finder.from_master {
                // The master's LSNs did not answer; its records of them expire, so ask again
                // after a pause.
                self.set_state(NodeState::NoConnection);
                self.retry_later(now);
            } else {
                self.query_master(now);
            }
            return;
        };
        if expect.is_some() {
            self.ep.connect(now, addr, expect);
        }
        let seq = self.next_seq();
        let join = Join {
            seq,
            local: WireAddr(self.local_addr()),
            prefix_len: self.cfg.local.prefix_len,
            uptime_secs: self.uptime_secs(now),
        };
        // Over a session already up with a node of our LAN, a Join is a round trip of
        // milliseconds: its tries go twice as close together. A claimant that died as it
        // announced its takeover held a cascade's next successor 2 s (turmoil seeds 36, 41).
        // (Without a session, the handshake must finish first: halving that window too led
        // 8 second LSNs instead of 4 in the 20 % loss join sweep.) A former hot standby
        // waited out the notice of every successor ranked before it, so it halves the window
        // even then (turmoil seeds 29, 31, 47: 4.1, 5.2, 5.2 s to 4.1, 3.1, 2.8 s).
        let lan = self.cfg.local.contains(addr.ip());
        let quick = lan && (self.ep.peer_at(addr).is_some() || self.finder.watched);
        let span = if quick { self.cfg.join_timeout / 2 } else { self.cfg.join_timeout };
        self.send(now, addr, Message::Join(join));
        self.set_state(NodeState::Joining);
        let probe = Probe { seq, deadline: now + span, tries: 1 };
        let resend = now + span / JOIN_TRIES;
        self.finder.join = Some(JoinAttempt { addr, expect, probe, join, sent: now, resend, span });
    }

    /// Our Join or LsnQuery was answered with an Ack. Returns false if the Ack was not ours.
    pub(super) fn find_ack(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        from: SocketAddr,
        seq: u32,
    ) -> bool {
        if let Some(JoinAttempt { addr, probe, sent, .. }) = self.finder.join {
            if self.finder.join.is_some_and(|j| j.answered_by(peer, from, seq)) {
                self.finder.join = None;
                if probe.tries == 1 {
                    // A repeated Join's answer may be to either copy: no sample.
                    self.lsn_answered(now, sent);
                }
                self.finder.candidates.clear();
                self.finder.successor_waits = 0;
                self.finder.failed.clear();
                self.backoff = Duration::from_millis(500);
                // (`become_child` takes `finder.replacing`.)
                self.become_child(now, peer, addr);
                self.requests.push_back(DiscoveryRequest::Remember(Candidate {
                    addr,
                    id: Some(peer),
                    source: Source::Cache,
                }));
                return true;
            }
        }
        if self.finder.query.is_some_and(|p| p.seq == seq) && peer == self.master_id() {
            // An empty answer to LsnQuery: the subnet has no LSN; become it.
            self.query_answered(now);
            self.finder.query = None;
            self.backoff = Duration::from_millis(500);
            self.become_lsn(now, None, Vec::new());
            return true;
        }
        false
    }

    /// A NodeList answering our query or redirecting our Join. Returns false if not ours.
    pub(super) fn find_node_list(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        from: SocketAddr,
        list: &NodeList,
    ) -> bool {
        if self.finder.query.is_some_and(|p| p.seq == list.seq) && peer == self.master_id() {
            self.query_answered(now);
            self.finder.query = None;
            self.finder.candidates = list.nodes.iter().map(|c| (c.addr.0, Some(c.id))).collect();
            self.finder.from_master = true;
            self.try_next_candidate(now);
            return true;
        }
        if self.finder.join.is_some_and(|j| j.answered_by(peer, from, list.seq)) {
            let me = self.node_id();
            let dead = self.finder.replacing.as_ref().map(|(old, _)| *old);
            if dead.is_some()
                && list.nodes.iter().all(|c| Some(c.id) == dead)
                && self.finder.successor_waits < SUCCESSOR_WAITS
            {
                // A successor still following the LSN that died: it has not noticed yet and
                // will take over shortly. Ask it again then, rather than passing it by (two
                // LSNs would then settle it).
                self.finder.successor_waits += 1;
                self.finder.join = None;
                let mut again: Vec<Contact> = vec![Contact { id: peer, addr: WireAddr(from) }];
                let rest = self
                    .finder
                    .candidates
                    .drain(..)
                    .filter_map(|(addr, id)| id.map(|id| Contact { id, addr: WireAddr(addr) }));
                again.extend(rest);
                self.finder.takeover = Some((now + self.cfg.takeover_wait / 2, again));
                return true;
            }
            // Not an LSN: it named its LSN; try that first (unless it is the one that died, or
            // one that did not answer us).
            let failed = &self.finder.failed;
            let named: Vec<Contact> = (list.nodes.iter())
                .filter(|c| c.id != me && Some(c.id) != dead && !failed.contains(&c.id))
                .copied()
                .collect();
            for c in named.iter().rev() {
                self.finder.candidates.push_front((c.addr.0, Some(c.id)));
            }
            self.try_next_candidate(now);
            return true;
        }
        false
    }

    /// Joins `lsn` at once (a takeover or a yield named it).
    pub(super) fn join_now(&mut self, now: Timestamp, lsn: Contact) {
        self.finder.takeover = None;
        self.finder.query = None;
        self.finder.candidates.clear();
        self.finder.candidates.push_back((lsn.addr.0, Some(lsn.id)));
        self.finder.from_master = false;
        self.try_next_candidate(now);
    }

    /// A session the search needed could not be opened.
    pub(super) fn find_unreachable(&mut self, now: Timestamp, addr: SocketAddr) {
        if self.finder.join.is_some_and(|j| j.addr == addr) {
            self.try_next_candidate(now);
        } else if self.finder.query.is_some() && addr == self.cfg.master {
            self.finder.query = None;
            self.events.push_back(NodeEvent::MasterUnreachable);
            self.set_state(NodeState::NoConnection);
            self.retry_later(now);
        }
    }

    pub(super) fn find_timers(&mut self, now: Timestamp) {
        if let Some((deadline, _)) = &self.finder.takeover {
            if now >= *deadline {
                // Nobody announced a takeover: join the best-ranked survivor ourselves.
                let (_, ranked) = self.finder.takeover.take().unwrap_or_default();
                self.finder.candidates = ranked.iter().map(|c| (c.addr.0, Some(c.id))).collect();
                self.finder.from_master = false;
                self.try_next_candidate(now);
            }
        }
        if self.finder.discovering.is_some_and(|t| now >= t) {
            // Discovery did not answer in time: carry on without it.
            self.finder.discovering = None;
            self.query_master(now);
        }
        if let Some(j) = self.finder.join.filter(|j| now >= j.probe.deadline) {
            // A candidate heard from within the last second is alive (its handshake was slow
            // under loss): it gets the rest of its tries. A dead one is left, as before.
            let heard = self.ep.peer_at(j.addr).and_then(|id| self.ep.last_heard(&id));
            let alive = heard.is_some_and(|t| now < t + self.cfg.join_timeout / 2);
            if alive && j.probe.tries < JOIN_TRIES {
                let step = j.span / JOIN_TRIES;
                if let Some(a) = self.finder.join.as_mut() {
                    a.probe.tries += 1;
                    a.probe.deadline = now + step;
                    a.resend = now + step;
                }
                self.send(now, j.addr, Message::Join(j.join));
            } else {
                if let Some(id) = j.expect.filter(|_| self.finder.failed.len() < MAX_FAILED) {
                    self.finder.failed.push(id);
                }
                self.try_next_candidate(now);
            }
        } else if let Some(j) = self.finder.join.filter(|j| now >= j.resend) {
            // Repeated only over a session that is up: the candidate is there, and the Join
            // or its answer was lost (`JOIN_TRIES`).
            let last = j.probe.tries + 1 >= JOIN_TRIES;
            let resend = if last { j.probe.deadline } else { now + j.span / JOIN_TRIES };
            let up = self.ep.peer_at(j.addr).is_some();
            if let Some(a) = self.finder.join.as_mut() {
                a.resend = resend;
                if up {
                    a.probe.tries += 1;
                }
            }
            if up {
                self.send(now, j.addr, Message::Join(j.join));
            } else {
                // The handshake is what was lost: its message goes again at the Join's pace,
                // not only at the handshake's backoff (0.5, 1, 2 s), which a join window
                // of 2 s cut short (the 20 % loss join sweep: a second LSN led in 13 of 60
                // seeds without the DHT's early sessions to the LSN).
                self.ep.hasten(j.addr);
            }
        }
        if self.finder.query.is_some_and(|p| now >= p.deadline) {
            self.finder.query = None;
            // The master may have restarted and forgotten our session (a node that enrolled
            // just before the master died asks over it): the next try opens a fresh one.
            let master = self.ep.trust().network().master_id();
            self.ep.close(&master);
            self.events.push_back(NodeEvent::MasterUnreachable);
            self.set_state(NodeState::NoConnection);
            self.retry_later(now);
        }
    }

    pub(super) fn find_deadline(&self) -> Option<Timestamp> {
        [
            self.finder.discovering,
            self.finder.join.map(|j| j.probe.deadline.min(j.resend)),
            self.finder.query.map(|p| p.deadline),
            self.finder.takeover.as_ref().map(|(t, _)| *t),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
