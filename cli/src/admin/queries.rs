//! `POST /api/queries`: one question to every node (a subnet's, a tag's) whose answers the
//! LSNs combine on the way, so the master receives one answer per LSN (see
//! `fleetmesh::overlay::query`). The daemons combine `history` answers: the mean, min and
//! max of a metric over the fleet, per bucket.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};
use fleetmesh::overlay::{master::QUERY_GRACE, query::MAX_QUERY_WINDOW};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error::ApiError, fleet::audience, requests::refused, routes::AppState};

/// How long the LSNs collect answers unless told.
const DEFAULT_WINDOW: Duration = Duration::from_secs(5);

/// Body of `POST /api/queries`: neither `subnet` nor `tag` means every node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryBody {
    kind: String,
    #[serde(default)]
    body: String,
    /// A subnet key, in hex as `GET /api/nodes` shows it.
    subnet: Option<String>,
    /// A tag of the tokens that admitted the nodes.
    tag: Option<String>,
    /// How long each LSN waits for its children's answers (1 to 60 s).
    window_secs: Option<u64>,
}

/// Asks the query and returns its combined answer once every LSN answered or the window and
/// grace ran out (200), or 202 with its id should the end not have come by then.
pub(super) async fn create(
    State(s): State<AppState>,
    body: Result<Json<QueryBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if body.kind.is_empty() || body.kind.len() > 64 {
        return Err(ApiError::BadRequest("kind must be 1 to 64 bytes".into()));
    }
    let window = body.window_secs.map_or(DEFAULT_WINDOW, Duration::from_secs);
    if window.is_zero() || window > MAX_QUERY_WINDOW {
        let max = MAX_QUERY_WINDOW.as_secs();
        return Err(ApiError::BadRequest(format!("window_secs is 1 to {max}")));
    }
    let (audience, label) = audience(&body.subnet, &body.tag)?;
    let id = s.master.query_fleet(audience, &body.kind, body.body.as_bytes(), window).await;
    let id = id.map_err(refused)?;
    // The end comes as an event the server records; look every 100 ms.
    let deadline = tokio::time::Instant::now() + window + QUERY_GRACE + Duration::from_secs(2);
    loop {
        let end = s.results.lock().unwrap_or_else(|e| e.into_inner()).get(id);
        if let Some(mut view) = end {
            view["audience"] = json!(label);
            return Ok((StatusCode::OK, Json(view)));
        }
        if tokio::time::Instant::now() >= deadline {
            let view = json!({ "id": id, "state": "open", "audience": label });
            return Ok((StatusCode::ACCEPTED, Json(view)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
