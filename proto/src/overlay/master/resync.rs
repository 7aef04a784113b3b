//! Asking an LSN for its whole child list (`Resync`) when the master's view of it may be
//! wrong, retried until answered.
//!
//! Besides a digest mismatch (`check_digest`, on an update or a keepalive), the master asks
//! after the events that move an LSN's children away at the master but not on the LAN (issue
//! 19, 20 % loss):
//! * a standby's takeover report named an LSN that then proved alive: the standby's adoption
//!   moved that LSN's children, and those that stayed with it are reported by nobody;
//! * an LSN yielded to another, or joined it as a child: its children wait for the one it
//!   yielded to, which never reports those that never left it.
//!
//! Without this, such children stayed absent until the LSN's next digest (10 minutes) while
//! attached to a live LSN. Each costs one Resync and one list over the WAN, only after such
//! an event: no periodic traffic.

use std::{collections::BTreeMap, time::Duration};

use super::{DeliveryError, DeliveryId, Master, MasterEvent};
use crate::{
    overlay::child_digest,
    wire::{AppMessage, Digest, Message, NodeList, Part, PartReason, Pong, Resync},
    NodeId, Timestamp,
};

/// How long a Resync waits for its answer before it is sent again.
const RESYNC_RETRY: Duration = Duration::from_secs(2);
/// How many times a Resync is sent (at 20 % loss each way all three round trips fail 5 %).
const RESYNC_TRIES: u32 = 3;
/// Most Resyncs in flight: one per LSN, so a fleet's worth; the oldest go first beyond it.
const MAX_RESYNCS: usize = 1024;

/// One Resync in flight.
struct Pending {
    seq: u32,
    lsn: NodeId,
    /// When it is sent again (or given up).
    due: Timestamp,
    tries: u32,
}

/// At most one Resync per LSN this often for a certificate we lack.
const CERTS_ASK_EVERY: Duration = Duration::from_secs(60);

/// Most messages waiting for a certificate; beyond it a message fails at once.
const MAX_WAITING: usize = 1024;

/// An application message to a present node whose certificate we lack, waiting for it.
struct Waiting {
    node: NodeId,
    id: DeliveryId,
    data: Vec<u8>,
    /// When it fails if the certificate has not come.
    until: Timestamp,
}

/// The Resyncs in flight, at most one per LSN.
#[derive(Default)]
pub(super) struct Resyncs {
    pending: Vec<Pending>,
    /// LSNs asked because a child's certificate was missing: until when not again (at most
    /// [`MAX_RESYNCS`]).
    certs_asked: BTreeMap<NodeId, Timestamp>,
    /// Messages waiting for the certificates asked for (at most [`MAX_WAITING`]).
    waiting: Vec<Waiting>,
}

impl Resyncs {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        let waiting = self.waiting.iter().map(|w| w.until);
        self.pending.iter().map(|p| p.due).chain(waiting).min()
    }
}

impl Master {
    /// Asks `lsn` for its child list, unless a request to it is already in flight.
    pub(super) fn resync(&mut self, now: Timestamp, lsn: NodeId) {
        if self.resyncs.pending.iter().any(|p| p.lsn == lsn) || !self.reg.is_lsn(&lsn) {
            return;
        }
        if self.resyncs.pending.len() >= MAX_RESYNCS {
            self.resyncs.pending.remove(0);
        }
        let seq = self.next_seq();
        self.resyncs.pending.push(Pending { seq, lsn, due: now + RESYNC_RETRY, tries: 1 });
        self.send_resync(now, &lsn, seq);
    }

    /// We could not seal to a present child of `lsn`: its certificate travelled from the LSN
    /// unacknowledged and was lost (20 % loss; or a master restart lost what it had not
    /// stored). The LSN answers a Resync by sending its children's certificates again
    /// (`node/lsn.rs`), so one is sent, at most once per [`CERTS_ASK_EVERY`] per LSN.
    pub(super) fn ask_certificates(&mut self, now: Timestamp, lsn: NodeId) {
        let asked = &mut self.resyncs.certs_asked;
        asked.retain(|_, until| *until > now);
        if asked.contains_key(&lsn) || asked.len() >= MAX_RESYNCS {
            return;
        }
        asked.insert(lsn, now + CERTS_ASK_EVERY);
        self.resync(now, lsn);
    }

    /// A message to present `node` could not be sealed: its certificate, asked from its LSN
    /// (`ask_certificates`), is on its way. The message waits for it up to the delivery
    /// timeout, then fails. Before, it failed at once (turmoil cascade seed 48: a poll of a
    /// present child, "no certificate known for the node").
    pub(super) fn wait_for_certificate(
        &mut self,
        now: Timestamp,
        node: NodeId,
        id: DeliveryId,
        data: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        if self.resyncs.waiting.len() >= MAX_WAITING {
            return Err(DeliveryError::NoCertificate);
        }
        let until = now + self.cfg.delivery_timeout;
        self.resyncs.waiting.push(Waiting { node, id, data, until });
        Ok(())
    }

