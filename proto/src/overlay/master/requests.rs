//! The master's outbox: requests to nodes, kept (and saved in the store) until the node's
//! answer arrives or the request expires.
//!
//! A request to an absent node waits for it to be present again; one to a present node is sent
//! at once, again after a failed delivery ([`RETRY`]), and again while no answer comes
//! ([`ASK_AGAIN`]): the node handles each id once and answers a repeat with the answer it gave
//! (`node/requests.rs`), so asking again is safe and recovers a lost answer. Every request ends
//! in exactly one [`MasterEvent::Response`] or [`MasterEvent::RequestFailed`]. Ids are the
//! master's clock in microseconds, made unique and increasing, also across restarts (the node
//! relies on that to bound its log).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{delivery::Settled, DeliveryError, Master, MasterEvent, PresenceEvent};
use crate::{
    codec::cbor,
    dht::StoreOp,
    wire::{self, Message, Request, Response},
    NodeId, Timestamp,
};

/// The master's id of a request.
pub type RequestId = u64;
/// The store table of the outbox: an 8-byte big-endian request id → the request.
pub const OUTBOX_TABLE: &str = "outbox";
/// Most requests in the outbox.
pub const MAX_OUTBOX: usize = 1_000_000;
/// Most requests waiting for one node.
pub const MAX_QUEUED_PER_NODE: usize = 1024;
/// Longest time-to-live of a request.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);
/// After a failed delivery to a present node, the next attempt.
pub const RETRY: Duration = Duration::from_secs(5);
/// After a delivery, how long the master waits for the answer before asking again.
pub const ASK_AGAIN: Duration = Duration::from_secs(60);

/// Why a request could not be queued, or ended without an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No answer before the request expired. `delivered`: the node took it at least once, so
    /// it may have been handled.
    #[error("expired without an answer (delivered to the node: {delivered})")]
    Expired {
        /// Whether the node acknowledged the request.
        delivered: bool,
    },
    /// The outbox (or the node's share of it) is full.
    #[error("the outbox is full ({0})")]
    Full(&'static str),
    /// The request does not fit a frame.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The time-to-live is zero or longer than [`MAX_TTL`].
    #[error("time-to-live must be between 1 s and {} days", MAX_TTL.as_secs() / 86_400)]
    BadTtl,
    /// A fleet-wide aggregate of a kind no combiner was registered for
    /// ([`Master::set_combiner`](super::Master::set_combiner)).
    #[error("no combiner for queries of kind {0:?}")]
    NoCombiner(String),
}

/// A request as saved.
#[derive(Clone, Debug, Serialize_tuple, Deserialize_tuple)]
struct Queued {
    node: NodeId,
    kind: String,
    body: serde_bytes::ByteBuf,
    /// Expiry, the master's clock in microseconds.
    expires: u64,
    /// The node acknowledged it at least once.
    delivered: bool,
}

struct Item {
    q: Queued,
    /// Its key in `tries`, if an attempt is scheduled.
    next_try: Option<Timestamp>,
    in_flight: bool,
}

/// The requests not answered yet.
#[derive(Default)]
pub(super) struct Outbox {
    items: BTreeMap<RequestId, Item>,
    by_node: BTreeMap<NodeId, BTreeSet<RequestId>>,
    tries: BTreeSet<(Timestamp, RequestId)>,
    expiries: BTreeSet<(Timestamp, RequestId)>,
    last_id: RequestId,
}

impl Outbox {
    fn schedule(&mut self, id: RequestId, at: Option<Timestamp>) {
        let Some(item) = self.items.get_mut(&id) else { return };
        if let Some(old) = item.next_try.take() {
            self.tries.remove(&(old, id));
        }
        if let Some(at) = at {
            item.next_try = Some(at);
            self.tries.insert((at, id));
        }
    }

    fn add(&mut self, id: RequestId, q: Queued) {
        self.expiries.insert((Timestamp::from_micros(q.expires), id));
        self.by_node.entry(q.node).or_default().insert(id);
        self.last_id = self.last_id.max(id);
        self.items.insert(id, Item { q, next_try: None, in_flight: false });
    }

