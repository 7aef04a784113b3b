//! Bulk transfers between peers ([`Node::send_bulk`]): a payload of up to
//! [`OverlayConfig::bulk_max`](crate::overlay::OverlayConfig::bulk_max) bytes, delivered whole
//! and once as [`NodeEvent::BulkReceived`], or failed with a typed [`BulkError`].
//!
//! The chunks travel on the peers' session, so a transfer goes wherever the session runs:
//! direct, or relayed through a GSN when hole punching failed (`gsn.rs`). When a direct
//! session replaces the relayed one mid-transfer, chunks still on the relay arrive on the old
//! session and later ones on the new; any lost in the switch are sent again (`send.rs`), and
//! the receiver puts every chunk in its place, once (`recv.rs`).
//!
//! Authorization (docs/AUTHORIZATION.md): any certified peer with a session may send us a
//! transfer, within our bounds ([`MAX_INCOMING`] at once, [`MAX_INCOMING_PER_PEER`] per
//! peer, [`MAX_INCOMING_BYTES`] announced in all, each at most `bulk_max`); beyond them it is
//! refused with a [`BulkStop`]. Acknowledgements and stops count only from the peer the
//! transfer goes to.

mod recv;
mod send;

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
};

use rand_core::RngCore;

pub use self::recv::{ACK_DELAY, IDLE as INCOMING_IDLE};
pub use self::send::{INITIAL_WINDOW, STALL, WINDOW};
use self::{recv::Incoming, send::Outgoing};
use super::{Node, NodeEvent};
use crate::{
    wire::{BulkAck, BulkChunk, BulkStop, Message},
    NodeId, Timestamp,
};

/// Our transfers under way at once.
pub const MAX_OUTGOING: usize = 64;
/// Transfers we receive at once, from all peers.
pub const MAX_INCOMING: usize = 16;
/// Transfers we receive at once from one peer.
pub const MAX_INCOMING_PER_PEER: usize = 4;
/// The announced lengths of the transfers we receive at once, together.
pub const MAX_INCOMING_BYTES: u64 = 256 * 1024 * 1024;
/// The largest chunk: one with its headers still fits a frame relayed through a GSN
/// ([`MAX_RELAY_BYTES`](crate::wire::MAX_RELAY_BYTES), less a session's own overhead).
pub const MAX_CHUNK: u32 = crate::wire::MAX_RELAY_BYTES as u32 - 256;
/// Finished incoming transfers remembered, to acknowledge a late chunk of one again.
const MAX_FINISHED: usize = 256;
/// The longest reason a [`BulkStop`] carries.
const MAX_REASON: usize = 200;

/// Why a bulk transfer failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BulkError {
    /// Nothing to send.
    #[error("empty payload")]
    Empty,
    /// Larger than a chunk size this small can cut, or than the chunk size allows.
    #[error("payload of {len} bytes is too large (at most {max})")]
    TooLarge {
        /// Its length.
        len: u64,
        /// The most we send.
        max: u64,
    },
    /// A transfer of ours with this id is under way.
    #[error("a transfer with this id is under way")]
    DuplicateId,
    /// [`MAX_OUTGOING`] transfers are under way.
    #[error("{max} transfers under way already")]
    Busy {
        /// The bound.
        max: usize,
    },
    /// The peer refused it or gave up on it.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// No chunk was acknowledged for [`STALL`] (the peer unreachable or gone).
    #[error("no progress for {}s", STALL.as_secs())]
    Stalled,
}

/// What this node's bulk transfers did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BulkStats {
    /// Chunks sent, first copies and retransmissions.
    pub chunks_sent: u64,
    /// Chunks sent again (deemed lost).
    pub chunks_resent: u64,
    /// Chunks received, duplicates included.
    pub chunks_received: u64,
    /// Our transfers every chunk of which was acknowledged.
    pub sent: u64,
    /// Transfers received whole.
    pub received: u64,
    /// Our transfers that failed.
    pub failed: u64,
    /// Transfers we refused (bounds, size, switched off) or dropped as idle.
    pub refused: u64,
    /// Chunks that did not fit their transfer, and acknowledgements and stops from another
    /// peer than the transfer's (late ones for a finished transfer are not counted).
    pub ignored: u64,
}

/// Transfers under way (created at the first one: most nodes never send or receive any).
#[derive(Debug, Default)]
pub(super) struct Bulk {
    out: BTreeMap<u64, Outgoing>,
    inc: BTreeMap<(NodeId, u64), Incoming>,
    /// Finished incoming transfers: their chunk count, `None` if refused.
    finished: VecDeque<((NodeId, u64), Option<u32>)>,
    stats: BulkStats,
}

impl Node {
    /// Sends `data` to `peer` (reached at `addr` if no session stands: a DHT contact, say),
    /// reliably and in order, on whatever path the session runs. Returns the transfer's id;
    /// the outcome comes as [`NodeEvent::BulkSent`] or [`NodeEvent::BulkFailed`].
    pub fn send_bulk(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        data: Vec<u8>,
    ) -> Result<u64, BulkError> {
        let id = loop {
            let id = self.ep.rng().next_u64();
            if !self.bulk.as_ref().is_some_and(|b| b.out.contains_key(&id)) {
                break id;
            }
        };
        self.send_bulk_as(now, id, peer, addr, data).map(|()| id)
    }