    /// Test hook: as if `node`'s certificate had never reached us.
    #[cfg(test)]
    pub(crate) fn forget_certificate(&mut self, node: &NodeId) {
        self.reg.forget_certificate(node);
    }

    /// `node`'s certificate came: the messages waiting for it go.
    pub(super) fn certificate_came(&mut self, now: Timestamp, node: NodeId) {
        let (ready, rest) = std::mem::take(&mut self.resyncs.waiting)
            .into_iter()
            .partition::<Vec<_>, _>(|w| w.node == node);
        self.resyncs.waiting = rest;
        for w in ready {
            let message = Message::App(AppMessage { id: w.id, data: w.data });
            if let Err(error) = self.send_sealed(now, node, w.id, &message, false) {
                self.events.push_back(MasterEvent::DeliveryFailed { id: w.id, node, error });
            }
        }
    }

    /// `lsn`'s child-set digest (on an update or a keepalive): asks for its list when ours
    /// differs.
    pub(super) fn check_digest(&mut self, now: Timestamp, lsn: NodeId, digest: Digest) {
        let ours = child_digest(self.reg.children_of(&lsn).iter());
        if ours != digest {
            tracing::debug!(?lsn, ?ours, theirs = ?digest, "digest mismatch: resync");
            self.resync(now, lsn);
        }
    }

    /// An LSN parted (left, or yielded to a rival it names).
    pub(super) fn on_part(&mut self, now: Timestamp, peer: NodeId, p: Part) {
        self.vouched(&peer, &p);
        let better = p.better_lsn.filter(|_| p.reason == PartReason::Yield);
        let theirs = better.and_then(|b| self.reg.replaced_children(&b.id, &peer));
        let events = match better.and_then(|b| self.reg.yielded(now, &peer, &b.id, &self.cfg)) {
            Some(events) => {
                self.adopt_yielded(now, peer, better, theirs);
                events
            }
            None => self.reg.lsn_parted(now, &peer, p.reason, &self.cfg),
        };
        if p.reason == PartReason::Yield {
            // Filed under its rival now or by the rival's next update.
            self.watch_demoted(now, peer);
        }
        self.presence(events);
        self.yielded_to(now, &p);
    }

    /// Whether `pong` from `peer`, registered as an LSN without children, names another
    /// registered LSN as its own: it yielded and joined that one, and a registration the loss
    /// had delayed filed it as an LSN again after the rival reported it (cascade sweep at
    /// 20 % loss, seed 532: the master kept it as an LSN, absent from the rival's subnet, for
    /// good). It speaks only for itself, as a Part would. An LSN with children waits for its
    /// own Part, which hands them over (`adopt_yielded`).
    pub(super) fn demoted_by_pong(&self, peer: &NodeId, pong: &Pong) -> bool {
        pong.lsn.is_some_and(|l| l.id != *peer && self.reg.is_lsn(&l.id))
            && self.reg.is_lsn(peer)
            && !self.reg.has_any_under(peer)
    }

    /// An LSN parted naming the one it yielded to: that one is asked for its children.
    pub(super) fn yielded_to(&mut self, now: Timestamp, part: &Part) {
        if let Some(better) = part.better_lsn.filter(|_| part.reason == PartReason::Yield) {
            self.resync(now, better.id);
        }
    }

    /// Resends the Resyncs whose answer is late; gives up after [`RESYNC_TRIES`].
    pub(super) fn resync_timers(&mut self, now: Timestamp) {
        let (late, waiting) = std::mem::take(&mut self.resyncs.waiting)
            .into_iter()
            .partition::<Vec<_>, _>(|w| now >= w.until);
        self.resyncs.waiting = waiting;
        for w in late {
            let (id, node, error) = (w.id, w.node, DeliveryError::NoCertificate);
            self.events.push_back(MasterEvent::DeliveryFailed { id, node, error });
        }
        let mut again = Vec::new();
        self.resyncs.pending.retain_mut(|p| {
            if now < p.due {
                return true;
            }
            if p.tries >= RESYNC_TRIES {
                return false;
            }
            p.tries += 1;
            p.due = now + RESYNC_RETRY;
            again.push((p.lsn, p.seq));
            true
        });
        for (lsn, seq) in again {
            self.send_resync(now, &lsn, seq);
        }
    }

    fn send_resync(&mut self, now: Timestamp, lsn: &NodeId, seq: u32) {
        if let Some(addr) = self.reg.lsn_addr(lsn) {
            self.send(now, addr, Message::Resync(Resync { seq }));
        }
    }

    /// An LSN's child list, answering our Resync.
    pub(super) fn on_resync_answer(&mut self, now: Timestamp, peer: NodeId, list: NodeList) {
        let Some(pos) =
            self.resyncs.pending.iter().position(|p| p.seq == list.seq && p.lsn == peer)
        else {
            return;
        };
        self.resyncs.pending.remove(pos);
        let events = self.reg.resync(now, &peer, &list.nodes, &self.cfg);
        self.presence(events);
    }
}
