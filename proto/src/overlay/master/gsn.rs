//! The master appoints Global Super Nodes (thesis 4.1; issue 16, phase 2) and names one in
//! each introduction, for the relay if the hole punch fails (`node/gsn.rs` is the GSN's and
//! the members' side).
//!
//! * **Eligibility.** A node is a GSN while its config allows it (its [`NatReport`] says so;
//!   default allowed) and it takes unsolicited inbound: the same evidence that makes it a
//!   NAT-classification helper (`introduce.rs`): a helper's probe, sent from an address the
//!   node never sent to, reached it (or it is public and was the first to ask). The master
//!   tells it with [`GsnGrant`] (and withdraws the grant when a later report loses the
//!   evidence or the permission).
//! * **Tickets.** Each grant carries a [`GsnTicket`] signed by the master (valid
//!   [`TICKET_TTL`]), with the GSN's reliability: since when it serves without a break, and
//!   how many of its reports confirmed it. The GSN publishes it in the DHT's GSN directory
//!   (`overlay/gsn_ticket.rs`), where LSNs find it.
//! * **Naming.** Each introduction names one present GSN, not one of the pair: the one the
//!   asker's LSN measured nearest and told us ([`GsnChoice`], `node/gsn_survey.rs`) while it
//!   is still appointed, else (or for the target) the next in turn (`pick_gsn`).
//!
//! Bounds: [`MAX_GSNS`] appointed at once, later candidates wait for a free place (their next
//! report); choices only from present LSNs, at most [`MAX_GSN_CHOICES`] (those of nodes no
//! longer LSNs are dropped first).
//!
//! [`TICKET_TTL`]: crate::overlay::gsn_ticket::TICKET_TTL
//!
//! [`NatReport`]: crate::wire::NatReport

use std::net::SocketAddr;

use super::Master;
use crate::{
    overlay::gsn_ticket::{sign_ticket, TICKET_TTL},
    wire::{Contact, GsnChoice, GsnGrant, GsnTicket, Message, WireAddr},
    NodeId, Timestamp,
};

/// GSNs appointed at once.
pub const MAX_GSNS: usize = 64;
/// LSNs' GSN choices kept at once.
pub const MAX_GSN_CHOICES: usize = 65_536;

/// An appointed GSN.
#[derive(Clone, Copy, Debug)]
pub(super) struct Appointed {
    /// Where it reported from.
    pub(super) addr: SocketAddr,
    /// When this tenure began (UNIX seconds).
    since: u64,
    /// Reports that confirmed it during this tenure.
    confirmed: u32,
}

impl Master {
    /// The appointed GSNs.
    pub fn gsns(&self) -> Vec<NodeId> {
        self.intro.gsns.keys().copied().collect()
    }

    /// A node reported its class: appoint it, or withdraw its appointment.
    pub(super) fn appoint_gsn(&mut self, now: Timestamp, node: NodeId, addr: SocketAddr, ok: bool) {
        let i = &mut self.intro;
        let was = i.gsns.contains_key(&node);
        if ok && (was || i.gsns.len() < MAX_GSNS) {
            let fresh = Appointed { addr, since: now.as_secs(), confirmed: 0 };
            let a = i.gsns.entry(node).or_insert(fresh);
            if a.addr != addr {
                // Moved: members reach it elsewhere now; a new tenure.
                *a = fresh;
            }
            a.confirmed = a.confirmed.saturating_add(1);
        } else if !ok && was {
            i.gsns.remove(&node);
            i.choices.retain(|_, (gsn, _)| *gsn != node);
        }
        let ticket = self.intro.gsns.get(&node).copied().map(|a| self.ticket(now, node, a));
        if ticket.is_some() || was {
            // Also on a repeated report: the node may have restarted and forgotten, or it
            // asks for a fresh ticket.
            let grant = GsnGrant { active: ticket.is_some(), ticket };
            self.send(now, addr, Message::GsnGrant(grant));
        }
    }

    /// A GSN that parted is no GSN: back after a restart, it has forgotten its grant, and a
    /// child (which takes its LSN's NAT class) does not report again to learn it. Named
    /// still, it took members' relayed datagrams and refused them (seen in a day's run: 7 of
    /// 10 appointed GSNs were rebooted children). It is appointed again on its next report.
    pub(super) fn gsn_presence(&mut self, events: &[super::PresenceEvent]) {
        for e in events {
            if let super::PresenceEvent::Parted { node, .. } = e {
                if self.intro.gsns.remove(node).is_some() {
                    self.intro.choices.retain(|_, (gsn, _)| gsn != node);
                }
            }
        }
    }

    fn ticket(&self, now: Timestamp, node: NodeId, a: Appointed) -> GsnTicket {
        let network = *self.ep.trust().network();
        let expires = now.as_secs() + TICKET_TTL.as_secs();
        let reliability = (a.since, a.confirmed);
        sign_ticket(self.ep.identity(), &network, node, WireAddr(a.addr), reliability, expires)
    }

    /// The GSN an LSN chose for itself and its children, with the round trip it measured.
    pub fn gsn_choice(&self, lsn: &NodeId) -> Option<(NodeId, u32)> {
        self.intro.choices.get(lsn).copied()
    }

    /// An LSN tells us the GSN it measured nearest. Only from an LSN, and only naming a GSN
    /// we appointed; anything else is refused and changes nothing.
    pub(super) fn on_gsn_choice(&mut self, peer: NodeId, c: GsnChoice) {
        let i = &mut self.intro;
        if !self.reg.is_lsn(&peer) || c.gsn.is_some_and(|g| !i.gsns.contains_key(&g)) {
            tracing::debug!(?peer, "GSN choice not from an LSN, or of no GSN: refused");
            self.refusals.gsn += 1;
            return;
        }
        let Some(gsn) = c.gsn else {
            i.choices.remove(&peer);
            return;
        };
        if i.choices.len() >= MAX_GSN_CHOICES && !i.choices.contains_key(&peer) {
            let reg = &self.reg;
            i.choices.retain(|lsn, _| reg.is_lsn(lsn));
            if i.choices.len() >= MAX_GSN_CHOICES {
                return;
            }
        }
        i.choices.insert(peer, (gsn, c.rtt_ms));
    }

    /// The GSN for an introduction of `a` to `b`: the one `a`'s LSN chose if it can serve,
    /// else a present GSN other than `a` and `b`, taken in turn.
    pub(super) fn pick_gsn(&mut self, a: NodeId, b: NodeId) -> Option<Contact> {
        let usable = |m: &Master, id: NodeId| id != a && id != b && m.holds_mapping(&id);
        let lsn = self.reg.next_hop(&a).map_or(a, |(hop, _)| hop);
        let chosen = self.intro.choices.get(&lsn).map(|(g, _)| *g);
        if let Some(id) = chosen.filter(|&g| usable(self, g)) {
            if let Some(at) = self.intro.gsns.get(&id) {
                return Some(Contact { id, addr: WireAddr(at.addr) });
            }
        }
        let n = self.intro.gsns.len();
        for k in 0..n {
            let idx = (self.intro.next_gsn + k) % n;
            let Some((&id, at)) = self.intro.gsns.iter().nth(idx) else { break };
            let at = at.addr;
            if usable(self, id) {
                self.intro.next_gsn = idx + 1;
                return Some(Contact { id, addr: WireAddr(at) });
            }
        }
        None
    }
}
