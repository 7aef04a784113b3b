//! The master as introducer (issue 16; the node's side is `overlay/node/introduce.rs` and
//! `overlay/node/nat.rs`). Written against what any introducer needs (observed addresses, a
//! route to the target, the classes nodes report), so a GSN can take the same role later.
//!
//! * **Observing.** [`ObserveMe`] is answered with the address it came from. When a node
//!   that takes unsolicited inbound is known (a helper), the master also asks it to send the
//!   asker a reach probe, and names it in the answer, so the asker can test its filtering and
//!   then its mapping (`node/nat.rs`).
//! * **Classes.** A node's [`NatReport`] is kept with the address we observed, for the
//!   topology and for introductions. Nodes with open inbound become helpers.
//! * **Introducing.** On [`Introduce`] from A for B: same subnet → each gets the other's LAN
//!   address. A takes unsolicited inbound → connection reversal: only B is told to dial A.
//!   Otherwise B is told to dial A (at the address A's request came from, and A's local
//!   one) and to check in ([`Introduced`]); B's check-in shows us B's current public address,
//!   which A then gets. Introductions reach B through its LSN (`next_hop`), as everything
//!   for a node does; an LSN gets its own directly.
//!
//! Bounds: [`MAX_PENDING_INTRODUCTIONS`] waiting check-ins, [`MAX_PENDING_PER_NODE`] per
//! asker (each lives at most [`INTRODUCTION_TIMEOUT`], so an asker gets at most that many
//! introductions per timeout), [`MAX_NAT_CLASSES`] classes, [`MAX_HELPERS`] helpers.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    time::Duration,
};

use super::Master;
use crate::{
    wire::{
        Contact, ErrorCode, ErrorMessage, Introduce, Introduced, Introduction, Mapping, Message,
        NatClass, NatReport, ObserveMe, Observed, ProbeRequest, WireAddr, MAX_PREDICTED_PORTS,
    },
    NodeId, Timestamp,
};

/// Introductions waiting for the target's check-in, at most.
pub const MAX_PENDING_INTRODUCTIONS: usize = 1024;
/// Of those, per asker: as many as a node asks at once (`node::introduce::MAX_ASKED`). At 4,
/// a republish storing at 20 peers behind NATs had most of its asks refused, and the
/// refused peers cooled down for 30 s (the simulator's 300-node night: raising it to 16 cut
/// the republishes' failed requests from 2,670 to 1,832).
pub const MAX_PENDING_PER_NODE: usize = 16;
/// How long an introduction waits for the target's check-in.
pub const INTRODUCTION_TIMEOUT: Duration = Duration::from_secs(5);
/// NAT classes kept (beyond it, reports from nodes not present are not kept).
pub const MAX_NAT_CLASSES: usize = 131_072;
/// Helpers kept for NAT classification.
pub const MAX_HELPERS: usize = 64;
/// Introductions whose check-in came, remembered (the oldest forgotten first) so that a
/// second check-in for one (the asker asked again and the target answered twice) is
/// recognised, not counted as refused.
pub const MAX_CHECKED_IN: usize = 256;

/// What the introducer did (for tests and the simulator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IntroducerStats {
    /// Introductions asked for.
    pub asked: u64,
    /// Of those, within one subnet (LAN addresses given).
    pub lan: u64,
    /// Of those, by connection reversal (the asker takes unsolicited inbound).
    pub reversed: u64,
    /// Of those, punched: the target checked in and the asker got its address.
    pub punched: u64,
    /// Refused: target absent, or too many pending.
    pub refused: u64,
    /// Probes asked of helpers for NAT classification.
    pub probes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    asker: NodeId,
    asker_addr: SocketAddr,
    target: NodeId,
    target_local: Option<SocketAddr>,
    relay: Option<Contact>,
    until: Timestamp,
    /// The asker asked for port prediction (`Introduce::predict`).
    predict: bool,
}

/// The introducer's state.
#[derive(Default)]
pub(super) struct Introducer {
    classes: HashMap<NodeId, (NatClass, SocketAddr)>,
    helpers: BTreeMap<NodeId, SocketAddr>,
    next_helper: usize,
    pending: HashMap<u64, Pending>,
    expiry: BTreeSet<(Timestamp, u64)>,
    per_asker: HashMap<NodeId, usize>,
    /// The last [`MAX_CHECKED_IN`] check-ins: (nonce, target).
    checked_in: std::collections::VecDeque<(u64, NodeId)>,
    stats: IntroducerStats,
    /// Appointed GSNs (`gsn.rs`).
    pub(super) gsns: BTreeMap<NodeId, super::gsn::Appointed>,
    pub(super) next_gsn: usize,
    /// LSN → the GSN it chose, and the round trip it measured (ms).
    pub(super) choices: HashMap<NodeId, (NodeId, u32)>,
}

impl Master {
    /// What the introducer did so far.
    pub fn introducer_stats(&self) -> IntroducerStats {
        self.intro.stats
    }

    /// The NAT class `node` reported, with the address we observed it at then.
    pub fn nat_class(&self, node: &NodeId) -> Option<(NatClass, SocketAddr)> {
        self.intro.classes.get(node).copied()
    }

