//! Introductions (hole punching), the node's side (issue 16; the introducer's side is
//! `overlay/master/introduce.rs`).
//!
//! * **Asking.** A DHT request to a contact we have no session with starts a dial. If that
//!   dial has not produced a session after [`OverlayConfig::introduce_after`], the node asks
//!   the master to introduce it to the contact ([`Introduce`]). Failed asks cool down for
//!   [`COOLDOWN`] per peer.
//! * **Being introduced.** An [`Introduction`] from the master (or relayed by our LSN, for
//!   a child) names a peer and its addresses: the public one the introducer observed and the
//!   local one. We dial them all at once ([`Endpoint::punch`](crate::Endpoint::punch)); the
//!   peer dials us at the same moment, so each side's NAT has a mapping towards the other
//!   when the other's packet arrives. Whichever handshake completes first carries the
//!   session; the others are dropped and what waited on them moves onto it. With `answer`
//!   set we also check in with the master directly ([`Introduced`]), so it observes our
//!   current public address for the asker. We then punch ahead of the asker, so our first
//!   copies go with a low TTL ([`Endpoint::punch_ahead`](crate::Endpoint::punch_ahead)):
//!   they open our NAT and die before the asker's; a Linux NAT that saw our packet before
//!   its host sent to us would hold that port, and the asker's flow to us would leave from
//!   another one, which our NAT filters.
//! * **Relaying.** An LSN passes an introduction from the master on to the child it names.
//!
//! Authorization: introductions only from the master or, for its own child, our LSN; relays
//! only of the master's introductions to our own children (docs/AUTHORIZATION.md).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use super::{Node, NodeState};
use crate::{
    wire::{
        Introduce, Introduced, Introduction, Mapping, Message, MAX_INTRO_ADDRS, MAX_PREDICTED_PORTS,
    },
    NodeId, Timestamp,
};

/// How long an asked introduction, or a received one, may take to produce a session.
pub const INTRO_TIMEOUT: Duration = Duration::from_secs(5);
/// An asked introduction with no session yet is asked again after this, then after twice
/// as long each time (0.7, 2.1, 4.9 s within [`INTRO_TIMEOUT`]): one lost datagram among
/// the introduction's five (ask, introduction to the target and on through its LSN,
/// check-in, introduction back) must not cost the pair its session. The master answers a
/// repeated ask with the introduction it has pending for the pair, so the asks cost no more
/// of its bounds.
pub const INTRO_RETRY: Duration = Duration::from_millis(700);
/// After an introduction that produced no session, none is asked for that peer this long.
pub const COOLDOWN: Duration = Duration::from_secs(30);
/// Dials watched for an introduction at once (more are left to fail as before).
pub const MAX_WATCHED: usize = 64;
/// Introductions asked and not settled at once.
pub const MAX_ASKED: usize = 16;
/// Introductions received and not settled at once (more are dropped).
pub const MAX_INTRODUCED: usize = 32;
/// Peers in cooldown at once (the oldest are forgotten first).
pub const MAX_COOLDOWN: usize = 256;
/// Port-prediction copies of message 1 (`Introduction::predict`) a node sends per
/// [`PREDICT_WINDOW`], at most: four introductions' worth. Beyond it an introduction is
/// punched at its addresses only, and the relay takes the pairs prediction would have opened.
pub const PREDICT_BUDGET: u32 = 4 * MAX_PREDICTED_PORTS as u32;
/// The window of [`PREDICT_BUDGET`].
pub const PREDICT_WINDOW: Duration = Duration::from_secs(60);

/// What the node's introductions did (for tests and the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntroStats {
    /// Introductions asked of the master.
    pub asked: u64,
    /// Of those, followed by a session with the peer in time.
    pub succeeded: u64,
    /// Of those, that produced no session in time.
    pub failed: u64,
    /// Introductions received (we were told to dial).
    pub introduced: u64,
    /// Introductions passed on to a child (as LSN).
    pub relayed: u64,
    /// Port-prediction copies of message 1 sent (`Introduction::predict`).
    pub predicted: u64,
}

#[derive(Clone, Copy, Debug)]
struct Asked {
    seq: u32,
    /// Worth port prediction (`Introduce::predict`).
    predict: bool,
    addr: SocketAddr,
    until: Timestamp,
    /// When to ask again, and the wait after that.
    retry: (Timestamp, Duration),
}

