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
//! The master sends its list to both LSNs at once, so the senior's `Uptime` can reach the
//! junior before the junior's list does: the junior remembers the last few rivals it heard
//! from (`HEARD_FOR`) and yields as soon as the list names one of them senior.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use super::Node;
use crate::{
    wire::{Contact, Message, NodeList, PartReason, Uptime, WireAddr},
    NodeId, Timestamp,
};

/// Shortest gap between two Uptime challenges to the same rival LSN.
const CHALLENGE_GAP: Duration = Duration::from_secs(5);
/// Most rivals kept from the master's list, and most senders kept in `heard` (a subnet has
/// one LSN, rarely two or three).
const MAX_RIVALS: usize = 8;
/// How long an Uptime from a rival the master has not named yet is remembered.
const HEARD_FOR: Duration = Duration::from_secs(10);

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
        let named: Vec<Contact> = role.rivals.named.iter().map(|(c, _)| *c).collect();
        for rival in named {
            self.challenge(now, rival);
        }
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

    /// Gives up the LSN role to a senior rival and joins it.
    fn yield_to(&mut self, now: Timestamp, rival: Contact) {
        self.resign(now, PartReason::Yield, Some(rival));
        self.join_now(now, rival);
    }
}
