//! HasLsn: life under an LSN. Liveness of the LSN (a slow probe after silence), the hot
//! standby (fast heartbeats; takes over when the LSN dies), failover, and delivery of the
//! master's messages.

use std::net::SocketAddr;

use super::{lsn::STANDBYS, Node, NodeEvent, NodeState, Probe};
use crate::{
    secure::{open_envelope, EnvelopeError},
    wire::{self, Ack, Contact, ErrorCode, Forward, Message, NodeList, Part, Ping, Pong, WireAddr},
    NodeId, Timestamp,
};

/// How many takeover turns a child that noticed its LSN's death itself spreads its own join
/// over (about a subnet's children).
const TAKEOVER_TURNS: u32 = 50;

/// The link from a child to its LSN.
pub(crate) struct LsnLink {
    pub(crate) id: NodeId,
    pub(crate) addr: SocketAddr,
    last_heard: Timestamp,
    pub(super) probe: Option<Probe>,
    /// The LSN's children, best-ranked first (the first [`STANDBYS`] are its hot standbys).
    neighbours: Vec<Contact>,
    /// Our rank among the hot standbys (the LSN heartbeats us), if we are one: the first
    /// succeeds the LSN at once, the next only if the ones before did not.
    standby: Option<usize>,
    /// A standby's confirmation of a suspected death: pings sent, next one due.
    confirm: Option<(u32, Timestamp)>,
    /// A node that announced it replaced this LSN, followed only if the LSN fails its
    /// probe (`takeover.rs`).
    pub(super) claimant: Option<Contact>,
    /// The dead LSN this one just replaced, with its ranking, while the takeover may still be
    /// under way (until the deadline): should this one die too, its successor takes over the
    /// children of both, so those it had not reached yet are not left behind.
    pub(super) predecessor: Option<(NodeId, Vec<Contact>, Timestamp)>,
    /// The probe under way is a quick one, as for a takeover claim: a sibling's Join said it
    /// takes the LSN for dead (`sibling_joined`).
    quick: bool,
    /// Our `standby` rank and `neighbours` come from the ranking of the LSN this one just
    /// replaced (`predecessor`), not from this one, whose own list has not come yet.
    provisional: bool,
}

impl LsnLink {
    pub(crate) fn contact(&self) -> Contact {
        Contact { id: self.id, addr: WireAddr(self.addr) }
    }

    /// The children our LSN ranked first: its hot standbys, its successors in that order.
    pub(super) fn successors(&self) -> impl Iterator<Item = &Contact> + '_ {
        self.neighbours.iter().filter(|c| c.id != self.id).take(STANDBYS)
    }

    /// Whether a new LSN may announce that it replaced `old`, for us: our LSN, a child it
    /// ranked in its list to us (which took over from it and died: the list may be stale, so
    /// not only its hot standbys), or the LSN ours replaced moments ago.
    pub(super) fn may_be_replaced_as(&self, old: &NodeId) -> bool {
        self.id == *old
            || self.neighbours.iter().any(|c| c.id == *old)
            || self.predecessor.as_ref().is_some_and(|(id, _, _)| id == old)
    }

    /// Whether our LSN ranked `id` among its hot standbys.
    pub(super) fn is_successor(&self, id: &NodeId) -> bool {
        self.successors().any(|c| c.id == *id)
    }
}

impl Node {
    pub(super) fn become_child(&mut self, now: Timestamp, lsn: NodeId, addr: SocketAddr) {
        // Joining a successor of the LSN we lost: remember that one for a takeover's span.
        let span = self.cfg.takeover_wait + self.cfg.takeover_pace * TAKEOVER_TURNS;
        self.finder.predecessor = None;
        self.finder.watched = false;
        let predecessor = self
            .finder
            .replacing
            .take()
            .filter(|(old, _)| *old != lsn)
            .map(|(old, ranked)| (old, ranked, now + span));
        // A new LSN may die before its own ranking names anyone (it took over moments ago),
        // and then only our 90 s silence timer would tell (two-crash sweep, seed 149: three
        // children had joined it, the rest still followed the first dead LSN, and the master
        // knew of neither death). So until its list comes, its predecessor's ranking stands
        // in: the two ranked first after it watch it as its hot standbys would, and the first
        // takes over both LSNs' children should it fall silent (`lsn_dead`).
        let me = self.node_id();
        let neighbours: Vec<Contact> = predecessor
            .as_ref()
            .map(|(old, ranked, _)| ranked.iter().filter(|c| c.id != *old).copied().collect())
            .unwrap_or_default();
        let standby =
            neighbours.iter().filter(|c| c.id != lsn).take(STANDBYS).position(|c| c.id == me);
        self.lsn = Some(LsnLink {
            id: lsn,
            addr,
            last_heard: now,
            probe: None,
            provisional: !neighbours.is_empty(),
            neighbours,
            standby,
            confirm: None,
            claimant: None,
            predecessor,
            quick: false,
        });
        self.last_lsn = Some(lsn);
        self.set_state(NodeState::HasLsn);
        self.events.push_back(NodeEvent::JoinedLsn { lsn });
    }

