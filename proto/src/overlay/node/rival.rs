//! Settling two LSNs in one subnet (thesis 5.3.5), and who may make us yield.
//!
//! The master names a subnet's LSNs to each of them, senior first (in the order it registered
//! them, `master/registry`). An `Uptime` from a rival shows that it reaches us over the LAN;
//! we yield to it, and join it, only when
//! * the master named it in its latest list, ahead of us (an LSN the master does not list is
//!   junior to every one it does), and
//! * it came from an address on our own local network.
//!
//! The uptime the message claims is not evidence: any certified node could claim `u64::MAX`
//! (one message used to make an LSN resign and hand its subnet to the sender), and neither
//! side can check the other's. The master's order is the seniority both can check, and both
//! read the same list, so they agree on who stays. A rival named junior is challenged back, so
//! that it hears from us and yields. Anything else is refused ([`UptimeRefused`]) and changes
//! nothing.
//!
//! A standby that took over from an LSN still alive (a run of lost datagrams passed for its
//! death) hands the role back as soon as that LSN's heartbeat or its answer to our checks
//! (a Pong naming itself an LSN) reaches it, within a minute of the takeover: that LSN was our
//! own, whom we followed, and the master lists it senior anyway.
//!
//! The master sends its list to both LSNs at once, so the senior's `Uptime` can reach the
//! junior before the junior's list does: the junior remembers the last few rivals it heard
//! from (`HEARD_FOR`) and yields as soon as the list names one of them senior.
//!
//! One lost `Uptime` must not leave two LSNs for a minute (until the master's next list, sent
//! with its answer to our liveness check): after a list, both sides challenge every named
//! rival again each [`CHALLENGE_GAP`], [`REPEATS`] times. At 20 % loss a round settles it
//! four times in five, so two LSNs rarely outlast 10 s; the repeats cost a LAN datagram each.
//! (Rounds were 5 s apart: one turmoil run of 20 at 20 % loss kept a duplicate 16 s.)

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use super::Node;
use crate::{
    wire::{Contact, Message, NodeList, PartReason, Ping, Uptime, WireAddr},
    NodeId, Timestamp,
};

/// Shortest gap between two Uptime challenges to the same rival LSN.
const CHALLENGE_GAP: Duration = Duration::from_secs(2);
/// Most rivals kept from the master's list, and most senders kept in `heard` (a subnet has
/// one LSN, rarely two or three).
const MAX_RIVALS: usize = 8;
/// Rounds of challenges after each list from the master (30 s).
const REPEATS: u32 = 15;
/// How long an Uptime from a rival the master has not named yet is remembered.
const HEARD_FOR: Duration = Duration::from_secs(10);
/// How long after a takeover the LSN we took over from can make us hand its role back by its
/// heartbeat (`on_uptime`) or its answer to our checks (`on_replaced_pong`).
const HAND_BACK_WINDOW: Duration = Duration::from_secs(60);
/// When a standby that took over checks the LSN it replaced: this long after the takeover,
/// then twice as long each time, [`RECHECKS`] times in all (1, 3, 7, 15 s). The check opens
/// a fresh session (ours closed with the takeover), over which the live LSN's heartbeats reach
/// us again too.
const FIRST_RECHECK: Duration = Duration::from_secs(1);
const RECHECKS: u32 = 4;

/// Why an `Uptime` from a rival was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UptimeRefused {
    /// We are not an LSN.
    #[error("not an LSN")]
    NotLsn,
    /// It came from outside our local network.
    #[error("sent from outside our network")]
    OffSubnet,
    /// The master has not named the sender an LSN of our subnet.
    #[error("not named a rival by the master")]
    NotNamed,
}

/// An LSN's rivals: whom the master named, whom we heard from, whom we challenged.
#[derive(Default)]
pub(crate) struct Rivals {
    /// The rivals in the master's latest list, each with whether it was listed ahead of us.
    named: Vec<(Contact, bool)>,
    /// Rivals on our network that sent an Uptime before the master named them: (id, when).
    heard: Vec<(NodeId, Timestamp)>,
    /// When we last challenged each rival (entries older than the gap are dropped).
    challenged: HashMap<NodeId, Timestamp>,
    /// The next round of challenges to the named rivals, and the rounds left.
    repeat: Option<(Timestamp, u32)>,
}

