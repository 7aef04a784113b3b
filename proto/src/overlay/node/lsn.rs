//! IsLsn: being the subnet's LSN. Children and their liveness, the ranking and neighbour
//! lists, forwarding the master's messages. Settling two LSNs in one subnet is `rival.rs`.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap, HashMap},
    net::SocketAddr,
    time::Duration,
};

use super::{relay::Relay, rival::Rivals, uplink::Uplink, Node, NodeEvent, NodeState};
use crate::{
    wire::{
        Ack, Contact, ErrorCode, Join, Message, NodeList, Part, PartReason, Ping, PresenceChange,
        PresenceKind, Resync, Takeover, Uptime, WireAddr,
    },
    NodeId, Timestamp,
};

/// How many ranked children ordinary children are told about (their fallback successors).
const SHORT_LIST: usize = 3;
/// How many of the best-ranked children are hot standbys: heartbeated, each watching the LSN
/// and ready to succeed it in rank order (`child.rs`). Two, so that the LSN and then its first
/// standby dying before it announced the takeover costs seconds, not the children's
/// `lsn_silence`; one more heartbeat a second at the LSN, on the LAN.
pub(crate) const STANDBYS: usize = 2;
/// Shortest gap between two ranking pushes while adopted children rejoin: every paced rejoin
/// changes the ranking, and a push each time would cost more than the rejoins themselves.
const ADOPTION_PUSH_GAP: Duration = Duration::from_secs(1);
/// How many copies of its Part a yielding LSN sends each child (`resign`).
const YIELD_PART_COPIES: u32 = 3;
/// Most stale short lists (and NAT classes, `nat.rs`) sent with pings in one second: after a
/// takeover every child's list is stale, and pings cluster.
pub(super) const STALE_LISTS_PER_SEC: u32 = 2;

pub(crate) struct Child {
    pub(crate) id: NodeId,
    pub(crate) addr: SocketAddr,
    /// When the child came up, by its own reported uptime but never before we knew it (the
    /// claim is not evidence): earlier ranks higher.
    pub(super) up_since: Timestamp,
    pub(super) last_heard: Timestamp,
    /// Its next ping, or the check of the last one (for an adopted child: its next takeover
    /// announcement).
    pub(crate) next_ping: Timestamp,
    pub(super) pinged_at: Timestamp,
    /// The ping sent at `pinged_at` is unanswered yet. Any message from the child settles it;
    /// else it is checked at `next_ping`, `probe_timeout` later: a missed answer found only
    /// at the next regular ping would let a dead child stay present a whole extra
    /// `child_ping_interval`.
    pub(super) awaiting: bool,
    /// Consecutive unanswered pings (for an adopted child: announcements sent).
    pub(crate) misses: u32,
    /// Where its subnet reaches it (its Join's local address): where reach probes go.
    pub(crate) local: SocketAddr,
    /// Whether it proved that unsolicited UDP reaches it (`reach.rs`): proven children rank
    /// first, so the hot standby, who takes over without asking the master, is eligible.
    pub(crate) reachable: bool,
    /// Whether another child was asked to probe it.
    pub(crate) probed: bool,
    /// Adopted from this dead LSN and not joined yet (`adopt.rs`): announced the takeover at
    /// its turn, kept out of the neighbour lists.
    pub(crate) adopted_from: Option<NodeId>,
    /// For a child adopted at a takeover: its place in the dead LSN's ranking. Reachability
    /// proofs do not travel with the list, so among unproven children this keeps the old order
    /// (which put proven children first) ahead of uptime: a child that cannot receive
    /// unsolicited UDP must not become the standby just because it has been up longest.
    pub(crate) inherited_rank: u32,
    /// The short list changed since it was last sent here: it goes with the next ping (a
    /// push to every child at once would be a burst; these lists only name fallbacks).
    pub(super) list_stale: bool,
    /// Our NAT class is to go with its next ping (`nat.rs`).
    pub(super) class_due: bool,
}