/// The node's introductions in flight.
#[derive(Clone, Debug, Default)]
pub(super) struct Introductions {
    /// Dials that may need an introduction: peer → (address dialled, when to ask, whether
    /// worth port prediction).
    watch: BTreeMap<NodeId, (SocketAddr, Timestamp, bool)>,
    asked: BTreeMap<NodeId, Asked>,
    /// Introductions received: peer → until.
    introduced: BTreeMap<NodeId, Timestamp>,
    cooldown: BTreeMap<NodeId, Timestamp>,
    /// Port-prediction copies sent in the current [`PREDICT_WINDOW`], and when it began.
    predicted: (Timestamp, u32),
    stats: IntroStats,
}

impl Node {
    /// What this node's introductions did so far.
    pub fn intro_stats(&self) -> IntroStats {
        self.intro.stats
    }

    /// Dials `peer` at `addr` (as a DHT request does), with an introduction from the master
    /// if the dial gets no answer (see the module docs): how a bulk transfer to a peer
    /// without a session begins; also for tests and the simulator's reach matrix.
    pub fn reach(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        self.open_to(now, peer, addr);
        self.pump(now);
    }

    /// Opens a session with `peer` at `addr`: the dial, watched for an introduction if it
    /// gets no answer ([`dial_peer`](Self::dial_peer)).
    pub(super) fn open_to(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        self.dial_peer(now, peer, addr, true);
        self.ep.connect(now, addr, Some(peer));
    }

    /// A request is about to go to `peer` at `addr`, where no session stands: opens the
    /// dial, watched for an introduction (see the module docs). Behind a NAT that filters
    /// (or one not yet classified) the dial goes ahead of the introduction, which is asked
    /// at once ([`dial_waits_for_introduction`](Self::dial_waits_for_introduction)).
    /// `predict`: the session is worth port prediction (`Introduce::predict`).
    pub(super) fn dial_peer(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        predict: bool,
    ) {
        if !self.intro_watch(now, peer, addr, predict) {
            return;
        }
        if self.dial_waits_for_introduction() {
            self.ep.connect_ahead(now, addr, Some(peer));
        }
    }

    /// Whether our dials to peers beyond the LAN wait for an introduction: our NAT filters
    /// what we did not send to, or we do not know yet. Such a dial could reach only a peer
    /// that takes unsolicited inbound (the introduction makes it dial us instead), and when
    /// the peer's NAT filters, our packet arriving before the peer has sent to us is worse
    /// than lost: a Linux router keeps it as a flow for 30 s, and the peer's own packets to
    /// us then leave from another port, which our NAT drops (measured, `cli/tests/reach.rs`).
    pub fn dial_waits_for_introduction(&self) -> bool {
        let class = self.nat_class();
        class.mapping != Mapping::Public && class.inbound != Some(true)
    }

    /// A request is about to go to `peer` at `addr`: if that starts a dial, watch it (asked
    /// after [`OverlayConfig::introduce_after`], or at once when
    /// [`dial_waits_for_introduction`](Self::dial_waits_for_introduction)). Returns whether
    /// it is watched.
    pub(super) fn intro_watch(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        predict: bool,
    ) -> bool {
        let Some(after) = self.cfg.introduce_after else { return false };
        if predict {
            // An application now waits for a session a DHT request started.
            let i = &mut self.intro;
            if let Some(w) = i.watch.get_mut(&peer) {
                w.2 = true;
            }
            if let Some(a) = i.asked.get_mut(&peer) {
                a.predict = true;
            }
        }
        let i = &self.intro;
        if peer == self.master_id()
            || addr == self.cfg.master
            || self.ep.peer_at(addr).is_some()
            || self.ep.is_connected(&peer)
            || self.cfg.local.contains(addr.ip())
            || i.watch.contains_key(&peer)
            || i.asked.contains_key(&peer)
            || i.watch.len() >= MAX_WATCHED
        {
            return false;
        }
        let after = if self.dial_waits_for_introduction() { Duration::ZERO } else { after };
        self.intro.watch.insert(peer, (addr, now + after, predict));
        true
    }

    pub(super) fn intro_deadline(&self) -> Option<Timestamp> {
        let i = &self.intro;
        let watch = i.watch.values().map(|(_, t, _)| *t);
        let asked = i.asked.values().map(|a| a.until.min(a.retry.0));
        watch.chain(asked).chain(i.introduced.values().copied()).min()
    }