    /// [`send_bulk`](Self::send_bulk) under the caller's `id` (which should be random: see
    /// [`NodeCommand::SendBulk`](super::NodeCommand::SendBulk)).
    pub fn send_bulk_as(
        &mut self,
        now: Timestamp,
        id: u64,
        peer: NodeId,
        addr: SocketAddr,
        data: Vec<u8>,
    ) -> Result<(), BulkError> {
        let chunk = self.cfg.bulk_chunk.clamp(1, MAX_CHUNK);
        let max = u64::from(chunk) * u64::from(u32::MAX - 1);
        if data.is_empty() {
            return Err(BulkError::Empty);
        }
        if data.len() as u64 > max {
            return Err(BulkError::TooLarge { len: data.len() as u64, max });
        }
        let bulk = self.bulk.get_or_insert_with(Box::default);
        if bulk.out.len() >= MAX_OUTGOING {
            return Err(BulkError::Busy { max: MAX_OUTGOING });
        }
        if bulk.out.contains_key(&id) {
            return Err(BulkError::DuplicateId);
        }
        bulk.out.insert(id, Outgoing::new(now, peer, addr, data, chunk));
        if self.ep.is_connected(&peer) {
            self.bulk_flush(now, id);
        } else {
            self.reach(now, peer, addr);
        }
        Ok(())
    }

    /// What bulk transfers did so far.
    pub fn bulk_stats(&self) -> BulkStats {
        self.bulk.as_ref().map_or_else(BulkStats::default, |b| b.stats)
    }