impl Rivals {
    /// Whether we may challenge `rival` now; records the challenge if so. Bounded: only
    /// challenges within the last gap are kept, and only rate-limited ones are sent.
    fn may_challenge(&mut self, now: Timestamp, rival: NodeId) -> bool {
        self.challenged.retain(|_, t| now < *t + CHALLENGE_GAP);
        if self.challenged.contains_key(&rival) || self.challenged.len() >= MAX_RIVALS {
            return false;
        }
        self.challenged.insert(rival, now);
        true
    }

    /// The rival `peer` as the master named it, with whether it is senior to us.
    fn named(&self, peer: &NodeId) -> Option<(Contact, bool)> {
        self.named.iter().find(|(c, _)| c.id == *peer).copied()
    }

    /// Whether the master's latest list names `peer` an LSN of our subnet.
    pub(super) fn is_named(&self, peer: &NodeId) -> bool {
        self.named(peer).is_some()
    }
}

impl Node {
    /// The master's list of our subnet's LSNs, senior first: remember it, yield to a senior
    /// rival we already heard from, challenge the others.
    pub(super) fn on_master_lsns(&mut self, now: Timestamp, list: NodeList) {
        let me = self.node_id();
        let Some(role) = self.role.as_mut() else { return };
        let mine = list.nodes.iter().position(|c| c.id == me).unwrap_or(list.nodes.len());
        role.rivals.named = list
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.id != me)
            .take(MAX_RIVALS)
            .map(|(i, c)| (*c, i < mine))
            .collect();
        role.rivals.heard.retain(|(_, t)| now < *t + HEARD_FOR);
        let heard = &role.rivals.heard;
        let senior_heard = role
            .rivals
            .named
            .iter()
            .find(|(c, senior)| *senior && heard.iter().any(|h| h.0 == c.id));
        if let Some((senior, _)) = senior_heard.copied() {
            return self.yield_to(now, senior);
        }
        role.rivals.repeat =
            (!role.rivals.named.is_empty()).then_some((now + CHALLENGE_GAP, REPEATS));
        let named: Vec<Contact> = role.rivals.named.iter().map(|(c, _)| *c).collect();
        for rival in named {
            self.challenge(now, rival);
        }
    }

    /// Challenges the named rivals again when a round is due (see the module docs). A rival
    /// that has since joined us is no rival: our Uptime would make it our standby.
    pub(super) fn rival_timers(&mut self, now: Timestamp) {
        let Some(role) = self.role.as_mut() else { return };
        let Some((at, left)) = role.rivals.repeat.filter(|(at, _)| now >= *at) else { return };
        let children = &role.children;
        let named: Vec<Contact> = role
            .rivals
            .named
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| !children.contains_key(&c.id))
            .collect();
        role.rivals.repeat =
            (left > 1 && !named.is_empty()).then_some((at + CHALLENGE_GAP, left - 1));
        for rival in named {
            self.challenge(now, rival);
        }
    }

    pub(super) fn rival_deadline(&self) -> Option<Timestamp> {
        self.role.as_ref()?.rivals.repeat.map(|(at, _)| at)
    }

    /// Sends our LSN uptime to a rival LSN (rate-limited).
    pub(super) fn challenge(&mut self, now: Timestamp, rival: Contact) {
        let Some(role) = self.role.as_mut() else { return };
        if !role.rivals.may_challenge(now, rival.id) {
            return;
        }
        let uptime_secs = now.saturating_since(role.since).as_secs();
        self.send(now, rival.addr.0, Message::Uptime(Uptime { uptime_secs }));
    }

    /// An `Uptime`: from our own LSN, while we are its child, the hot standby's heartbeat;
    /// from a rival LSN, a challenge, settled by the rules in the module docs.
    pub(super) fn on_uptime(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, _: Uptime) {
        if self.on_lsn_heartbeat(now, peer) {
            return;
        }
        if self.took_over_from_live(now, &peer, addr) {
            // The LSN we took over from still heartbeats us, its standby: it is alive, and
            // what we took for its death was a run of lost datagrams. Hand the role back at
            // once rather than after the master's rival list: the children that followed us
            // go back with our Part, and the master is told by it (it then asks the LSN for
            // its children: `master/resync.rs`).
            tracing::debug!(lsn = ?peer, "the LSN we replaced is alive: handing back");
            return self.yield_to(now, Contact { id: peer, addr: WireAddr(addr) });
        }
        match self.rival_standing(&peer, addr) {
            Ok((rival, true)) => self.yield_to(now, rival),
            Ok((rival, false)) => self.challenge(now, rival),
            Err(UptimeRefused::NotNamed) => {
                // Perhaps the master's list naming it is on its way: remember, answer. Not a
                // child of ours: it is no LSN, and our Uptime would make it our standby.
                let Some(role) = self.role.as_mut().filter(|r| !r.children.contains_key(&peer))
                else {
                    return;
                };
                let heard = &mut role.rivals.heard;
                heard.retain(|(id, t)| *id != peer && now < *t + HEARD_FOR);
                heard.truncate(MAX_RIVALS - 1);
                heard.insert(0, (peer, now));
                self.challenge(now, Contact { id: peer, addr: WireAddr(addr) });
            }
            Err(refused) => {
                self.refusals.uptime += 1;
                tracing::debug!(?peer, %addr, %refused, "uptime refused");
            }
        }
    }

    /// Whether `peer`, whose Uptime came from `addr`, may challenge us: the rival as the
    /// master named it, and whether it is senior to us.
    pub(crate) fn rival_standing(
        &self,
        peer: &NodeId,
        addr: SocketAddr,
    ) -> Result<(Contact, bool), UptimeRefused> {
        let role = self.role.as_ref().ok_or(UptimeRefused::NotLsn)?;
        if !self.cfg.local.contains(addr.ip()) {
            return Err(UptimeRefused::OffSubnet);
        }
        role.rivals.named(peer).ok_or(UptimeRefused::NotNamed)
    }

    /// Whether `peer`, heard at `addr`, is the LSN we took over from moments ago (within
    /// [`HAND_BACK_WINDOW`]), on our network. It was our own LSN, whom we followed: its word
    /// is as good as the master's list.
    pub(crate) fn took_over_from_live(
        &self,
        now: Timestamp,
        peer: &NodeId,
        addr: SocketAddr,
    ) -> bool {
        self.role
            .as_ref()
            .is_some_and(|r| r.took_over_from == Some(*peer) && now < r.since + HAND_BACK_WINDOW)
            && self.cfg.local.contains(addr.ip())
    }

    /// Schedules the checks of the dead LSN at `addr` we just took over from.
    pub(super) fn recheck_replaced(&mut self, now: Timestamp, addr: SocketAddr) {
        if let Some(role) = self.role.as_mut() {
            role.recheck = Some((addr, 0, now + FIRST_RECHECK));
        }
    }

    /// Pings the LSN we took over from when a check is due: alive, it answers with a Pong
    /// naming itself its LSN (`on_replaced_pong`).
    pub(super) fn hand_back_timers(&mut self, now: Timestamp) {
        let Some(role) = self.role.as_mut() else { return };
        let Some((addr, sent, _)) = role.recheck.filter(|(_, _, at)| now >= *at) else {
            return;
        };
        let Some(old) = role.took_over_from else { return };
        role.recheck = (sent + 1 < RECHECKS)
            .then(|| (addr, sent + 1, now + FIRST_RECHECK * 2u32.pow(sent + 1)));
        let seq = self.next_seq();
        self.ep.connect(now, addr, Some(old));
        self.send(now, addr, Message::Ping(Ping { seq }));
    }

    /// A Pong from the LSN we took over from, naming itself an LSN: it is alive and leads
    /// (our suspicion was a run of lost datagrams). Returns whether we handed the role back.
    pub(super) fn on_replaced_pong(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        lsn: Option<Contact>,
    ) -> bool {
        if lsn.is_none_or(|c| c.id != peer) || !self.took_over_from_live(now, &peer, addr) {
            return false;
        }
        tracing::debug!(lsn = ?peer, "the LSN we replaced answers as an LSN: handing back");
        self.yield_to(now, Contact { id: peer, addr: WireAddr(addr) });
        true
    }

    /// Gives up the LSN role to a senior rival and joins it.
    fn yield_to(&mut self, now: Timestamp, rival: Contact) {
        self.resign(now, PartReason::Yield, Some(rival));
        self.join_now(now, rival);
    }
}
