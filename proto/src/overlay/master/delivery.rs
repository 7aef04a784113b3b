//! End-to-end application messages from the master: sealed to the node, forwarded hop by hop,
//! acknowledged back; each outcome reported.

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
    /// A request from the outbox (`requests.rs`), whose outcome the outbox handles.
    request: bool,
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
        self.by_seq.insert(seq, p);
    }

    fn take(&mut self, seq: u32) -> Option<Pending> {
        let p = self.by_seq.remove(&seq)?;
        self.deadlines.remove(&(p.deadline, seq));
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
        let p = self.by_seq.remove(&seq)?;
        self.deadlines.remove(&(p.deadline, seq));
        Some(p)
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

    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
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
        self.send_sealed(now, node, id, &message, false)
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
        let cert = self
            .reg
            .certificate(&node)
            .or_else(|| self.ep.peer_certificate(&node))
            .ok_or(DeliveryError::NoCertificate)?;
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
        let pending = Pending { id, node, hop: hop_id, sent: now, deadline, request };
        self.deliveries.insert(seq, pending);
        self.send(now, hop, Message::Forward(Box::new(Forward { seq, to: node, envelope })));
        Ok(())
    }

    /// Polls `node` for presence and round-trip time: an empty message with id 0, which the
    /// node acknowledges without reporting it to its application.
    pub fn poll_node(&mut self, now: Timestamp, node: NodeId) -> Result<(), DeliveryError> {
        self.send_message(now, node, 0, &[])
    }
}
