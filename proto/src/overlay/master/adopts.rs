//! Adoptions sent again until carried out (issue 19, cascades).
//!
//! A standby that reports the LSN it replaced gets that LSN's children as the master knew
//! them ([`Adopt`]), so it can announce the takeover to those its own list missed: in a
//! cascade (the first standby died during its takeover), that is every child the first one
//! had not reached yet. The Adopt went once, unacknowledged: lost (20 % loss), those children
//! kept the dead LSN until their 90 s silence timer, absent at the master all the while
//! (cascade sweep, seed 532). Now, while some of the named children are still not reported
//! by the new LSN, it goes again (naming only those) after [`ADOPT_AGAIN`], [`ADOPT_TRIES`]
//! times in all. The new LSN takes an Adopt twice without harm (`node/adopt.rs` skips the
//! children it has). Bound: [`MAX_ADOPTS`] in flight, the oldest dropped first.
//!
//! An LSN that yields to a rival hands the rival its children the same way
//! ([`Master::adopt_yielded`]): its Part tells only the children that know it, and a cascade's
//! second successor yields with children it adopted but had not reached yet, who still follow
//! the first dead LSN (wider cascade sweep, seed 669: children absent past the 60 s run).
//! That Part is one datagram, and the rival's update filing the yielder as its child often
//! arrives first (the yielder is then no longer the rival's to replace) or alone (the Part
//! lost): seeds 638 and 751 left six children pending under the yielder for good. So every
//! demotion (a yield, or an update filing an LSN as another's child) is also watched: after
//! [`HANDOVER_AFTER`], the children still pending under the demoted LSN go to the LSN it is
//! filed under now. Bound: [`MAX_ADOPTS`] watched, the oldest dropped first.

use std::{net::SocketAddr, time::Duration};

use super::Master;
use crate::{
    wire::{Adopt, Contact, Message},
    NodeId, Timestamp,
};

/// How long an adoption may take to show in the new LSN's updates before it goes again.
pub(super) const ADOPT_AGAIN: Duration = Duration::from_secs(1);
/// How many times an adoption is sent: at 20 % loss three copies were all lost in 0.8 % of
/// takeovers (cascade sweep seed 993: six children absent for good), five in 0.03 %. Only a
/// failover sends them.
pub(super) const ADOPT_TRIES: u32 = 5;
/// Adoptions in flight at most: one per takeover, so a fleet's worth.
pub(super) const MAX_ADOPTS: usize = 1024;
/// How long a demoted LSN's children may stay unclaimed before its new LSN gets them: long
/// enough for the rival's own reports (its update goes again after 1 s) to claim the
/// children it already has, so that only the forgotten ones move.
pub(super) const HANDOVER_AFTER: Duration = Duration::from_millis(1500);

struct Pending {
    lsn: NodeId,
    adopt: Adopt,
    due: Timestamp,
    tries: u32,
}

/// The adoptions not yet seen carried out, and the demoted LSNs watched.
#[derive(Default)]
pub(super) struct Adopts {
    pending: Vec<Pending>,
    /// Demoted LSNs, with when their unclaimed children are handed over.
    demoted: Vec<(NodeId, Timestamp)>,
}

impl Adopts {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        let watched = self.demoted.iter().map(|(_, due)| *due);
        self.pending.iter().map(|p| p.due).chain(watched).min()
    }
}

impl Master {
    /// Hands `lsn` (at `addr`) the children of the LSN it replaced, and watches for them.
    pub(super) fn send_adopt(&mut self, now: Timestamp, lsn: NodeId, addr: SocketAddr, a: Adopt) {
        if self.adopts.pending.len() >= MAX_ADOPTS {
            self.adopts.pending.remove(0);
        }
        let due = now + ADOPT_AGAIN;
        self.adopts.pending.push(Pending { lsn, adopt: a.clone(), due, tries: 1 });
        // Two copies: the children wait on it, and a lost one costs them `ADOPT_AGAIN`
        // (turmoil cascade seed 47: 1 s of its 6.3). The LSN takes the second as a repeat
        // (`node/adopt.rs`), merged into the same update.
        self.send(now, addr, Message::Adopt(a.clone()));
        self.send(now, addr, Message::Adopt(a));
    }

    /// `yielder` yielded to `better`, which the master filed it under: `better` adopts the
    /// children the master had under the yielder (`theirs`, taken before the yield).
    pub(super) fn adopt_yielded(
        &mut self,
        now: Timestamp,
        yielder: NodeId,
        better: Option<Contact>,
        theirs: Option<Vec<Contact>>,
    ) {
        let (Some(better), Some(children)) = (better, theirs) else { return };
        let Some(addr) = self.reg.lsn_addr(&better.id) else { return };
        if !children.is_empty() {
            self.send_adopt(now, better.id, addr, Adopt { old: yielder, children });
        }
    }

    /// `lsn` was demoted (it now reports to another LSN): its children left unclaimed after
    /// [`HANDOVER_AFTER`] go to that LSN.
    pub(super) fn watch_demoted(&mut self, now: Timestamp, lsn: NodeId) {
        let demoted = &mut self.adopts.demoted;
        demoted.retain(|(id, _)| *id != lsn);
        if demoted.len() >= MAX_ADOPTS {
            demoted.remove(0);
        }
        demoted.push((lsn, now + HANDOVER_AFTER));
    }

    /// Hands the unclaimed children of the demoted LSNs now due to their new LSNs.
    fn hand_over_unclaimed(&mut self, now: Timestamp) {
        let (due, later) = std::mem::take(&mut self.adopts.demoted)
            .into_iter()
            .partition::<Vec<_>, _>(|(_, at)| *at <= now);
        self.adopts.demoted = later;
        for (old, _) in due {
            // Only to the LSN it reports to now, never to itself (registered again: its
            // children are its own).
            let Some((lsn, addr)) = self.reg.next_hop(&old).filter(|(l, _)| *l != old) else {
                continue;
            };
            let children = self.reg.unclaimed_under(&old);
            if !children.is_empty() {
                self.send_adopt(now, lsn, addr, Adopt { old, children });
            }
        }
    }

    /// Sends again the adoptions whose children the new LSN has not reported yet.
    pub(super) fn adopt_timers(&mut self, now: Timestamp) {
        if self.adopts.next_deadline().is_none_or(|t| t > now) {
            return;
        }
        self.hand_over_unclaimed(now);
        let mut again = Vec::new();
        let pending = std::mem::take(&mut self.adopts.pending);
        for mut p in pending {
            if now < p.due {
                self.adopts.pending.push(p);
                continue;
            }
            let Some(addr) = self.reg.lsn_addr(&p.lsn) else { continue };
            let mine = self.reg.children_of(&p.lsn);
            p.adopt.children.retain(|c| !mine.contains(&c.id));
            if p.adopt.children.is_empty() || p.tries >= ADOPT_TRIES {
                continue;
            }
            p.tries += 1;
            p.due = now + ADOPT_AGAIN;
            again.push((addr, p.adopt.clone()));
            self.adopts.pending.push(p);
        }
        for (addr, adopt) in again {
            self.send(now, addr, Message::Adopt(adopt));
        }
    }
}
