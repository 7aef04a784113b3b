//! `POST /api/requests`: one request for every node, a subnet's nodes or a tag's, carried once
//! to each LSN (see `fleetmesh::overlay::fleet` for what the LSNs can read). Its answers are
//! collected per node and read with `GET /api/requests/{id}`.

use std::time::Duration;

use axum::{extract::State, http::StatusCode, Json};
use fleetmesh::overlay::{Audience, SubnetKey};
use serde::Deserialize;
use serde_json::Value;

use super::{
    error::ApiError,
    requests::{limits, refused},
    routes::AppState,
};

/// Body of `POST /api/requests`: neither `subnet` nor `tag` means every node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FleetBody {
    kind: String,
    #[serde(default)]
    body: String,
    /// A subnet key, in hex as `GET /api/nodes` shows it.
    subnet: Option<String>,
    /// A tag of the tokens that admitted the nodes.
    tag: Option<String>,
    ttl_secs: Option<u64>,
    wait_secs: Option<u64>,
}

/// The audience a body names with `subnet` and `tag` (neither: every node), and its label.
pub(super) fn audience(
    subnet: &Option<String>,
    tag: &Option<String>,
) -> Result<(Audience, String), ApiError> {
    match (subnet, tag) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest("give a subnet or a tag, not both".into())),
        (Some(hex), None) => {
            let bytes = hex::decode(hex)
                .ok()
                .and_then(|b| <[u8; 20]>::try_from(b).ok())
                .ok_or_else(|| ApiError::BadRequest(format!("bad subnet key {hex:?}")))?;
            Ok((Audience::Subnet(SubnetKey::from_bytes(bytes)), format!("subnet:{hex}")))
        }
        (None, Some(tag)) if !tag.is_empty() && tag.len() <= 64 => {
            Ok((Audience::Tag(tag.clone()), format!("tag:{tag}")))
        }
        (None, Some(_)) => Err(ApiError::BadRequest("a tag is 1 to 64 bytes".into())),
        (None, None) => Ok((Audience::All, "all".into())),
    }
}

/// Queues the fleet request, collects answers for `wait_secs` (default 10 s; 0 returns at
/// once), until every node of the audience present now answered, or until it ends, and
/// returns what came: 200 once ended, 202 while open.
pub(super) async fn create(
    State(s): State<AppState>,
    body: Result<Json<FleetBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (wait, ttl) = limits(&body.kind, body.wait_secs, body.ttl_secs)?;
    let (audience, label) = audience(&body.subnet, &body.tag)?;
    let request = s.master.request_fleet(audience, &body.kind, body.body.as_bytes(), ttl).await;
    let request = request.map_err(refused)?;
    s.results.lock().unwrap_or_else(|e| e.into_inner()).start_fleet(request, label);
    // The answers are collected by the server from the master's events; look every 100 ms.
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = view(&s, request).unwrap_or_default();
        // Everyone here answered (as far as the event relay has recorded it).
        let all_in = s.master.fleet_progress(request).is_some_and(|p| {
            p.answered >= p.present && view["answered"].as_u64() >= Some(p.answered as u64)
        });
        if all_in || view["state"] == "ended" || tokio::time::Instant::now() >= deadline {
            return Ok(respond(view));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fleet request `request`'s view, if it is one this server collects.
pub(super) fn view(s: &AppState, request: u64) -> Option<Value> {
    s.results.lock().unwrap_or_else(|e| e.into_inner()).fleet(request)
}

pub(super) fn respond(view: Value) -> (StatusCode, Json<Value>) {
    let status = if view["state"] == "ended" { StatusCode::OK } else { StatusCode::ACCEPTED };
    (status, Json(view))
}