pub(crate) struct LsnRole {
    pub(super) since: Timestamp,
    /// The LSN we took over from, if we did (`rival.rs`: handing its role back).
    pub(super) took_over_from: Option<NodeId>,
    /// After a takeover from our own dead LSN: where it was, how many checks went to it, and
    /// when the next is due (`rival.rs`).
    pub(super) recheck: Option<(SocketAddr, u32, Timestamp)>,
    pub(crate) children: BTreeMap<NodeId, Child>,
    neighbours_due: Option<Timestamp>,
    /// When the ranking was last pushed: changes go out at once, then at most once a batch.
    last_push: Timestamp,
    /// The top of the ranking last pushed to the children.
    pushed_top: Vec<NodeId>,
    /// Our forward seq → the relayed message awaiting its child's answer (`relay.rs`).
    pub(super) forwards: HashMap<u32, Relay>,
    pub(super) rivals: Rivals,
    /// Children reported lost lately (`lost.rs`).
    pub(super) lost: super::lost::Lost,
    /// The children last told they are hot standbys (best first, at most [`STANDBYS`]), and
    /// when the next heartbeat of each is due.
    standbys: Vec<(NodeId, SocketAddr, Timestamp)>,
    pub(crate) uplink: Uplink,
    /// Reach probes asked for: nonce → the child probed.
    pub(crate) probes: HashMap<u64, NodeId>,
    /// The first free turn for announcing a takeover to an adopted child (`adopt.rs`).
    pub(crate) next_turn: Timestamp,
    /// Stale lists sent: in which second, how many.
    pub(super) lists_sent: (u64, u32),
    /// No child's `next_ping` is earlier than this (`None`: no children). The timers and the
    /// deadline read it instead of walking every child after every event; whatever sets a
    /// `next_ping` earlier lowers it with [`LsnRole::ping_at`].
    pub(super) pings_due: Option<Timestamp>,
    /// Every `next_ping` set, with its child, earliest first: the timers take the due ones
    /// from here instead of walking all the children (fifty, scattered in memory, several
    /// times a second). An entry whose child has another `next_ping` by now, or is gone, is
    /// stale and skipped.
    pub(super) ping_queue: BinaryHeap<Reverse<(Timestamp, NodeId)>>,
}

impl LsnRole {
    /// The role of a node that became its subnet's LSN at `now`, in place of `replaced` if
    /// it took over.
    pub(super) fn new(now: Timestamp, replaced: Option<NodeId>) -> Self {
        LsnRole {
            since: now,
            took_over_from: replaced,
            recheck: None,
            children: BTreeMap::new(),
            neighbours_due: None,
            last_push: Timestamp::ZERO,
            pushed_top: Vec::new(),
            forwards: HashMap::new(),
            rivals: Rivals::default(),
            lost: Default::default(),
            standbys: Vec::new(),
            uplink: Uplink::new(now, replaced),
            probes: HashMap::new(),
            next_turn: now,
            lists_sent: (0, 0),
            pings_due: None,
            ping_queue: BinaryHeap::new(),
        }
    }

    /// Children, best-ranked first: those proven reachable first, then longest up, ties by id;
    /// adopted children that have not joined yet come last.
    pub(crate) fn ranked(&self) -> Vec<&Child> {
        let mut v: Vec<&Child> = self.children.values().collect();
        v.sort_by_key(|c| {
            (c.adopted_from.is_some(), !c.reachable, c.inherited_rank, c.up_since, c.id)
        });
        v
    }

    /// The best-ranked joined children (adopted ones cannot stand by: they may be dead).
    fn contacts(&self, n: usize) -> Vec<Contact> {
        self.ranked()
            .into_iter()
            .filter(|c| c.adopted_from.is_none())
            .take(n)
            .map(|c| Contact { id: c.id, addr: WireAddr(c.addr) })
            .collect()
    }

    pub(crate) fn child_ids(&self) -> impl Iterator<Item = &NodeId> {
        self.children.keys()
    }

    /// Schedules a neighbour-list push: at once if none went out within `batch`, else at the
    /// end of the batch (a join storm costs one push per batch, a lone change none of waiting).
    pub(crate) fn ranking_changed(&mut self, now: Timestamp, batch: Duration) {
        let adopting = self.children.values().any(|c| c.adopted_from.is_some());
        let batch = if adopting { batch.max(ADOPTION_PUSH_GAP) } else { batch };
        let due = now.max(self.last_push + batch);
        self.neighbours_due = Some(self.neighbours_due.map_or(due, |d| d.min(due)));
    }