    /// Sends what transfer `id`'s window allows.
    fn bulk_flush(&mut self, now: Timestamp, id: u64) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        let Some(o) = bulk.out.get_mut(&id) else { return };
        let peer = o.peer;
        if !self.ep.is_connected(&peer) {
            // The session went (idled out, the peer restarted, a path died for good): the
            // retransmission timer opens another, as the first chunk's send did.
            let addr = o.addr;
            if !self.ep.is_dialing(addr) {
                self.open_to(now, peer, addr);
            }
            return;
        }
        let before = o.resent;
        while let Some(c) = o.next_chunk(now, id) {
            bulk.stats.chunks_sent += 1;
            if let Err(error) = self.ep.send(now, &peer, &Message::BulkChunk(Box::new(c))) {
                // Counted as lost: the retransmission timer sends it again.
                tracing::debug!(?peer, %error, "bulk chunk not sent");
                break;
            }
        }
        bulk.stats.chunks_resent += o.resent - before;
    }

    /// Whether a transfer to or from `peer` is under way.
    pub(super) fn bulk_with(&self, peer: &NodeId) -> bool {
        self.bulk.as_ref().is_some_and(|b| {
            b.out.values().any(|o| o.peer == *peer) || b.inc.keys().any(|(p, _)| p == peer)
        })
    }

    /// A session with `peer` came up: its transfers start.
    pub(super) fn bulk_connected(&mut self, now: Timestamp, peer: NodeId) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        let ids: Vec<u64> = bulk
            .out
            .iter_mut()
            .filter(|(_, o)| o.peer == peer)
            .map(|(id, o)| {
                o.started(now);
                *id
            })
            .collect();
        for id in ids {
            self.bulk_flush(now, id);
        }
    }

    pub(super) fn on_bulk_chunk(&mut self, now: Timestamp, peer: NodeId, c: BulkChunk) {
        let max = self.cfg.bulk_max;
        let bulk = self.bulk.get_or_insert_with(Box::default);
        bulk.stats.chunks_received += 1;
        let key = (peer, c.id);
        if let Some(&(_, done)) = bulk.finished.iter().find(|(k, _)| *k == key) {
            let m = match done {
                Some(next) => {
                    Message::BulkAck(Box::new(BulkAck { id: c.id, next, ranges: vec![] }))
                }
                None => Message::BulkStop(BulkStop { id: c.id, reason: "refused".into() }),
            };
            return self.bulk_reply(now, peer, m);
        }
        if !bulk.inc.contains_key(&key) {
            let refusal = if max == 0 {
                Some("bulk transfers switched off".to_string())
            } else if c.total > max {
                Some(format!("{} bytes, the most we take is {max}", c.total))
            } else if bulk.inc.len() >= MAX_INCOMING
                || bulk.inc.keys().filter(|(p, _)| *p == peer).count() >= MAX_INCOMING_PER_PEER
                || bulk.inc.values().map(Incoming::total).sum::<u64>() + c.total
                    > MAX_INCOMING_BYTES
            {
                Some("too many transfers at once".to_string())
            } else {
                None
            };
            if let Some(reason) = refusal {
                bulk.stats.refused += 1;
                Self::bulk_finish(bulk, key, None);
                return self.bulk_reply(
                    now,
                    peer,
                    Message::BulkStop(BulkStop { id: c.id, reason }),
                );
            }
        }
        let took = match bulk.inc.get_mut(&key) {
            Some(t) => t.on_chunk(now, c),
            // A transfer begins only with a chunk that fits it: a malformed first one holds
            // no place.
            None => match Incoming::new(now, &c) {
                Ok(mut t) => {
                    let took = t.on_chunk(now, c);
                    if took.is_ok() {
                        bulk.inc.insert(key, t);
                    }
                    took
                }
                Err(e) => Err(e),
            },
        };
        let Some(t) = bulk.inc.get_mut(&key) else {
            bulk.stats.ignored += 1;
            return;
        };
        let ack_now = match took {
            Err(_) => {
                bulk.stats.ignored += 1;
                false
            }
            Ok(recv::Took::New { ack_now }) => ack_now,
            Ok(recv::Took::Again) => true,
            Ok(recv::Took::Beyond) => false,
        };
        if !ack_now {
            return;
        }
        let ack = t.ack(key.1);
        if t.is_complete() {
            let t = bulk.inc.remove(&key).expect("present");
            bulk.stats.received += 1;
            Self::bulk_finish(bulk, key, Some(ack.next));
            self.events.push_back(NodeEvent::BulkReceived { peer, id: key.1, data: t.into_data() });
        }
        self.bulk_reply(now, peer, Message::BulkAck(Box::new(ack)));
    }

    fn bulk_finish(bulk: &mut Bulk, key: (NodeId, u64), done: Option<u32>) {
        if bulk.finished.len() >= MAX_FINISHED {
            bulk.finished.pop_front();
        }
        bulk.finished.push_back((key, done));
    }

    fn bulk_reply(&mut self, now: Timestamp, peer: NodeId, m: Message) {
        if let Err(error) = self.ep.send(now, &peer, &m) {
            tracing::debug!(?peer, %error, "bulk answer not sent");
        }
    }

    pub(super) fn on_bulk_ack(&mut self, now: Timestamp, peer: NodeId, a: BulkAck) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        let Some(o) = bulk.out.get_mut(&a.id) else { return };
        if o.peer != peer {
            bulk.stats.ignored += 1;
            return;
        }
        if !o.on_ack(now, &a) {
            return;
        }
        if o.is_done() {
            bulk.out.remove(&a.id);
            bulk.stats.sent += 1;
            self.events.push_back(NodeEvent::BulkSent { peer, id: a.id });
            return;
        }
        self.bulk_flush(now, a.id);
    }

    pub(super) fn on_bulk_stop(&mut self, peer: NodeId, s: BulkStop) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        // A late answer to a finished transfer is no one's fault; another peer's is.
        match bulk.out.get(&s.id) {
            None => return,
            Some(o) if o.peer != peer => {
                bulk.stats.ignored += 1;
                return;
            }
            Some(_) => {}
        }
        bulk.out.remove(&s.id);
        bulk.stats.failed += 1;
        let reason: String = s.reason.chars().take(MAX_REASON).collect();
        self.events.push_back(NodeEvent::BulkFailed {
            peer,
            id: s.id,
            error: BulkError::Refused(reason),
        });
    }

    pub(super) fn bulk_deadline(&self) -> Option<Timestamp> {
        let bulk = self.bulk.as_ref()?;
        let out = bulk.out.values().map(Outgoing::deadline);
        let inc = bulk.inc.values().map(|t| t.ack_due.unwrap_or(t.heard + INCOMING_IDLE));
        out.chain(inc).min()
    }

    pub(super) fn bulk_timers(&mut self, now: Timestamp) {
        let Some(bulk) = self.bulk.as_mut() else { return };
        let mut acks = Vec::new();
        let mut idle = Vec::new();
        for (key, t) in bulk.inc.iter_mut() {
            if t.ack_due.is_some_and(|d| d <= now) {
                acks.push((key.0, Message::BulkAck(Box::new(t.ack(key.1)))));
            } else if t.heard + INCOMING_IDLE <= now {
                idle.push(*key);
            }
        }
        for key in idle {
            bulk.inc.remove(&key);
            bulk.stats.refused += 1;
            Self::bulk_finish(bulk, key, None);
        }
        let due: Vec<u64> =
            bulk.out.iter().filter(|(_, o)| o.deadline() <= now).map(|(id, _)| *id).collect();
        let mut flush = Vec::new();
        for id in due {
            let o = bulk.out.get_mut(&id).expect("due");
            if o.on_timeout(now) {
                flush.push(id);
                continue;
            }
            let peer = o.peer;
            bulk.out.remove(&id);
            bulk.stats.failed += 1;
            self.events.push_back(NodeEvent::BulkFailed { peer, id, error: BulkError::Stalled });
        }
        for (peer, m) in acks {
            self.bulk_reply(now, peer, m);
        }
        for id in flush {
            self.bulk_flush(now, id);
        }
    }
}
