//! End-to-end application messages from the master: sealed to the node, forwarded hop by hop,
//! acknowledged back; each outcome reported.
//!
//! A message not acknowledged within [`RESEND_EVERY`] goes again, the same envelope along the
//! node's current path, until its deadline: one lost datagram on any of the four hops (master,
//! LSN, node and back) no longer fails it. The node takes the envelope once and acknowledges
//! every copy (`node/child.rs`, `deliver`).

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use super::Master;
use crate::{
    secure::seal_envelope,
    wire::{self, AppMessage, Forward, Message},
    NodeId, Timestamp,
};

/// How long the master waits for a delivery's Ack before it sends the message again. An Ack
/// over a healthy path takes a few round trips of milliseconds; a second is a lost datagram.
pub(crate) const RESEND_EVERY: Duration = Duration::from_secs(1);

/// The application's id of a message (its choice; 0 is reserved for presence polls).
pub type DeliveryId = u64;

/// Why an application message was not delivered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The node is not present.
    #[error("node is not present")]
    NotPresent,
    /// The master has no certificate for the node, so it cannot seal a message to it.
    #[error("no certificate known for the node")]
    NoCertificate,
    /// The message does not fit a frame.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// The LSN does not know the node any more.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// The node refused the message (it could not open or decode it).
    #[error("node refused the message: {0}")]
    Refused(String),
    /// No acknowledgement within the delivery timeout.
    #[error("no acknowledgement in time")]
    Timeout,
}

struct Pending {
    id: DeliveryId,
    node: NodeId,
    /// The LSN (or the node itself) we handed the message to: the only peer whose Ack or
    /// Error settles it (sequence numbers are guessable).
    hop: NodeId,
    sent: Timestamp,
    deadline: Timestamp,
    /// When it goes again if no Ack came.
    resend_at: Timestamp,
    /// A request from the outbox (`requests.rs`), whose outcome the outbox handles.
    request: bool,
    /// The message as sent, for the copies.
    forward: Forward,
}

/// A settled delivery: its id, recipient, and whether it carried an outbox request.
pub(super) struct Settled {
    pub(super) id: DeliveryId,
    pub(super) node: NodeId,
    pub(super) request: bool,
}

#[derive(Default)]
pub(super) struct Deliveries {
    by_seq: HashMap<u32, Pending>,
    deadlines: BTreeSet<(Timestamp, u32)>,
    resends: BTreeSet<(Timestamp, u32)>,
    /// The last envelope stamp used.
    stamp: u64,
}

impl Deliveries {
    /// A stamp for the next envelope: the clock in microseconds, past the last one, so each is
    /// unique and they increase across restarts too (the nodes refuse a stamp twice).
    fn next_stamp(&mut self, now: Timestamp) -> u64 {
        self.stamp = now.as_micros().max(self.stamp + 1);
        self.stamp
    }

    fn insert(&mut self, seq: u32, p: Pending) {
        self.deadlines.insert((p.deadline, seq));
        self.resends.insert((p.resend_at, seq));
        self.by_seq.insert(seq, p);
    }

    fn take(&mut self, seq: u32) -> Option<Pending> {
        let p = self.by_seq.remove(&seq)?;
        self.deadlines.remove(&(p.deadline, seq));
        self.resends.remove(&(p.resend_at, seq));
        Some(p)
    }

    /// Whether delivery `seq` is pending and `peer` is not the hop it went to.
    pub(super) fn wrong_hop(&self, peer: &NodeId, seq: u32) -> bool {
        self.by_seq.get(&seq).is_some_and(|p| p.hop != *peer)
    }

    /// The delivery `seq`, removed, if `peer` is the hop it went to.
    fn answered(&mut self, peer: &NodeId, seq: u32) -> Option<Pending> {
        if self.by_seq.get(&seq).is_none_or(|p| p.hop != *peer) {
            return None;
        }
        self.take(seq)
    }

    pub(super) fn acked(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        seq: u32,
    ) -> Option<(Settled, Duration)> {
        self.answered(peer, seq).map(|p| {
            let rtt = now.saturating_since(p.sent);
            (Settled { id: p.id, node: p.node, request: p.request }, rtt)
        })
    }

    pub(super) fn failed(&mut self, peer: &NodeId, seq: u32) -> Option<Settled> {
        self.answered(peer, seq).map(|p| Settled { id: p.id, node: p.node, request: p.request })
    }