    /// Records which children a list just named first: they expect our heartbeats from now on,
    /// in step (a new one joins the schedule of those already heartbeat), so that all notice
    /// our death at about the same time and the first in rank takes over before the next
    /// gives up waiting for it.
    fn note_standbys(&mut self, now: Timestamp, top: &[Contact]) {
        let old = std::mem::take(&mut self.standbys);
        let beat = old.iter().map(|(_, _, t)| *t).min().unwrap_or(now);
        for c in top.iter().take(STANDBYS) {
            let due = old.iter().find(|(id, _, _)| *id == c.id).map_or(beat, |(_, _, t)| *t);
            self.standbys.push((c.id, c.addr.0, due));
        }
    }
}

impl Node {
    /// (LSN) The current children, ranked best first.
    pub fn children(&self) -> Vec<NodeId> {
        self.role.as_ref().map(|r| r.ranked().iter().map(|c| c.id).collect()).unwrap_or_default()
    }

    /// (LSN) Whether `id` is one of its children now.
    pub fn has_child(&self, id: &NodeId) -> bool {
        self.role.as_ref().is_some_and(|r| r.children.contains_key(id))
    }

    /// Becomes the subnet's LSN. A standby passes the dead LSN and the children it knows.
    pub(super) fn become_lsn(
        &mut self,
        now: Timestamp,
        takeover_from: Option<NodeId>,
        known: Vec<Contact>,
    ) {
        self.lsn = None;
        self.finder.forget_failed();
        self.role = Some(Box::new(LsnRole::new(now, takeover_from)));
        self.set_state(NodeState::IsLsn);
        self.events.push_back(NodeEvent::BecameLsn { takeover_from });
        // Discovery learns we are the LSN (a LAN discovery answers its subnet's queries).
        let me = crate::discovery::Candidate {
            addr: self.local_addr(),
            id: Some(self.node_id()),
            source: crate::discovery::Source::Lan,
        };
        self.requests.push_back(crate::discovery::DiscoveryRequest::Remember(me));
        if let Some(old) = takeover_from {
            // Reported present with the registration; announced one by one (`adopt.rs`).
            self.adopt(now, old, known);
        }
        self.uplink_register(now);
    }

    /// Gives up the LSN role, telling the children where to go.
    pub(super) fn resign(&mut self, now: Timestamp, reason: PartReason, better: Option<Contact>) {
        let Some(role) = self.role.take() else { return };
        let rival = better;
        // Without a better LSN named, the children follow the standby.
        let better = better.or_else(|| role.contacts(1).first().copied());
        // A node that moved keeps running (as a node, or an LSN of its new subnet) and answers
        // its old children's pings: its silence would never tell them, so all are told.
        let only_standby = rival.is_none() && reason != PartReason::Moved;
        // A child that misses a yield's Part follows a node that is no LSN any more, which its
        // old LSN's pings no longer reach (it closed that session), until its `lsn_silence`
        // runs out: sent thrice (a later copy finds it joining and changes nothing). Yields
        // are rare; the other parts go once (a crash-like silence covers them).
        let copies = if reason == PartReason::Yield { YIELD_PART_COPIES } else { 1 };
        for child in role.children.values().filter(|c| c.adopted_from.is_none()) {
            if only_standby && better.is_some_and(|b| b.id != child.id) {
                // Only the standby is told: it takes over and announces it to the others one
                // at a time, as after a crash (`adopt.rs`), rather than all of them joining it
                // in the same second. Should it miss this, our silence tells it.
                continue;
            }
            let better_lsn = better.filter(|b| b.id != child.id).or(better);
            for _ in 0..copies {
                self.send(now, child.addr, Message::Part(Part { reason, better_lsn }));
            }
        }
        if role.uplink.registered() {
            self.send(now, self.cfg.master, Message::Part(Part { reason, better_lsn: better }));
        }
    }