    pub(super) fn heard_from_lsn(&mut self, now: Timestamp) {
        if let Some(link) = &mut self.lsn {
            link.last_heard = now;
            link.probe = None;
            link.confirm = None;
            link.quick = false;
            if let Some(c) = link.claimant.take() {
                self.refusals.takeover_disproved += 1;
                tracing::debug!(lsn = ?link.id, claimant = ?c.id, "LSN answered: takeover claim dropped");
            }
        }
    }

    pub(super) fn on_pong(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, pong: Pong) {
        if self.lsn.as_ref().is_some_and(|l| l.id == peer) {
            // A pong naming another LSN means ours is no longer one: follow the redirect.
            if let Some(other) = pong.lsn.filter(|c| c.id != peer) {
                self.lsn = None;
                self.events.push_back(NodeEvent::LsnLost { lsn: peer });
                self.join_now(now, other);
            }
            return;
        }
        if self.on_replaced_pong(now, peer, addr, pong.lsn) {
            return;
        }
        self.uplink_pong(now, peer, addr, pong);
        self.on_child_pong(now, peer);
    }

    /// The LSN's neighbour list.
    pub(super) fn on_neighbours(&mut self, now: Timestamp, list: NodeList) {
        let me = self.node_id();
        let Some(link) = &mut self.lsn else { return };
        let standby = list.nodes.iter().take(STANDBYS).position(|c| c.id == me);
        if standby.is_some() && link.standby.is_none() {
            // Heartbeats start now; do not count the time before against the LSN.
            link.last_heard = now;
        }
        link.standby = standby;
        link.neighbours = list.nodes;
        link.provisional = false;
    }

    /// A heartbeat (`Uptime`) from our LSN. The LSN heartbeats only the child its last ranking
    /// push named first, so this makes us the hot standby even if that list was lost: it goes
    /// out once, unacknowledged, and is not repeated until the ranking changes again. Without
    /// this, a lost list leaves the subnet with no standby at all (the LSN heartbeats a child
    /// that does not watch it), and a crash is then noticed only by the children's
    /// `lsn_silence`. A standby whose list missed some children adopts those the master names
    /// (`adopt.rs`). Returns false if `peer` is not our LSN.
    pub(super) fn on_lsn_heartbeat(&mut self, now: Timestamp, peer: NodeId) -> bool {
        let Some(link) = self.lsn.as_mut().filter(|l| l.id == peer) else { return false };
        if link.standby.is_none() {
            // The list that named us was lost: our rank is unknown, so act as the first (a
            // second successor taking over too settles with the first as rivals do).
            tracing::debug!(node = ?self.ep.node_id(), lsn = ?peer, "heartbeat: we are the standby");
            link.standby = Some(0);
            link.last_heard = now;
        }
        link.provisional = false;
        true
    }

    /// Test hook: as if the ranking push that named us the standby had been lost, we hold
    /// `list` (an older one, naming another child first) and do not know we are the standby.
    #[cfg(test)]
    pub(super) fn lose_standby_list(&mut self, list: Vec<Contact>) {
        if let Some(link) = &mut self.lsn {
            link.standby = None;
            link.neighbours = list;
        }
    }

    pub(super) fn on_part(&mut self, now: Timestamp, peer: NodeId, part: Part) {
        let me = self.node_id();
        if part.better_lsn.is_some_and(|c| c.id == me) {
            // Our LSN leaves and names us, its standby: take over as after its death.
            if let Some(link) = self.lsn.take_if(|l| l.id == peer) {
                self.ep.close(&link.id);
                self.events.push_back(NodeEvent::LsnLost { lsn: link.id });
                return self.succeed(now, link);
            }
        }
        if self.lsn.as_ref().is_some_and(|l| l.id == peer) {
            self.lsn = None;
            self.events.push_back(NodeEvent::LsnLost { lsn: peer });
            match part.better_lsn.filter(|c| c.id != self.node_id()) {
                Some(better) => self.join_now(now, better),
                None => self.start_looking(now),
            }
            return;
        }
        self.on_child_part(now, peer, part.reason);
    }