    pub(super) fn on_observe_me(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        req: ObserveMe,
    ) {
        let helper = self.pick_helper(peer, addr);
        let mut nonce = 0;
        if let Some(h) = helper {
            use rand_core::RngCore;
            nonce = self.ep.rng().next_u64().max(1);
            self.intro.stats.probes += 1;
            let probe = ProbeRequest { nonce, target: WireAddr(addr) };
            self.send(now, h.addr.0, Message::ProbeRequest(probe));
        }
        let answer = Observed { seq: req.seq, addr: WireAddr(addr), nonce, helper };
        self.send(now, addr, Message::Observed(answer));
    }

    /// A present helper, not the asker nor behind the asker's public address (its probe
    /// would come from inside the asker's NAT), taken in turn.
    fn pick_helper(&mut self, asker: NodeId, addr: SocketAddr) -> Option<Contact> {
        let n = self.intro.helpers.len();
        for k in 0..n {
            let i = (self.intro.next_helper + k) % n;
            let Some((&id, &at)) = self.intro.helpers.iter().nth(i) else { break };
            if id != asker && at.ip() != addr.ip() && self.holds_mapping(&id) {
                self.intro.next_helper = i + 1;
                return Some(Contact { id, addr: WireAddr(at) });
            }
        }
        None
    }

    /// Whether `node` is present and still reachable where it reported from, unasked: it has
    /// no NAT, or it is an LSN, whose keepalives hold its mapping open. A child behind a NAT
    /// sends nothing over the WAN once classified, so its mapping lapses within minutes: a
    /// helper or GSN there took handshakes (540 bytes each then), resent six times, into the
    /// void (a quarter of the standard day's WAN bytes).
    pub(super) fn holds_mapping(&self, node: &NodeId) -> bool {
        let public =
            (self.intro.classes.get(node)).is_some_and(|(c, _)| c.mapping == Mapping::Public);
        self.reg.is_present(node) && (public || self.reg.is_lsn(node))
    }

    pub(super) fn on_nat_report(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        report: NatReport,
    ) {
        let i = &mut self.intro;
        if i.classes.len() >= MAX_NAT_CLASSES && !i.classes.contains_key(&peer) {
            let reg = &self.reg;
            i.classes.retain(|id, _| reg.is_present(id));
            if i.classes.len() >= MAX_NAT_CLASSES {
                return;
            }
        }
        i.classes.insert(peer, (report.class, addr));
        let open = report.class.inbound == Some(true)
            || (report.class.mapping == Mapping::Public && report.class.inbound.is_none());
        if open && (i.helpers.len() < MAX_HELPERS || i.helpers.contains_key(&peer)) {
            i.helpers.insert(peer, addr);
        } else if !open {
            i.helpers.remove(&peer);
        }
        self.appoint_gsn(now, peer, addr, open && report.gsn);
    }

    pub(super) fn on_introduce(
        &mut self,
        now: Timestamp,
        asker: NodeId,
        addr: SocketAddr,
        req: Introduce,
    ) {
        self.intro.stats.asked += 1;
        let target = req.target;
        let refuse = |m: &mut Master, code: ErrorCode, detail: &str| {
            m.intro.stats.refused += 1;
            let error = ErrorMessage { seq: req.seq, code, detail: detail.into() };
            m.send(now, addr, Message::Error(error));
        };
        let Some((_, hop)) = self.reg.next_hop(&target).filter(|_| target != asker) else {
            return refuse(self, ErrorCode::UNREACHABLE, "target not present");
        };
        let (target_local, target_subnet) = match self.reg.whereabouts(&target) {
            Some((a, s)) => (Some(a), s),
            None => (None, None),
        };
        let (asker_local, asker_subnet) = match self.reg.whereabouts(&asker) {
            Some((a, s)) => (Some(a), s),
            None => (None, None),
        };
        // The relay if the punch fails; none for connection reversal (the asker takes
        // inbound, and it gets no introduction to learn the GSN from).
        let relay = self.pick_gsn(asker, target);
        // Port prediction only where both sides punch (not within a LAN, nor for reversal).
        let to_target = |peer: NodeId, addrs: Vec<SocketAddr>, answer: bool, nonce: u64| {
            let addrs = addrs.into_iter().map(WireAddr).collect();
            Introduction { nonce, to: target, peer, addrs, answer, relay, predict: 0 }
        };
        let message = |intro: Introduction| Message::Introduction(Box::new(intro));
        if asker_subnet.is_some() && asker_subnet == target_subnet {
            // One LAN: the NAT between them is no obstacle, its hairpinning may be.
            self.intro.stats.lan += 1;
            let (Some(a), Some(b)) = (asker_local, target_local) else {
                return refuse(self, ErrorCode::UNREACHABLE, "no local address");
            };
            self.send(now, hop, message(to_target(asker, vec![a], false, 0)));
            let back = Introduction {
                nonce: 0,
                to: asker,
                peer: target,
                addrs: vec![WireAddr(b)],
                answer: false,
                relay,
                predict: 0,
            };
            self.send(now, addr, Message::Introduction(Box::new(back)));
            return;
        }
        let mut addrs = vec![addr];
        addrs.extend(asker_local.filter(|a| *a != addr));
        let asker_open =
            self.intro.classes.get(&asker).is_some_and(|(c, _)| c.inbound == Some(true));
        if asker_open {
            // Connection reversal: the asker takes unsolicited inbound, so the target dials it.
            self.intro.stats.reversed += 1;
            let intro = Introduction { relay: None, ..to_target(asker, addrs, false, 0) };
            self.send(now, hop, message(intro));
            return;
        }
        let predict = if req.predict { self.predict_for(&target, &asker) } else { 0 };
        // Asked again (a datagram of the first introduction was lost): the same introduction
        // again, with its nonce and GSN, at no cost to the bounds.
        let again = self.intro.pending.iter().find(|(_, p)| p.asker == asker && p.target == target);
        if let Some((&nonce, p)) = again {
            let intro =
                Introduction { relay: p.relay, predict, ..to_target(asker, addrs, true, nonce) };
            self.send(now, hop, message(intro));
            return;
        }
        let i = &mut self.intro;
        let mine = i.per_asker.get(&asker).copied().unwrap_or(0);
        if i.pending.len() >= MAX_PENDING_INTRODUCTIONS || mine >= MAX_PENDING_PER_NODE {
            return refuse(self, ErrorCode::BUSY, "too many introductions pending");
        }
        use rand_core::RngCore;
        let nonce = self.ep.rng().next_u64().max(1);
        let until = now + INTRODUCTION_TIMEOUT;
        let i = &mut self.intro;
        i.pending.insert(
            nonce,
            Pending {
                asker,
                asker_addr: addr,
                target,
                target_local,
                relay,
                until,
                predict: req.predict,
            },
        );
        i.expiry.insert((until, nonce));
        *i.per_asker.entry(asker).or_default() += 1;
        self.send(
            now,
            hop,
            message(Introduction { predict, ..to_target(asker, addrs, true, nonce) }),
        );
    }

