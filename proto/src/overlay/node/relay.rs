//! (LSN) Relaying the master's sealed messages to children, and their answers back.
//!
//! A message for us may come from anyone: the envelope inside is the master's, signed and
//! stamped against replay (`child.rs`, `deliver`). Only the master may ask us to relay: a Forward from anyone else is refused, so a certified
//! node cannot make an LSN carry its traffic or fill the relay table. The child's Ack or Error
//! travels back only if it comes from the child the message went to (the sequence numbers
//! are guessable). The table is bounded by [`MAX_RELAYS`]; beyond it a Forward is refused
//! and the master reports the delivery failed, as for an unreachable child.

use std::{net::SocketAddr, time::Duration};

use super::Node;
use crate::{
    wire::{Ack, ErrorCode, ErrorMessage, Forward, Message},
    NodeId, Timestamp,
};

/// How long the LSN keeps track of a forwarded message awaiting the child's Ack.
pub(super) const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most relayed messages awaiting their child's answer at once.
pub(crate) const MAX_RELAYS: usize = 4096;

/// A relayed message awaiting the child's answer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Relay {
    /// The master's sequence number, for the answer.
    upstream: u32,
    /// Where the master's Forward came from.
    from: SocketAddr,
    /// The peer we sent it to (the child, or the master for a child's report): the only
    /// peer whose answer counts.
    child: NodeId,
    /// When we give up waiting.
    pub(super) deadline: Timestamp,
}

impl Node {
    /// (LSN) Relayed messages awaiting their child's answer.
    #[cfg(test)]
    pub(crate) fn relays_pending(&self) -> usize {
        self.role.as_ref().map_or(0, |r| r.forwards.len())
    }

    /// Routes a Forward: to us, to a child, or back as unreachable.
    pub(super) fn on_forward(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        f: Forward,
    ) {
        if f.to == self.node_id() {
            // Any carrier will do: the envelope is the master's, signed and stamped
            // (`deliver`), and a new LSN forwards to an adopted child before the child has
            // heard of the takeover.
            return self.deliver(now, addr, f);
        }
        if peer != self.master_id() {
            return self.refuse_forward(now, peer, addr, f.seq, "only the master may relay");
        }
        let child_addr = self.role.as_ref().and_then(|r| r.children.get(&f.to)).map(|c| c.addr);
        self.hurry_adopted(now, &f.to);
        let Some(child_addr) = child_addr else {
            return self.reply_error(
                now,
                addr,
                f.seq,
                ErrorCode::UNREACHABLE,
                "not a child of this LSN",
            );
        };
        if self.role.as_ref().is_some_and(|r| r.forwards.len() >= MAX_RELAYS) {
            return self.reply_error(now, addr, f.seq, ErrorCode::UNREACHABLE, "LSN relay full");
        }
        let seq = self.next_seq();
        let relay =
            Relay { upstream: f.seq, from: addr, child: f.to, deadline: now + FORWARD_TIMEOUT };
        if let Some(role) = self.role.as_mut() {
            role.forwards.insert(seq, relay);
        }
        self.send(now, child_addr, Message::Forward(Box::new(Forward { seq, ..f })));
    }

    /// Remembers a child's report relayed to `to` (the master) as our `seq`, so that the
    /// master's answer goes back to the child (at `from`) as its `upstream`.
    pub(super) fn relay_upwards(
        &mut self,
        now: Timestamp,
        seq: u32,
        upstream: u32,
        from: SocketAddr,
        to: NodeId,
    ) {
        let relay = Relay { upstream, from, child: to, deadline: now + FORWARD_TIMEOUT };
        if let Some(role) = self.role.as_mut() {
            role.forwards.insert(seq, relay);
        }
    }

    fn refuse_forward(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        seq: u32,
        why: &str,
    ) {
        self.refusals.relay += 1;
        tracing::debug!(?peer, why, "forward refused");
        self.reply_error(now, addr, seq, ErrorCode::REFUSED, why);
    }

    /// The relay `seq` awaiting `peer`'s answer, removed; None if there is none or another
    /// peer answers.
    fn take_relay(&mut self, peer: NodeId, seq: u32) -> Option<Relay> {
        let role = self.role.as_mut()?;
        let relay = role.forwards.get(&seq)?;
        if relay.child != peer {
            self.refusals.answer += 1;
            return None;
        }
        let relay = *relay;
        role.forwards.remove(&seq);
        Some(relay)
    }

    pub(super) fn on_ack(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, seq: u32) {
        if self.find_ack(now, peer, addr, seq)
            || self.uplink_ack(now, peer, seq)
            || self.report_ack(peer, seq)
            || self.fleet_ack(peer, seq)
            || self.query_ack(peer, seq)
        {
            return;
        }
        self.relay_ack(now, peer, seq);
    }

    /// `peer`'s Ack of relayed message `seq`, passed back to where it came from.
    pub(super) fn relay_ack(&mut self, now: Timestamp, peer: NodeId, seq: u32) {
        if let Some(r) = self.take_relay(peer, seq) {
            self.send(now, r.from, Message::Ack(Ack { seq: r.upstream }));
        }
    }

    pub(super) fn on_lsn_error(&mut self, now: Timestamp, peer: NodeId, error: ErrorMessage) {
        if let Some(r) = self.take_relay(peer, error.seq) {
            let relayed = ErrorMessage { seq: r.upstream, ..error };
            return self.send(now, r.from, Message::Error(relayed));
        }
        if self.report_error(now, peer, &error)
            || self.inventory_error(peer, &error)
            || self.inventory_batch_error(now, peer, error.seq, error.code)
            || self.fleet_copy_answered(peer, error.seq, error.code)
        {
            return;
        }
        if error.code == ErrorCode::NOT_ADMITTED && peer == self.master_id() {
            // The master dropped us (another node reported us dead, or it restarted): register
            // again; a duplicate LSN is then settled as in `rival.rs`.
            return self.uplink_register(now);
        }
        tracing::debug!(?peer, code = error.code.0, detail = %error.detail, "error from peer");
    }
}