    /// The master's message, forwarded by our LSN (or the master itself).
    pub(super) fn deliver(&mut self, now: Timestamp, addr: SocketAddr, f: Forward) {
        let network = *self.ep.trust().network();
        let opened =
            open_envelope(self.ep.identity(), &network, &f.envelope, &network.verifying_key())
                // Only after the signature checked out: a forged stamp must not fill the window.
                .and_then(|o| self.envelopes.accept(now, o.stamp).map(|()| o.payload));
        if let Err(EnvelopeError::Replayed(_)) = opened {
            // A copy of one we took: the master sends it again when our Ack was lost
            // (`master/delivery.rs`). Acknowledged again, taken once. (A relay replaying it
            // gains an Ack and nothing else.)
            return self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
        }
        let opened =
            opened.map_err(|e| e.to_string()).and_then(|bytes| match wire::decode(&bytes) {
                Ok(m @ (Message::App(_) | Message::Request(_))) => Ok(m),
                Ok(_) => Err("envelope carries neither a message nor a request".to_owned()),
                Err(e) => Err(e.to_string()),
            });
        match opened {
            Ok(Message::Request(request)) => {
                self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
                self.on_request(now, *request);
            }
            Ok(Message::App(app)) => {
                self.send(now, addr, Message::Ack(Ack { seq: f.seq }));
                // Id 0 with no data is the master's presence poll: acknowledged, not reported.
                if app.id != 0 || !app.data.is_empty() {
                    self.events.push_back(NodeEvent::Message { id: app.id, data: app.data });
                }
            }
            Ok(_) => {}
            Err(detail) => self.reply_error(now, addr, f.seq, ErrorCode::BAD_REQUEST, &detail),
        }
    }

    /// The LSN is gone: the standby takes over; others wait for its announcement.
    pub(super) fn lsn_dead(&mut self, now: Timestamp) {
        let Some(link) = self.lsn.take() else { return };
        self.ep.close(&link.id);
        self.events.push_back(NodeEvent::LsnLost { lsn: link.id });
        if let Some(claimant) = link.claimant {
            // It announced the takeover and the LSN has now failed its probe: follow it.
            return self.join_now(now, claimant);
        }
        let me = self.node_id();
        if link.standby == Some(0) {
            // Heartbeats made us the standby even if our list names another first (see
            // `on_lsn_heartbeat`).
            return self.succeed(now, link);
        }
        let survivors: Vec<Contact> =
            link.neighbours.iter().copied().filter(|c| c.id != link.id).collect();
        let wait = match (link.standby, survivors.first()) {
            (_, None) => return self.start_looking(now),
            (None, Some(first)) if first.id == me => return self.succeed(now, link),
            // A later hot standby watched the LSN as closely as the first, who announces its
            // takeover to us first (`adopt.rs`): wait that long for it, per rank before ours;
            // then join it, or succeed the LSN ourselves when it does not answer either.
            (Some(rank), _) => self.cfg.takeover_wait * rank as u32,
            (None, Some(_)) => {
                // The standby announces its takeover one child at a time (`adopt.rs`): wait
                // for our turn, spread by id over a subnet's worth of turns, so children that
                // noticed the silence together do not all join it in the same second.
                let phase = f64::from(u16::from_be_bytes([me.as_bytes()[2], me.as_bytes()[3]]));
                let turns = self.cfg.takeover_pace * TAKEOVER_TURNS;
                self.cfg.takeover_wait + turns.mul_f64(phase / 65_536.0)
            }
        };
        self.set_state(NodeState::Joining);
        self.finder.watched = link.standby.is_some();
        // In rank order, ourselves included: reaching our own place in the ranking, every
        // successor before us failed to answer, and we take over (`find.rs`).
        self.finder.replacing = Some((link.id, survivors.clone()));
        self.finder.predecessor = link.predecessor;
        self.finder.successor_waits = 0;
        self.finder.takeover = Some((now + wait, survivors));
    }

    /// Becomes the LSN in place of the one `link` led (dead, or leaving and naming us), and
    /// adopts the children it ranked.
    fn succeed(&mut self, now: Timestamp, link: LsnLink) {
        self.finder.predecessor = link.predecessor;
        let (old, addr) = (link.id, link.addr);
        self.succeed_from(now, old, link.neighbours);
        self.recheck_replaced(now, addr);
    }

    /// Becomes the LSN in place of `old`, adopting `ranked` (its children, best first).
    pub(super) fn succeed_from(&mut self, now: Timestamp, old: NodeId, ranked: Vec<Contact>) {
        let me = self.node_id();
        let children: Vec<Contact> =
            ranked.into_iter().filter(|c| c.id != old && c.id != me).collect();
        self.finder.replacing = None;
        let predecessor = self.finder.predecessor.take();
        self.become_lsn(now, Some(old), children);
        if let Some((first, ranked, _)) = predecessor.filter(|p| now < p.2) {
            // `old` died in the middle of its own takeover: finish that one too (the children
            // it had not reached are still with the first LSN, and the master may still count
            // them there).
            let rest: Vec<Contact> = ranked.into_iter().filter(|c| c.id != old).collect();
            self.adopt(now, first, rest);
            if let Some(role) = self.role.as_mut() {
                role.uplink.replaced.push(first);
            }
        }
    }

