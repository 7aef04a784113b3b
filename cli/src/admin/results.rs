//! The ends of requests made through the admin API, kept for `GET /api/requests/{id}`: the
//! master reports each once (an event), and an operator or script may ask for it later.
//!
//! Bounded: the last [`MAX_RESULTS`] ends are kept, in memory (a request that has not ended
//! is read from the master's outbox, which is saved; an end from before a restart is gone).

use std::collections::{BTreeMap, VecDeque};

use fleetmesh::overlay::{MasterEvent, RequestId};
use serde_json::{json, Value};

/// How many ended requests are remembered.
pub(crate) const MAX_RESULTS: usize = 10_000;

/// Ended requests, as their JSON view, oldest first.
#[derive(Default)]
pub(crate) struct Results {
    by_id: BTreeMap<RequestId, Value>,
    order: VecDeque<RequestId>,
}

impl Results {
    /// Records the end of a request, if `event` is one.
    pub(crate) fn record(&mut self, event: &MasterEvent) {
        let Some((id, view)) = ended(event) else { return };
        if self.by_id.insert(id, view).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > MAX_RESULTS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    pub(crate) fn get(&self, id: RequestId) -> Option<Value> {
        self.by_id.get(&id).cloned()
    }
}

/// A request's end as JSON: `{"id", "node", "state": "answered", "status", "body"}` or
/// `{"id", "node", "state": "failed", "error", "delivered"}`.
pub(crate) fn ended(event: &MasterEvent) -> Option<(RequestId, Value)> {
    match event {
        MasterEvent::Response { id, node, status, body } => {
            let mut view = json!({
                "id": id,
                "node": node.to_string(),
                "state": "answered",
                "status": status_name(status.0),
            });
            put_body(&mut view, body);
            Some((*id, view))
        }
        MasterEvent::RequestFailed { id, node, error } => {
            let delivered =
                matches!(error, fleetmesh::overlay::RequestError::Expired { delivered: true });
            Some((
                *id,
                json!({
                    "id": id,
                    "node": node.to_string(),
                    "state": "failed",
                    "error": error.to_string(),
                    "delivered": delivered,
                }),
            ))
        }
        _ => None,
    }
}

/// The answer's bytes: as text when they are UTF-8, else in hex.
pub(crate) fn put_body(view: &mut Value, body: &[u8]) {
    match std::str::from_utf8(body) {
        Ok(text) => view["body"] = json!(text),
        Err(_) => view["body_hex"] = json!(hex::encode(body)),
    }
}

/// The name of a response status (`ok`, `failed`, `unknown_kind`, `expired`, `forgotten`).
pub(crate) fn status_name(code: u16) -> String {
    match code {
        0 => "ok".into(),
        1 => "failed".into(),
        2 => "unknown_kind".into(),
        3 => "expired".into(),
        4 => "forgotten".into(),
        other => format!("status_{other}"),
    }
}