    /// The target of an introduction checked in: hand the asker the address it came from.
    pub(super) fn on_introduced(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        m: Introduced,
    ) {
        let ours = self.intro.pending.get(&m.nonce).is_some_and(|p| p.target == peer);
        if !ours && self.intro.checked_in.contains(&(m.nonce, peer)) {
            tracing::debug!(?peer, "second check-in for an introduction: already handed on");
            return;
        }
        if !ours {
            tracing::debug!(?peer, "check-in for no introduction of it: refused");
            self.refusals.introduction += 1;
            return;
        }
        let Some(p) = self.take_pending(m.nonce) else { return };
        self.intro.stats.punched += 1;
        if self.intro.checked_in.len() >= MAX_CHECKED_IN {
            self.intro.checked_in.pop_front();
        }
        self.intro.checked_in.push_back((m.nonce, peer));
        let mut addrs = vec![WireAddr(addr)];
        addrs.extend(p.target_local.filter(|a| *a != addr).map(WireAddr));
        let intro = Introduction {
            nonce: m.nonce,
            to: p.asker,
            peer,
            addrs,
            answer: false,
            relay: p.relay,
            predict: if p.predict { self.predict_for(&p.asker, &peer) } else { 0 },
        };
        self.send(now, p.asker_addr, Message::Introduction(Box::new(intro)));
    }

    /// How many ports `to` should predict for `peer` ([`Introduction::predict`]): all it may
    /// when `peer`'s NAT maps each destination to its own port and `to`'s does not (from a
    /// NAT that changes port per destination, the copies would leave from ports the peer
    /// never sees) and filters what it was not sent (open inbound lets the peer's new port
    /// in anyway).
    fn predict_for(&self, to: &NodeId, peer: &NodeId) -> u16 {
        let class = |n: &NodeId| self.intro.classes.get(n).map(|(c, _)| *c);
        let peer_moves = class(peer).is_some_and(|c| c.mapping == Mapping::EndpointDependent);
        let own_holds = class(to)
            .is_some_and(|c| c.mapping != Mapping::EndpointDependent && c.inbound != Some(true));
        if peer_moves && own_holds {
            MAX_PREDICTED_PORTS
        } else {
            0
        }
    }

    fn take_pending(&mut self, nonce: u64) -> Option<Pending> {
        let i = &mut self.intro;
        let p = i.pending.remove(&nonce)?;
        i.expiry.remove(&(p.until, nonce));
        if let Some(n) = i.per_asker.get_mut(&p.asker) {
            *n -= 1;
            if *n == 0 {
                i.per_asker.remove(&p.asker);
            }
        }
        Some(p)
    }

    pub(super) fn intro_timers(&mut self, now: Timestamp) {
        while let Some(&(t, nonce)) = self.intro.expiry.first() {
            if t > now {
                break;
            }
            self.intro.expiry.pop_first();
            self.take_pending(nonce);
        }
    }

    pub(super) fn intro_deadline(&self) -> Option<Timestamp> {
        self.intro.expiry.first().map(|(t, _)| *t)
    }
}