    pub(super) fn intro_timers(&mut self, now: Timestamp) {
        let due: Vec<(NodeId, SocketAddr, bool)> = self
            .intro
            .watch
            .iter()
            .filter(|(_, (_, t, _))| *t <= now)
            .map(|(p, (a, _, predict))| (*p, *a, *predict))
            .collect();
        let joined = self.intro_joined();
        let wait = self.cfg.introduce_after.unwrap_or(INTRO_RETRY);
        for (peer, addr, predict) in due {
            if !joined && !self.ep.is_connected(&peer) {
                // A dial from before we joined (the DHT starts at once): the master
                // introduces only members, so ask once we are one.
                self.intro.watch.insert(peer, (addr, now + wait, predict));
                continue;
            }
            self.intro.watch.remove(&peer);
            self.intro.cooldown.retain(|_, t| *t > now);
            if self.ep.is_connected(&peer) || !self.intro_may_ask(now, &peer) {
                self.ep.dial_in_full(&peer);
                continue;
            }
            self.intro_ask(now, peer, addr, predict);
        }
        let failed: Vec<NodeId> =
            self.intro.asked.iter().filter(|(_, a)| a.until <= now).map(|(p, _)| *p).collect();
        for peer in failed {
            self.intro_failed(now, peer);
        }
        let mut again = Vec::new();
        for (peer, a) in self.intro.asked.iter_mut().filter(|(_, a)| a.retry.0 <= now) {
            a.retry = (now + a.retry.1, a.retry.1 * 2);
            again.push(Introduce { seq: a.seq, target: *peer, predict: a.predict });
        }
        for ask in again {
            if !self.ep.is_connected(&ask.target) {
                let master = self.cfg.master;
                self.send(now, master, Message::Introduce(ask));
            }
        }
        self.intro.introduced.retain(|_, t| *t > now);
    }

    /// Asks the master to introduce us to `peer` (last dialled at `addr`); `predict`: worth
    /// port prediction.
    pub(super) fn intro_ask(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        predict: bool,
    ) {
        let seq = self.next_seq();
        let retry = (now + INTRO_RETRY, INTRO_RETRY * 2);
        let until = now + INTRO_TIMEOUT;
        self.intro.asked.insert(peer, Asked { seq, predict, addr, until, retry });
        self.intro.stats.asked += 1;
        let master = self.cfg.master;
        self.send(now, master, Message::Introduce(Introduce { seq, target: peer, predict }));
    }

    /// Whether we are a member the master introduces (joined to an LSN, or one).
    fn intro_joined(&self) -> bool {
        matches!(self.state, NodeState::HasLsn | NodeState::IsLsn)
    }

    /// Whether an introduction for `peer` may be asked now (joined, none running for it, not
    /// cooling down after a failed one, room among those asked).
    pub(super) fn intro_may_ask(&self, now: Timestamp, peer: &NodeId) -> bool {
        let i = &self.intro;
        self.intro_joined()
            && !i.asked.contains_key(peer)
            && i.cooldown.get(peer).is_none_or(|t| *t <= now)
            && i.asked.len() < MAX_ASKED
    }

    fn intro_failed(&mut self, now: Timestamp, peer: NodeId) {
        if self.intro.asked.remove(&peer).is_none() {
            return;
        }
        self.ep.dial_in_full(&peer);
        self.intro.stats.failed += 1;
        if self.intro.cooldown.len() >= MAX_COOLDOWN {
            if let Some((&oldest, _)) = self.intro.cooldown.iter().min_by_key(|(_, t)| **t) {
                self.intro.cooldown.remove(&oldest);
            }
        }
        self.intro.cooldown.insert(peer, now + COOLDOWN);
    }

    /// The master refused an introduction we asked for (target absent, too many asked):
    /// returns whether `seq` was one.
    pub(super) fn intro_refused(&mut self, now: Timestamp, peer: NodeId, seq: u32) -> bool {
        if peer != self.master_id() {
            return false;
        }
        let Some(target) = self.intro.asked.iter().find(|(_, a)| a.seq == seq).map(|(p, _)| *p)
        else {
            return false;
        };
        self.intro_failed(now, target);
        true
    }

    /// A session with `peer` stands: settle the dials an introduction started.
    pub(super) fn intro_connected(&mut self, now: Timestamp, peer: NodeId) {
        let i = &mut self.intro;
        let mut also = Vec::new();
        let watched = i.watch.remove(&peer).map(|(addr, _, _)| also.push(addr)).is_some();
        let asked = i.asked.remove(&peer);
        if let Some(a) = asked {
            also.push(a.addr);
            i.stats.succeeded += 1;
        }
        let introduced = i.introduced.remove(&peer).is_some();
        // Watched too: the session may have come another way (the peer dialled us) while
        // our dial to an address it no longer answers at still holds the requests.
        if watched || asked.is_some() || introduced {
            self.ep.settle_dials(now, peer, &also);
        }
    }

