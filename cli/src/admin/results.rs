//! The ends of requests made through the admin API, kept for `GET /api/requests/{id}`: the
//! master reports each once (an event), and an operator or script may ask for it later.
//!
//! Bounded: the last [`MAX_RESULTS`] ends are kept, in memory (a request that has not ended
//! is read from the master's outbox, which is saved; an end from before a restart is gone).
//! A fleet request (`POST /api/requests`) collects one answer per node: the last
//! [`MAX_FLEET_KEPT`] are kept, each with at most [`MAX_FLEET_ANSWERS`] answers.

use std::collections::{BTreeMap, VecDeque};

use fleetmesh::overlay::{MasterEvent, QueryOutcome, RequestId};
use serde_json::{json, Value};

/// How many ended requests are remembered.
pub(crate) const MAX_RESULTS: usize = 10_000;
/// How many fleet requests are remembered.
pub(crate) const MAX_FLEET_KEPT: usize = 64;
/// How many answers (and failures) of one fleet request are kept.
pub(crate) const MAX_FLEET_ANSWERS: usize = 100_000;

/// A fleet request's answers so far, and its end once it came.
pub(crate) struct FleetResults {
    audience: String,
    /// Each node's answer or failure, by node.
    nodes: BTreeMap<String, Value>,
    /// Answers beyond [`MAX_FLEET_ANSWERS`], counted only.
    dropped: usize,
    end: Option<Value>,
}

/// Ended requests, as their JSON view, oldest first.
#[derive(Default)]
pub(crate) struct Results {
    by_id: BTreeMap<RequestId, Value>,
    order: VecDeque<RequestId>,
    fleet: BTreeMap<RequestId, FleetResults>,
}

impl Results {
    /// Starts collecting the answers of fleet request `id` (any that came already included).
    pub(crate) fn start_fleet(&mut self, id: RequestId, audience: String) {
        let mut nodes = BTreeMap::new();
        if let Some(view) = self.by_id.remove(&id) {
            if let Some(node) = view["node"].as_str() {
                nodes.insert(node.to_owned(), view);
            }
        }
        self.fleet.insert(id, FleetResults { audience, nodes, dropped: 0, end: None });
        while self.fleet.len() > MAX_FLEET_KEPT {
            self.fleet.pop_first();
        }
    }

    /// Fleet request `id` as JSON: its audience, its answers and failures, and its end
    /// (`state` is `open` until then, `ended` after).
    pub(crate) fn fleet(&self, id: RequestId) -> Option<Value> {
        let f = self.fleet.get(&id)?;
        let answered = f.nodes.values().filter(|v| v["state"] == "answered").count();
        let mut view = json!({
            "id": id,
            "audience": f.audience,
            "state": if f.end.is_some() { "ended" } else { "open" },
            "answered": answered,
            "nodes": f.nodes.values().collect::<Vec<_>>(),
            "dropped": f.dropped,
        });
        if let Some(end) = &f.end {
            view["end"] = end.clone();
        }
        Some(view)
    }

    /// Records the end of a request, if `event` is one.
    pub(crate) fn record(&mut self, event: &MasterEvent) {
        if let MasterEvent::FleetEnded { id, answered, unanswered, unreached } = event {
            if let Some(f) = self.fleet.get_mut(id) {
                let end = json!({ "answered": answered, "unanswered": unanswered, "unreached": unreached });
                f.end = Some(end);
            }
            return;
        }
        if let MasterEvent::QueryEnded { id, outcome } = event {
            return self.keep(*id, query_view(*id, outcome));
        }
        let Some((id, view)) = ended(event) else { return };
        if let Some(f) = self.fleet.get_mut(&id) {
            let node = view["node"].as_str().unwrap_or_default().to_owned();
            if f.nodes.len() < MAX_FLEET_ANSWERS || f.nodes.contains_key(&node) {
                f.nodes.insert(node, view);
            } else {
                f.dropped += 1;
            }
            return;
        }
        self.keep(id, view);
    }

    fn keep(&mut self, id: RequestId, view: Value) {
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

/// A fleet-wide aggregate's end as JSON: `{"id", "state": "ended", "query": true, "status",
/// "body", "hosts", "failed", "missing", "lsns", "lsns_silent"}`.
fn query_view(id: RequestId, o: &QueryOutcome) -> Value {
    let mut view = json!({
        "id": id,
        "state": "ended",
        "query": true,
        "status": status_name(o.status.0),
        "hosts": o.hosts,
        "failed": o.failed,
        "missing": o.missing,
        "lsns": o.lsns,
        "lsns_silent": o.lsns_silent,
    });
    put_body(&mut view, &o.body);
    view
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
