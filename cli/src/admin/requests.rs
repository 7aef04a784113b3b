//! `POST /api/nodes/{id}/requests` and `GET /api/requests/{id}`: requests to nodes, answered
//! by their handlers (the node daemon's `exec`, `inventory`, `ping`; an embedder's own).

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use fleetmesh::{overlay::RequestError, RequestRefused};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::{
    error::ApiError,
    routes::{find, parse_id, AppState},
};

/// A request's time-to-live unless the caller gives one.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// How long the call waits for the answer unless told; at most [`MAX_WAIT`].
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Body of `POST /api/nodes/{id}/requests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestBody {
    kind: String,
    #[serde(default)]
    body: String,
    ttl_secs: Option<u64>,
    wait_secs: Option<u64>,
}

/// Queues the request and waits up to `wait_secs` for its end: 200 answered, 502 failed,
/// 202 still open (the answer can be fetched later by id).
pub(super) async fn create(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<RequestBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (wait, ttl) = limits(&body.kind, body.wait_secs, body.ttl_secs)?;
    let node = parse_id(&find(&s, &id)?.id)?;
    // Subscribed before the request exists, so its end cannot slip past.
    let mut events = s.events.subscribe();
    let request = s.master.request(node, &body.kind, body.body.as_bytes(), ttl).await;
    let request = request.map_err(refused)?;
    let ended = wait_end(&mut events, request, wait).await;
    Ok(respond(ended.or_else(|| stored(&s, request)).unwrap_or_else(|| open(&s, request))))
}

/// Checks a request's kind and `wait_secs`; its wait and time-to-live, defaults applied.
pub(super) fn limits(
    kind: &str,
    wait_secs: Option<u64>,
    ttl_secs: Option<u64>,
) -> Result<(Duration, Duration), ApiError> {
    if kind.is_empty() || kind.len() > 64 {
        return Err(ApiError::BadRequest("kind must be 1 to 64 bytes".into()));
    }
    let wait = wait_secs.map_or(DEFAULT_WAIT, Duration::from_secs);
    if wait > MAX_WAIT {
        return Err(ApiError::BadRequest(format!("wait_secs is at most {}", MAX_WAIT.as_secs())));
    }
    Ok((wait, ttl_secs.map_or(DEFAULT_TTL, Duration::from_secs)))
}

/// Why the master queued nothing, as the API says it.
pub(super) fn refused(e: RequestRefused) -> ApiError {
    match e {
        RequestRefused::Refused(
            RequestError::BadTtl | RequestError::TooLarge(_) | RequestError::NoCombiner(_),
        ) => ApiError::BadRequest(e.to_string()),
        RequestRefused::Stopped => ApiError::Stopped,
        other => ApiError::Refused(other.to_string()),
    }
}

/// `GET /api/requests/{id}`: the request's end, or where it stands.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: u64 =
        id.parse().map_err(|_| ApiError::BadRequest(format!("bad request id {id:?}")))?;
    if let Some(view) = super::fleet::view(&s, request) {
        return Ok(super::fleet::respond(view));
    }
    if let Some(view) = stored(&s, request) {
        return Ok(respond(view));
    }
    if s.master.request_state(request).is_none() {
        return Err(ApiError::UnknownRequest(id));
    }
    Ok(respond(open(&s, request)))
}

fn stored(s: &AppState, request: u64) -> Option<Value> {
    s.results.lock().unwrap_or_else(|e| e.into_inner()).get(request)
}

/// An open request's view: `pending` (waiting for the node, or for its answer).
fn open(s: &AppState, request: u64) -> Value {
    match s.master.request_state(request) {
        Some((node, delivered)) => json!({
            "id": request, "node": node.to_string(), "state": "pending", "delivered": delivered
        }),
        // Ended between the wait and this look, and its end not recorded: say so plainly.
        None => json!({ "id": request, "state": "pending", "delivered": false }),
    }
}

fn respond(view: Value) -> (StatusCode, Json<Value>) {
    let status = match view["state"].as_str() {
        Some("answered") => StatusCode::OK,
        Some("failed") => StatusCode::BAD_GATEWAY,
        _ => StatusCode::ACCEPTED,
    };
    (status, Json(view))
}

async fn wait_end(
    events: &mut broadcast::Receiver<String>,
    request: u64,
    wait: Duration,
) -> Option<Value> {
    let ended = async {
        loop {
            match events.recv().await {
                Ok(text) => {
                    let Ok(mut event) = serde_json::from_str::<Value>(&text) else { continue };
                    let kind = event["type"].as_str().unwrap_or_default();
                    if (kind == "response" || kind == "request_failed") && event["id"] == request {
                        if let Some(map) = event.as_object_mut() {
                            map.remove("type");
                        }
                        return Some(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    tokio::time::timeout(wait, ended).await.ok().flatten()
}