    pub(super) fn on_join(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, join: Join) {
        match self.state {
            NodeState::IsLsn => {}
            NodeState::HasLsn => {
                self.sibling_joined(now, addr);
                let lsn = self.lsn.as_ref().map(|l| l.contact());
                let nodes = lsn.into_iter().collect();
                return self.send(now, addr, Message::NodeList(NodeList { seq: join.seq, nodes }));
            }
            _ => return self.reply_error(now, addr, join.seq, ErrorCode::REFUSED, "not an LSN"),
        }
        let interval = self.cfg.child_ping_interval;
        let batch = self.cfg.neighbour_batch;
        let cert = self.ep.peer_certificate(&peer).cloned();
        let Some(role) = self.role.as_mut() else { return };
        // A claimed uptime counts back only to when we came to know the child: a child claiming
        // years must not make itself the standby ahead of one we have watched longer.
        let known = role.children.get(&peer).map_or(now, |c| c.up_since);
        let up_since = (now - Duration::from_secs(u64::from(join.uptime_secs))).max(known);
        role.lost.forget(&peer);
        let adopted = role.children.get(&peer).is_some_and(|c| c.adopted_from.is_some());
        // A rival LSN the master listed, joining us after it yielded: the master files it as
        // an LSN until we report it, adopted or not.
        let rival = role.rivals.is_named(&peer);
        if adopted {
            role.joined_unannounced(now, &peer, self.cfg.takeover_pace);
        }
        // An adopted child joining is new here too (the event).
        let fresh = adopted || !role.children.contains_key(&peer);
        // Spread the children's pings over the interval by their id, so children that joined
        // together (a morning, a failover) are not all pinged in the same second.
        let phase = u64::from(u16::from_be_bytes([peer.as_bytes()[0], peer.as_bytes()[1]]));
        let first_ping = now + interval.mul_f64(phase as f64 / 65_536.0);
        let (reachable, probed, inherited_rank) = role
            .children
            .get(&peer)
            .map_or((false, false, u32::MAX), |c| (c.reachable, c.probed, c.inherited_rank));
        role.children.insert(
            peer,
            Child {
                id: peer,
                addr,
                up_since,
                last_heard: now,
                next_ping: first_ping,
                pinged_at: now,
                awaiting: false,
                misses: 0,
                local: join.local.0,
                reachable,
                probed,
                adopted_from: None,
                inherited_rank,
                list_stale: false,
                class_due: true,
            },
        );
        role.ping_at(peer, first_ping);

        role.ranking_changed(now, batch);
        let short = role.contacts(SHORT_LIST);
        role.note_standbys(now, &short);
        if short.iter().any(|c| c.id == peer) && !role.pushed_top.contains(&peer) {
            // It now believes it is near the top: a later push that moves it down must tell
            // it at once (a stale standby would take over too).
            role.pushed_top.push(peer);
        }
        self.send(now, addr, Message::Ack(Ack { seq: join.seq }));
        self.send(now, addr, Message::NodeList(NodeList { seq: 0, nodes: short }));
        if fresh {
            self.events.push_back(NodeEvent::ChildJoined { node: peer });
            self.send_revocations(now, addr);
            // After the Ack: the joiner takes probe requests from its LSN only. Not while a
            // takeover's rejoins go on: up to six more datagrams per join would break the
            // pace's budget; later joiners probe the children left unprobed.
            let adopting = self
                .role
                .as_ref()
                .is_some_and(|r| r.children.values().any(|c| c.adopted_from.is_some()));
            if !adopting && !adopted {
                self.probe_children(now, peer, addr);
            }
        }
        if adopted && !rival {
            // Reported with the adoption, and the master holds its certificate: a report
            // would only cost the failover an update and its ack per child. One that became
            // an LSN meanwhile is a rival the master named (above), or one it never heard of.
            return;
        }
        // Report every Join, even from a node we already counted: it may have been an LSN
        // itself meanwhile, and the master must learn it is a child again. A repeat is a no-op
        // there.
        let change =
            PresenceChange { node: peer, kind: PresenceKind::Joined, addr: WireAddr(addr) };
        self.queue_change(now, change, cert);
    }

    pub(super) fn child_heard(&mut self, now: Timestamp, peer: NodeId) {
        let interval = self.cfg.child_ping_interval;
        let Some(role) = self.role.as_mut() else { return };
        let Some(child) = role.children.get_mut(&peer) else { return };
        child.last_heard = now;
        if child.awaiting {
            // The ping is answered: settle it now rather than at its check, which would cost
            // the LSN a timer event per ping (a quarter of its events).
            child.awaiting = false;
            child.misses = 0;
            child.next_ping = (child.pinged_at + interval).max(now);
            let t = child.next_ping;
            role.ping_queue.push(Reverse((t, peer)));
            role.pings_due = role.first_ping(&[]);
        }
    }

    pub(super) fn on_child_ping(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        self.child_heard(now, peer);
        self.lost_child_heard(now, &peer, addr);
    }

    pub(super) fn on_child_pong(&mut self, now: Timestamp, peer: NodeId) {
        self.child_heard(now, peer);
    }