    /// A node of our network sent us a Join while we follow an LSN: it tried its LSN's ranked
    /// successors in turn and reached us, so it takes our LSN for dead, and so may we be its
    /// successor. A hot standby watches the LSN already; anyone else checks it now, as quickly
    /// as a takeover claim (`takeover.rs`), and if it fails, succeeds it in its turn
    /// (`lsn_dead`). Before, a third-ranked child answered every such Join that it followed
    /// the dead LSN until its 90 s silence timer ran out (cascade sweep, seed 229). Costs one
    /// probe at most at a time; any word from the LSN ends it.
    pub(super) fn sibling_joined(&mut self, now: Timestamp, addr: SocketAddr) {
        if !self.cfg.local.contains(addr.ip()) {
            return;
        }
        let seq = self.next_seq();
        let deadline = now + self.cfg.probe_timeout / super::takeover::VERIFY_SPEEDUP;
        let Some(link) = self.lsn.as_mut() else { return };
        if link.standby.is_some() || link.probe.is_some() || link.confirm.is_some() {
            return;
        }
        link.quick = true;
        link.probe = Some(Probe { seq, deadline, tries: 1 });
        let lsn = link.addr;
        self.send(now, lsn, Message::Ping(Ping { seq }));
    }

    /// The successors our LSN named and its ranking, kept when we leave it for a claimant
    /// (`takeover.rs`): if the claimant does not answer our Join, the next in its ranking is
    /// tried, down to ourselves. Not only its hot standbys: when the claimant and both died
    /// (cascade sweep, seed 910), the third in line asked the master, which still listed the
    /// dead, and led a subnet of nobody while the children waited out their silence timer.
    pub(super) fn follow_claimant(&mut self, now: Timestamp, link: LsnLink, claimant: Contact) {
        let me = self.node_id();
        let mut fallbacks = Vec::new();
        for c in link.neighbours.iter().filter(|c| c.id != link.id && c.id != claimant.id) {
            fallbacks.push(*c);
            if c.id == me {
                break;
            }
        }
        self.finder.replacing = Some((link.id, link.neighbours));
        self.join_now(now, claimant);
        self.finder.candidates.extend(fallbacks.into_iter().map(|c| (c.addr.0, Some(c.id))));
    }

    pub(super) fn child_timers(&mut self, now: Timestamp) {
        let cfg = self.cfg.clone();
        let Some(link) = &mut self.lsn else { return };
        let addr = link.addr;
        if link.provisional && link.predecessor.as_ref().is_none_or(|p| now >= p.2) {
            // Its takeover is over and its list never reached us: it did not rank us first,
            // or it would heartbeat us (`on_lsn_heartbeat`). Stop watching so closely.
            link.provisional = false;
            link.standby = None;
            link.confirm = None;
        }
        if link.standby.is_some() {
            let (pings, gap) = cfg.standby_confirm;
            match link.confirm {
                Some((sent, at)) if now >= at => {
                    if sent >= pings {
                        return self.lsn_dead(now);
                    }
                    link.confirm = Some((sent + 1, now + gap));
                }
                None if now >= link.last_heard + cfg.standby_dead_after => {
                    link.confirm = Some((1, now + gap));
                }
                _ => return,
            }
            let seq = self.next_seq();
            self.send(now, addr, Message::Ping(Ping { seq }));
            return;
        }
        match link.probe {
            Some(p) if now >= p.deadline => {
                if p.tries > cfg.probe_retries {
                    return self.lsn_dead(now);
                }
                // A takeover claim is checked quickly (`takeover.rs`).
                let gap = if link.claimant.is_some() || link.quick {
                    cfg.probe_timeout / super::takeover::VERIFY_SPEEDUP
                } else {
                    cfg.probe_timeout
                };
                link.probe = Some(Probe { deadline: now + gap, tries: p.tries + 1, ..p });
                let seq = p.seq;
                self.send(now, addr, Message::Ping(Ping { seq }));
            }
            None if now >= link.last_heard + cfg.lsn_silence => {
                let seq = self.next_seq();
                if let Some(link) = &mut self.lsn {
                    link.probe = Some(Probe { seq, deadline: now + cfg.probe_timeout, tries: 1 });
                }
                self.send(now, addr, Message::Ping(Ping { seq }));
            }
            _ => {}
        }
    }

    pub(super) fn child_deadline(&self) -> Option<Timestamp> {
        let link = self.lsn.as_ref()?;
        Some(match (link.standby, link.confirm, link.probe) {
            (Some(_), Some((_, at)), _) => at,
            (Some(_), None, _) => link.last_heard + self.cfg.standby_dead_after,
            (None, _, Some(p)) => p.deadline,
            (None, _, None) => link.last_heard + self.cfg.lsn_silence,
        })
    }
}