    /// A new request id: the clock in microseconds, past every id given (fleet requests
    /// share the space: a node's log holds both).
    pub(super) fn next_id(&mut self, now: Timestamp) -> RequestId {
        self.last_id = now.as_micros().max(self.last_id + 1);
        self.last_id
    }

    /// Ids restored from elsewhere stay below the next one given.
    pub(super) fn bump(&mut self, id: RequestId) {
        self.last_id = self.last_id.max(id);
    }

    fn remove(&mut self, id: RequestId) -> Option<Queued> {
        self.schedule(id, None);
        let item = self.items.remove(&id)?;
        self.expiries.remove(&(Timestamp::from_micros(item.q.expires), id));
        if let Some(ids) = self.by_node.get_mut(&item.q.node) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_node.remove(&item.q.node);
            }
        }
        Some(item.q)
    }
}

impl Master {
    /// Queues a request of `kind` with `body` for `node`, to be handled by it at most once
    /// before `ttl` runs out. Its end arrives as [`MasterEvent::Response`] or
    /// [`MasterEvent::RequestFailed`] with the id returned; it survives a master restart when
    /// the master has a store.
    ///
    /// # Errors
    /// [`RequestError::Full`], [`RequestError::TooLarge`] or [`RequestError::BadTtl`]; nothing
    /// is queued then.
    pub fn request(
        &mut self,
        now: Timestamp,
        node: NodeId,
        kind: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, RequestError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(RequestError::BadTtl);
        }
        if self.outbox.items.len() >= MAX_OUTBOX {
            return Err(RequestError::Full("master"));
        }
        if self.outbox.by_node.get(&node).is_some_and(|ids| ids.len() >= MAX_QUEUED_PER_NODE) {
            return Err(RequestError::Full("node"));
        }
        let id = self.outbox.next_id(now);
        let expires = (now + ttl).as_micros();
        let probe = Request { id, kind: kind.to_owned(), body: body.to_vec(), expires: 0 };
        let size = wire::encoded_len(&Message::Request(Box::new(probe)));
        // Room for the envelope and the Forward around it.
        if size + 256 > wire::MAX_FRAME_LEN {
            return Err(RequestError::TooLarge(format!("{size} bytes")));
        }
        let body = serde_bytes::ByteBuf::from(body.to_vec());
        let q = Queued { node, kind: kind.to_owned(), body, expires, delivered: false };
        self.save_request(id, &q);
        self.outbox.add(id, q);
        self.outbox.schedule(id, Some(now));
        Ok(id)
    }

    /// Request `id` while it is in the outbox: its node, and whether the node took it.
    pub fn request_state(&self, id: RequestId) -> Option<(NodeId, bool)> {
        self.outbox.items.get(&id).map(|i| (i.q.node, i.q.delivered))
    }

    /// Requests in the outbox (waiting, in flight, or awaiting their answer).
    pub fn outbox_len(&self) -> usize {
        self.outbox.items.len()
    }

    /// Restores the outbox from the store's [`OUTBOX_TABLE`] entries (undecodable ones
    /// skipped); each waits for its node to be present.
    pub fn restore_outbox(&mut self, entries: &[(Vec<u8>, Vec<u8>)]) {
        for (key, value) in entries {
            let (Ok(id), Ok(q)) =
                (<[u8; 8]>::try_from(key.as_slice()), cbor::from_slice::<Queued>(value))
            else {
                tracing::warn!("undecodable outbox entry skipped");
                continue;
            };
            self.outbox.add(u64::from_be_bytes(id), q);
        }
    }

    fn save_request(&mut self, id: RequestId, q: &Queued) {
        if self.durable_on() {
            let (key, value) = (id.to_be_bytes().to_vec(), cbor::to_vec(q));
            self.push_store_op(StoreOp::Put { table: OUTBOX_TABLE, key, value });
        }
    }

    fn finish(&mut self, id: RequestId) -> Option<Queued> {
        let q = self.outbox.remove(id)?;
        if self.durable_on() {
            let key = id.to_be_bytes().to_vec();
            self.push_store_op(StoreOp::Remove { table: OUTBOX_TABLE, key });
        }
        Some(q)
    }

    /// Nodes that became present get their waiting requests at the next timer.
    pub(super) fn outbox_presence(&mut self, now: Timestamp, events: &[PresenceEvent]) {
        for event in events {
            let node = match event {
                PresenceEvent::Joined { node, .. }
                | PresenceEvent::Moved { node, .. }
                | PresenceEvent::Rerouted { node, .. } => *node,
                _ => continue,
            };
            let Some(ids) = self.outbox.by_node.get(&node) else { continue };
            let waiting: Vec<RequestId> = ids
                .iter()
                .copied()
                .filter(|id| {
                    self.outbox.items.get(id).is_some_and(|i| !i.in_flight && !i.q.delivered)
                })
                .collect();
            for id in waiting {
                self.outbox.schedule(id, Some(now));
            }
        }
    }

    pub(super) fn outbox_timers(&mut self, now: Timestamp) {
        while let Some(&(at, id)) = self.outbox.expiries.first() {
            if now < at {
                break;
            }
            if let Some(q) = self.finish(id) {
                let error = RequestError::Expired { delivered: q.delivered };
                self.events.push_back(MasterEvent::RequestFailed { id, node: q.node, error });
            }
        }
        while let Some(&(at, id)) = self.outbox.tries.first() {
            if now < at {
                break;
            }
            self.outbox.schedule(id, None);
            self.attempt(now, id);
        }
    }

    fn attempt(&mut self, now: Timestamp, id: RequestId) {
        let Some(item) = self.outbox.items.get(&id) else { return };
        if item.in_flight {
            return;
        }
        let q = &item.q;
        let request = Request {
            id,
            kind: q.kind.clone(),
            body: q.body.to_vec(),
            expires: q.expires / 1_000_000,
        };
        let node = q.node;
        match self.send_sealed(now, node, id, &Message::Request(Box::new(request)), true) {
            Ok(()) => {
                if let Some(item) = self.outbox.items.get_mut(&id) {
                    item.in_flight = true;
                }
            }
            // Absent: it goes when the node is present again (`outbox_presence`).
            Err(DeliveryError::NotPresent) => {}
            // Present but not addressable yet (no certificate): try again shortly.
            Err(_) => self.outbox.schedule(id, Some(now + RETRY)),
        }
    }

    /// The node acknowledged request `id`: its answer comes as a report; ask again if not.
    pub(super) fn outbox_delivered(&mut self, now: Timestamp, id: RequestId) {
        let Some(item) = self.outbox.items.get_mut(&id) else { return };
        item.in_flight = false;
        if !item.q.delivered {
            item.q.delivered = true;
            let q = item.q.clone();
            self.save_request(id, &q);
        }
        self.outbox.schedule(id, Some(now + ASK_AGAIN));
    }

    /// A delivery failed: an application message's failure is reported; a request is tried
    /// again later.
    pub(super) fn delivery_failed(&mut self, now: Timestamp, s: Settled, error: DeliveryError) {
        if !s.request {
            let (id, node) = (s.id, s.node);
            return self.events.push_back(MasterEvent::DeliveryFailed { id, node, error });
        }
        if let Some(item) = self.outbox.items.get_mut(&s.id) {
            item.in_flight = false;
            self.outbox.schedule(s.id, Some(now + RETRY));
        }
    }

    /// A node's answer, from its report: ends the request if it is the node's own and still
    /// open (a repeated answer is dropped).
    pub(super) fn on_response(&mut self, node: NodeId, r: Response) {
        if self.outbox.items.get(&r.id).is_none_or(|i| i.q.node != node) {
            return self.fleet_response(node, r);
        }
        self.finish(r.id);
        self.events.push_back(MasterEvent::Response {
            id: r.id,
            node,
            status: r.status,
            body: r.body,
        });
    }

    pub(super) fn outbox_deadline(&self) -> Option<Timestamp> {
        let expiry = self.outbox.expiries.first().map(|(t, _)| *t);
        let attempt = self.outbox.tries.first().map(|(t, _)| *t);
        expiry.into_iter().chain(attempt).min()
    }
}