    pub(super) fn expire(&mut self, now: Timestamp) -> Vec<Settled> {
        let mut out = Vec::new();
        while let Some(&(deadline, seq)) = self.deadlines.first() {
            if now < deadline {
                break;
            }
            if let Some(p) = self.take(seq) {
                out.push(Settled { id: p.id, node: p.node, request: p.request });
            }
        }
        out
    }

    /// The deliveries whose copy is due at `now` (and before their deadline): each is
    /// rescheduled [`RESEND_EVERY`] later.
    fn due(&mut self, now: Timestamp) -> Vec<(u32, NodeId)> {
        let mut out = Vec::new();
        while let Some(&(at, seq)) = self.resends.first() {
            if now < at {
                break;
            }
            self.resends.pop_first();
            if let Some(p) = self.by_seq.get_mut(&seq) {
                p.resend_at = now + RESEND_EVERY;
                if p.resend_at < p.deadline {
                    self.resends.insert((p.resend_at, seq));
                }
                out.push((seq, p.node));
            }
        }
        out
    }

    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        let resend = self.resends.first().map(|(t, _)| *t);
        self.deadlines.first().map(|(t, _)| *t).into_iter().chain(resend).min()
    }
}

impl Master {
    /// Sends `data` to `node`, sealed end to end (its LSN forwards it but cannot read or alter
    /// it). The outcome arrives as [`MasterEvent::Delivered`](super::MasterEvent::Delivered) or
    /// [`MasterEvent::DeliveryFailed`](super::MasterEvent::DeliveryFailed) with `id`.
    pub fn send_message(
        &mut self,
        now: Timestamp,
        node: NodeId,
        id: DeliveryId,
        data: &[u8],
    ) -> Result<(), super::DeliveryError> {
        let message = Message::App(AppMessage { id, data: data.to_vec() });
        match self.send_sealed(now, node, id, &message, false) {
            // Present, and its certificate asked for: the message waits for it.
            Err(DeliveryError::NoCertificate) => {
                self.wait_for_certificate(now, node, id, data.to_vec())
            }
            sent => sent,
        }
    }

    /// Seals `message` to `node` and hands it to the node's LSN as delivery `id`.
    pub(super) fn send_sealed(
        &mut self,
        now: Timestamp,
        node: NodeId,
        id: DeliveryId,
        message: &Message,
        request: bool,
    ) -> Result<(), DeliveryError> {
        let (hop_id, hop) = self.reg.next_hop(&node).ok_or(DeliveryError::NotPresent)?;
        let Some(cert) = self.reg.certificate(&node).or_else(|| self.ep.peer_certificate(&node))
        else {
            self.ask_certificates(now, hop_id);
            return Err(DeliveryError::NoCertificate);
        };
        let x25519 = cert.body.x25519;
        let mut frame = Vec::new();
        wire::encode(message, &mut frame).map_err(|e| DeliveryError::TooLarge(e.to_string()))?;
        let identity = self.ep.identity().clone();
        let network = *self.ep.trust().network();
        let stamp = self.deliveries.next_stamp(now);
        let envelope =
            seal_envelope(&identity, &network, node, &x25519, stamp, &frame, self.ep.rng())
                .map_err(|_| DeliveryError::NoCertificate)?;
        let seq = self.next_seq();
        let deadline = now + self.cfg.delivery_timeout;
        let forward = Forward { seq, to: node, envelope };
        let resend_at = now + RESEND_EVERY;
        let pending =
            Pending { id, node, hop: hop_id, sent: now, deadline, resend_at, request, forward };
        let message = Message::Forward(Box::new(pending.forward.clone()));
        self.deliveries.insert(seq, pending);
        self.send(now, hop, message);
        Ok(())
    }

    /// Sends again every delivery whose Ack is overdue, along the node's path as it is now
    /// (the Ack must then come from the new hop). A node without a path keeps its delivery
    /// waiting for one until the deadline.
    pub(super) fn resend_deliveries(&mut self, now: Timestamp) {
        for (seq, node) in self.deliveries.due(now) {
            let Some((hop_id, hop)) = self.reg.next_hop(&node) else { continue };
            let Some(p) = self.deliveries.by_seq.get_mut(&seq) else { continue };
            p.hop = hop_id;
            let message = Message::Forward(Box::new(p.forward.clone()));
            self.send(now, hop, message);
        }
    }

    /// Polls `node` for presence and round-trip time: an empty message with id 0, which the
    /// node acknowledges without reporting it to its application.
    pub fn poll_node(&mut self, now: Timestamp, node: NodeId) -> Result<(), DeliveryError> {
        self.send_message(now, node, 0, &[])
    }
}