    pub(super) fn on_child_part(&mut self, now: Timestamp, peer: NodeId, reason: PartReason) {
        self.remove_child(now, peer, reason);
    }

    pub(super) fn child_disconnected(&mut self, now: Timestamp, peer: NodeId) {
        self.remove_child(now, peer, PartReason::Lost);
    }

    pub(super) fn remove_child(&mut self, now: Timestamp, peer: NodeId, reason: PartReason) {
        let batch = self.cfg.neighbour_batch;
        let Some(role) = self.role.as_mut() else { return };
        let Some(child) = role.children.remove(&peer) else { return };
        role.ranking_changed(now, batch);
        role.standbys.retain(|(id, _, _)| *id != peer);
        self.events.push_back(NodeEvent::ChildParted { node: peer, reason });
        if reason == PartReason::Lost && child.adopted_from.is_none() {
            self.child_lost(now, peer, child.addr);
        }
        let change = PresenceChange {
            node: peer,
            kind: PresenceKind::Parted(reason),
            addr: WireAddr(child.addr),
        };
        self.queue_change(now, change, None);
    }

    pub(super) fn on_node_list(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        list: NodeList,
    ) {
        if self.find_node_list(now, peer, addr, &list) {
            return;
        }
        if list.seq == 0 && self.lsn.as_ref().is_some_and(|l| l.id == peer) {
            return self.on_neighbours(now, list);
        }
        if self.state == NodeState::IsLsn && peer == self.ep.trust().network().master_id() {
            // The master names the LSNs of our subnet: settle who stays (`rival.rs`).
            self.on_master_lsns(now, list);
        }
    }

    /// The master asks for our whole child list (its digest differs from ours). Nobody else
    /// may: the list names every child, and a short Resync would buy a long answer.
    pub(super) fn on_resync(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, r: Resync) {
        if peer != self.master_id() {
            self.refusals.resync += 1;
            tracing::debug!(?peer, "resync not from the master: ignored");
            return;
        }
        if let Some(role) = &self.role {
            // Every child, adopted ones too: the master counts those present (they are in
            // our digest), and a list without them would make it part them.
            let contact = |c: &&Child| Contact { id: c.id, addr: WireAddr(c.addr) };
            let nodes = role.ranked().iter().map(contact).collect();
            self.send(now, addr, Message::NodeList(NodeList { seq: r.seq, nodes }));
            self.send_certificates_again(now);
        }
    }

