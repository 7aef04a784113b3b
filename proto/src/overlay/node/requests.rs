//! The master's requests at a node: each id handled at most once, even across restarts, and
//! answered with a [`Response`] that travels back as a report (`report.rs`).
//!
//! The master sends a request until it has the answer (at least once); the node keeps a log
//! of the ids it took, with their answers once given, in its store. A repeat is not handed to
//! the application again: if the answer is known it is sent again (the first may have been
//! lost), otherwise the handler is still at work. The log is bounded: beyond
//! [`MAX_HANDLED`] ids, or [`MAX_LOGGED_BYTES`] of answers, the oldest ids are forgotten and
//! everything up to them refused as [`ResponseStatus::FORGOTTEN`] (the master's ids only
//! grow), so no repeat is ever handled twice. Entries past their request's expiry are dropped:
//! a repeat then is refused as expired.
//!
//! A fleet request comes again whenever the node's LSN changes (the new LSN hands every
//! child a copy): once the master has acknowledged our answer, such a copy is only
//! acknowledged, not answered again (`delivered`; kept in memory, so after a restart the
//! answer goes once more).
//!
//! A request taken but not answered when the node stopped cannot be known to have run or
//! not: after a restart it is answered [`ResponseStatus::FAILED`], never handed out again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{report::Key, Node, NodeEvent};
use crate::{
    codec::cbor,
    dht::StoreOp,
    wire::{Message, Request, Response, ResponseStatus},
    Timestamp,
};

/// Most request ids a node remembers.
pub const MAX_HANDLED: usize = 1024;
/// Most bytes of answers a node keeps for re-sending.
pub const MAX_LOGGED_BYTES: usize = 8 << 20;
/// Largest answer body: what fits a frame beside the report, the envelope and a certificate
/// around it (a larger one is answered as failed, saying so).
pub const MAX_ANSWER_LEN: usize = crate::wire::MAX_FRAME_LEN - 1024;
/// The store table of the request log: an 8-byte big-endian id → its entry; the empty key
/// holds the floor.
pub const REQUESTS_TABLE: &str = "requests";

/// Why [`Node::respond`] refused an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespondError {
    /// No request with this id awaits an answer (never taken, answered already, or forgotten).
    #[error("no request {0} awaits an answer")]
    NotPending(u64),
    /// The answer could not be queued for the master.
    #[error(transparent)]
    Report(#[from] super::ReportError),
}

#[derive(Clone, Debug, Serialize_tuple, Deserialize_tuple)]
struct Entry {
    /// The request's expiry (Unix seconds).
    expires: u64,
    /// The answer, once given.
    answer: Option<(ResponseStatus, serde_bytes::ByteBuf)>,
}

impl Entry {
    fn size(&self) -> usize {
        self.answer.as_ref().map_or(0, |(_, b)| b.len())
    }
}

/// The ids taken, their answers, and the writes for the store.
#[derive(Default)]
pub(crate) struct RequestLog {
    entries: BTreeMap<u64, Entry>,
    /// Ids below this are forgotten.
    floor: u64,
    bytes: usize,
    ops: VecDeque<StoreOp>,
    /// Off until [`Node::requests_restore`]: a node without a store writes nothing.
    on: bool,
    /// Logged ids whose answer the master acknowledged.
    delivered: BTreeSet<u64>,
}

impl RequestLog {
    fn put(&mut self, id: u64, entry: &Entry) {
        if !self.on {
            return;
        }
        let value = cbor::to_vec(entry);
        let key = id.to_be_bytes().to_vec();
        self.ops.push_back(StoreOp::Put { table: REQUESTS_TABLE, key, value });
    }

    fn insert(&mut self, id: u64, entry: Entry) {
        self.put(id, &entry);
        self.bytes += entry.size();
        if let Some(old) = self.entries.insert(id, entry) {
            self.bytes -= old.size();
        }
        while self.entries.len() > MAX_HANDLED || self.bytes > MAX_LOGGED_BYTES {
            let Some((first, old)) = self.entries.pop_first() else { break };
            self.bytes -= old.size();
            self.delivered.remove(&first);
            self.forget(first);
            self.floor = first + 1;
            if self.on {
                let value = self.floor.to_be_bytes().to_vec();
                let key = Vec::new();
                self.ops.push_back(StoreOp::Put { table: REQUESTS_TABLE, key, value });
            }
        }
    }

    fn forget(&mut self, id: u64) {
        if !self.on {
            return;
        }
        let key = id.to_be_bytes().to_vec();
        self.ops.push_back(StoreOp::Remove { table: REQUESTS_TABLE, key });
    }

    /// Drops the entries whose requests expired before `now`.
    fn prune(&mut self, now: Timestamp) {
        let secs = now.as_secs();
        let expired: Vec<u64> =
            self.entries.iter().filter(|(_, e)| e.expires < secs).map(|(id, _)| *id).collect();
        for id in expired {
            if let Some(old) = self.entries.remove(&id) {
                self.bytes -= old.size();
            }
            self.delivered.remove(&id);
            self.forget(id);
        }
    }
}