    /// An introduction arrived (see the module docs for who may send one).
    pub(super) fn on_introduction(&mut self, now: Timestamp, from: NodeId, intro: Introduction) {
        let master = self.master_id();
        if intro.to != self.node_id() {
            // As LSN, pass the master's introduction on to the child it names.
            let child = (from == master)
                .then(|| self.role.as_ref().and_then(|r| r.children.get(&intro.to)))
                .flatten()
                .map(|c| c.addr);
            match child {
                Some(addr) => {
                    self.intro.stats.relayed += 1;
                    self.send(now, addr, Message::Introduction(Box::new(intro)));
                }
                None => {
                    tracing::debug!(?from, to = ?intro.to, "introduction not ours to relay");
                    self.refusals.introduction += 1;
                }
            }
            return;
        }
        let from_lsn =
            self.state == NodeState::HasLsn && self.lsn.as_ref().is_some_and(|l| l.id == from);
        if from != master && !from_lsn {
            tracing::debug!(?from, "introduction not from the introducer: refused");
            self.refusals.introduction += 1;
            return;
        }
        let peer = intro.peer;
        if peer == self.node_id() || peer == master {
            return;
        }
        let i = &mut self.intro;
        if !i.introduced.contains_key(&peer) && i.introduced.len() >= MAX_INTRODUCED {
            tracing::debug!(?peer, "too many introductions at once: dropped");
            return;
        }
        i.introduced.insert(peer, now + INTRO_TIMEOUT);
        i.stats.introduced += 1;
        let me = [self.cfg.listen, self.local_addr()];
        let addrs: Vec<SocketAddr> = intro
            .addrs
            .iter()
            .take(MAX_INTRO_ADDRS)
            .map(|a| a.0)
            .filter(|a| !me.contains(a))
            .collect();
        if let Some(gsn) = intro.relay {
            self.relay_wait(now, peer, gsn);
        }
        // Our session with the peer may run through a GSN: this is then a try at a direct
        // path beside it (`gsn.rs`, upgrades).
        let beside = self.relayed_via(&peer).is_some();
        // We punch ahead of the asker (it learns our address from our check-in): open our NAT
        // without arriving at its NAT before it has sent (see `punch_ahead`). When our NAT
        // gives the asker a port of its own, the asker's punch misses us and ours is what must
        // arrive: only the first copy goes low (the asker's copies towards our new port, sent
        // once it has the introduction, must find its NAT before ours; a Linux NAT would
        // otherwise hold that port), the retransmission half a second later in full.
        let ahead = intro.answer;
        if ahead {
            let own_ports = self.nat_class().mapping == Mapping::EndpointDependent;
            let hold = if own_ports { Duration::ZERO } else { crate::endpoint::PUNCH_AHEAD_HOLD };
            self.ep.punch_ahead(now, peer, &addrs, beside, hold);
        } else if beside {
            self.ep.punch_beside(now, peer, &addrs);
        } else {
            self.ep.punch(now, peer, &addrs);
        }
        if let Some(&first) = addrs.first().filter(|_| intro.predict > 0) {
            self.predict_ports(now, peer, first, intro.predict, ahead);
        }
        if intro.answer {
            // After our punch: the asker punches once the master has this, and its packet
            // must not find our NAT before ours has left (a busy host can stall between
            // two sends; measured on real NAT under load, `cli/tests/reach.rs`).
            let to = self.cfg.master;
            self.send(now, to, Message::Introduced(Introduced { nonce: intro.nonce }));
        }
    }

    /// Port prediction (see [`Endpoint::punch_predicted`](crate::Endpoint::punch_predicted)),
    /// within [`PREDICT_BUDGET`].
    fn predict_ports(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        at: SocketAddr,
        asked: u16,
        ahead: bool,
    ) {
        let (since, used) = &mut self.intro.predicted;
        if now.saturating_since(*since) >= PREDICT_WINDOW {
            (*since, *used) = (now, 0);
        }
        let left = PREDICT_BUDGET.saturating_sub(*used);
        let ports = asked.min(MAX_PREDICTED_PORTS).min(left.try_into().unwrap_or(u16::MAX));
        if ports == 0 || self.cfg.local.contains(at.ip()) {
            return;
        }
        let sent = self.ep.punch_predicted(peer, at, ports, ahead) as u32;
        self.intro.predicted.1 += sent;
        self.intro.stats.predicted += u64::from(sent);
    }
}