    pub(super) fn lsn_timers(&mut self, now: Timestamp) {
        self.lost_timers(now);
        let Some(role) = self.role.as_mut() else { return };
        let (retry, max_misses) = (self.cfg.probe_timeout, self.cfg.child_missed_pings);
        let mut lost = Vec::new();
        let mut ping = Vec::new();
        let mut announce = Vec::new();
        let mut lists = Vec::new();
        let mut pinged = Vec::new();
        // Most calls come for the standby's heartbeat: look at the children only when one is
        // due, and then only at the due ones.
        let scan = role.pings_due.is_some_and(|t| now >= t);
        let due = if scan { role.due_children(now) } else { Vec::new() };
        // While adopted children rejoin, the ranking keeps changing and every message counts:
        // stale lists wait for the ping after the last rejoin.
        let stale = due.iter().any(|id| role.children.get(id).is_some_and(|c| c.list_stale));
        let adopting = stale && role.children.values().any(|c| c.adopted_from.is_some());
        let second = now.as_secs();
        if role.lists_sent.0 != second {
            role.lists_sent = (second, 0);
        }
        let mut again = Vec::new();
        for id in due {
            let Some(child) = role.children.get_mut(&id) else { continue };
            if let Some(old) = child.adopted_from {
                // Its turn (`adopt.rs`): announce the takeover, again until it joins.
                if child.misses >= max_misses {
                    lost.push(child.id);
                    continue;
                }
                child.misses += 1;
                child.pinged_at = now;
                child.next_ping = now + retry;
                again.push((child.next_ping, id));
                announce.push((child.addr, old));
                continue;
            }
            if child.awaiting {
                // The check of the last ping, which went unanswered (an answer settles it on
                // arrival: `child_heard`): retried quickly, and only a run of misses means lost.
                child.misses += 1;
                if child.misses >= max_misses {
                    lost.push(child.id);
                    continue;
                }
            }
            child.pinged_at = now;
            child.awaiting = true;
            child.next_ping = now + retry;
            again.push((child.next_ping, id));
            ping.push(child.addr);
            pinged.push(id);
            if !adopting && child.list_stale && role.lists_sent.1 < STALE_LISTS_PER_SEC {
                // Else it waits for a later ping.
                child.list_stale = false;
                role.lists_sent.1 += 1;
                lists.push(child.addr);
            }
        }
        if scan {
            for (t, id) in again {
                role.ping_queue.push(Reverse((t, id)));
            }
            role.pings_due = role.first_ping(&lost);
        }
        role.forwards.retain(|_, r| now < r.deadline);
        let push = role.neighbours_due.is_some_and(|t| now >= t);
        let mut heartbeats = Vec::new();
        for (_, addr, at) in role.standbys.iter_mut().filter(|(_, _, at)| now >= *at) {
            *at = now + self.cfg.standby_heartbeat;
            heartbeats.push(*addr);
        }
        let uptime_secs = now.saturating_since(role.since).as_secs();
        for addr in heartbeats {
            self.send(now, addr, Message::Uptime(Uptime { uptime_secs }));
        }
        for addr in ping {
            let seq = self.next_seq();
            self.send(now, addr, Message::Ping(Ping { seq }));
        }
        if !lists.is_empty() {
            let short = self.role.as_ref().map(|r| r.contacts(SHORT_LIST)).unwrap_or_default();
            for addr in lists {
                let nodes = short.clone();
                self.send(now, addr, Message::NodeList(NodeList { seq: 0, nodes }));
            }
        }
        self.send_nat_shares(now, &pinged);
        let me = self.me();
        for (addr, old) in announce {
            // While the handshake with the child is under way, a turn resends its message
            // instead (a queued announcement waits for the session; else the next turn sends
            // it): on the handshake's backoff alone, message 3 and its confirmation lost in
            // turn at 20 % loss left a child unannounced for twelve turns (cascade seed 501).
            if !self.ep.hasten(addr) {
                self.send(now, addr, Message::Takeover(Takeover { old, lsn: me }));
            }
        }
        for id in lost {
            self.remove_child(now, id, PartReason::Lost);
        }
        // A removal above may have made the ranking due now: push it in this same call.
        let push =
            push || self.role.as_ref().is_some_and(|r| r.neighbours_due.is_some_and(|t| now >= t));
        if push {
            self.push_neighbours(now);
        }
        self.hand_back_timers(now);
        self.rival_timers(now);
        self.uplink_timers(now);
    }

    /// Sends the full ranking to the two standby candidates at once, and the short list, when
    /// its top changed, to those who were in it (an old standby must learn it is no longer
    /// one) at once and to everyone else with their next ping.
    fn push_neighbours(&mut self, now: Timestamp) {
        let Some(role) = self.role.as_mut() else { return };
        role.neighbours_due = None;
        role.last_push = now;
        let full = role.contacts(usize::MAX);
        let top: Vec<NodeId> = full.iter().take(SHORT_LIST).map(|c| c.id).collect();
        let top_changed = top != role.pushed_top;
        let old_top = std::mem::replace(&mut role.pushed_top, top);
        let short: Vec<Contact> = full.iter().take(SHORT_LIST).copied().collect();
        role.note_standbys(now, &full);
        let mut sends = Vec::new();
        for (rank, c) in full.iter().enumerate() {
            match rank {
                0 | 1 => sends.push((c.addr.0, full.clone())),
                _ if top_changed && old_top.contains(&c.id) => {
                    sends.push((c.addr.0, short.clone()))
                }
                _ if top_changed => {
                    if let Some(child) = role.children.get_mut(&c.id) {
                        child.list_stale = true;
                    }
                }
                _ => {}
            }
        }
        for (addr, nodes) in sends {
            self.send(now, addr, Message::NodeList(NodeList { seq: 0, nodes }));
        }
    }

    pub(super) fn lsn_deadline(&self) -> Option<Timestamp> {
        let role = self.role.as_ref()?;
        let forwards = role.forwards.values().map(|r| r.deadline);
        role.pings_due
            .into_iter()
            .chain(forwards)
            .chain(role.standbys.iter().map(|(_, _, t)| *t))
            .chain(role.neighbours_due)
            .chain(role.recheck.map(|(_, _, t)| t))
            .chain(role.lost.deadline())
            .chain(self.rival_deadline())
            .chain(self.uplink_deadline())
            .min()
    }
}