impl Node {
    /// Switches the request log's persistence on and restores it from the store's
    /// [`REQUESTS_TABLE`] entries (undecodable ones skipped); call before the first input. Requests taken but never answered are answered as failed: the node stopped
    /// while handling them.
    pub fn requests_restore(&mut self, now: Timestamp, entries: &[(Vec<u8>, Vec<u8>)]) {
        self.taken.on = true;
        for (key, value) in entries {
            if key.is_empty() {
                if let Ok(floor) = <[u8; 8]>::try_from(value.as_slice()) {
                    self.taken.floor = u64::from_be_bytes(floor);
                }
                continue;
            }
            let (Ok(id), Ok(entry)) =
                (<[u8; 8]>::try_from(key.as_slice()), cbor::from_slice::<Entry>(value))
            else {
                tracing::warn!("undecodable request log entry skipped");
                continue;
            };
            let id = u64::from_be_bytes(id);
            self.taken.bytes += entry.size();
            self.taken.entries.insert(id, entry);
        }
        let unanswered: Vec<u64> = self
            .taken
            .entries
            .iter()
            .filter(|(_, e)| e.answer.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in unanswered {
            let why = b"the node stopped while handling the request".to_vec();
            if let Err(error) = self.respond(now, id, ResponseStatus::FAILED, why) {
                tracing::warn!(id, %error, "could not answer an interrupted request");
            }
        }
    }

    /// The next write of the request log for the node's store.
    pub(super) fn poll_request_store(&mut self) -> Option<StoreOp> {
        self.taken.ops.pop_front()
    }

    /// The master's request, opened from its envelope.
    pub(super) fn on_request(&mut self, now: Timestamp, r: Request) {
        self.taken.prune(now);
        if r.id < self.taken.floor {
            return self.answer_directly(now, r.id, ResponseStatus::FORGOTTEN, b"");
        }
        if let Some(entry) = self.taken.entries.get(&r.id) {
            // A repeat: the first answer may have been lost; or the handler is still at work.
            if let Some((status, body)) = entry.answer.clone() {
                self.send_response(now, Response { id: r.id, status, body: body.into_vec() });
            }
            return;
        }
        if r.expires < now.as_secs() {
            return self.answer_directly(now, r.id, ResponseStatus::EXPIRED, b"");
        }
        self.taken.insert(r.id, Entry { expires: r.expires, answer: None });
        self.events.push_back(NodeEvent::Request { id: r.id, kind: r.kind, body: r.body });
    }

    /// Answers without handing the request to the application (and logs the answer, so a
    /// repeat gets the same one).
    fn answer_directly(&mut self, now: Timestamp, id: u64, status: ResponseStatus, body: &[u8]) {
        if id >= self.taken.floor {
            let answer = Some((status, serde_bytes::ByteBuf::from(body.to_vec())));
            self.taken.insert(id, Entry { expires: now.as_secs(), answer });
        }
        self.send_response(now, Response { id, status, body: body.to_vec() });
    }

    /// Answers request `id` (handed out as [`NodeEvent::Request`]); the answer goes to the
    /// master as a report, and is kept to answer a repeat of the request.
    ///
    /// # Errors
    /// [`RespondError::NotPending`] if no request `id` awaits an answer.
    pub fn respond(
        &mut self,
        now: Timestamp,
        id: u64,
        status: ResponseStatus,
        body: Vec<u8>,
    ) -> Result<(), RespondError> {
        if self.query_pending(id) {
            self.answer_query(now, id, status, body);
            return Ok(());
        }
        let Some(entry) = self.taken.entries.get(&id).filter(|e| e.answer.is_none()) else {
            return Err(RespondError::NotPending(id));
        };
        let expires = entry.expires;
        let (status, body) = fit_answer(status, body);
        let answer = Some((status, serde_bytes::ByteBuf::from(body.clone())));
        self.taken.insert(id, Entry { expires, answer });
        let message = Message::Response(Box::new(Response { id, status, body }));
        Ok(self.report_message(now, Key::Response(id), &message)?)
    }

    fn send_response(&mut self, now: Timestamp, response: Response) {
        let id = response.id;
        let message = Message::Response(Box::new(response));
        if let Err(error) = self.report_message(now, Key::Response(id), &message) {
            tracing::warn!(id, %error, "could not send an answer to the master");
        }
    }

    /// The master acknowledged our answer to request `id`.
    pub(super) fn answer_delivered(&mut self, id: u64) {
        if self.taken.entries.contains_key(&id) {
            self.taken.delivered.insert(id);
        }
    }

    /// Whether the master has our answer to request `id` (so another copy of it needs only
    /// an acknowledgement).
    pub(super) fn answer_is_delivered(&self, id: u64) -> bool {
        self.taken.delivered.contains(&id)
    }

    /// Requests taken and not answered yet.
    pub fn requests_pending(&self) -> usize {
        self.taken.entries.values().filter(|e| e.answer.is_none()).count()
    }
}

/// The answer, or (when too large for a frame, where it would never arrive) a failure saying so.
pub(super) fn fit_answer(status: ResponseStatus, body: Vec<u8>) -> (ResponseStatus, Vec<u8>) {
    if body.len() > MAX_ANSWER_LEN {
        let why = format!("answer too large: {} bytes (at most {MAX_ANSWER_LEN})", body.len());
        (ResponseStatus::FAILED, why.into_bytes())
    } else {
        (status, body)
    }
}
