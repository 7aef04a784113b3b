//! The admin API's routes and handlers.

use std::{
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{Path, Query, Request, State},
    http::{header::AUTHORIZATION, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use fleetmesh::{MasterControl, NodeId, TokenOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::{auth::authorized, error::ApiError, events, views};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(super) master: MasterControl,
    token: Arc<str>,
    pub(super) events: broadcast::Sender<String>,
    next_id: Arc<AtomicU64>,
    counters: Arc<super::metrics::Counters>,
    pub(super) results: Arc<std::sync::Mutex<super::results::Results>>,
}

impl AppState {
    pub(crate) fn new(
        master: MasterControl,
        token: String,
        events: broadcast::Sender<String>,
        counters: Arc<super::metrics::Counters>,
    ) -> Self {
        // Message ids start past 0 (reserved for polls) and past earlier runs' ids.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        AppState {
            master,
            token: token.into(),
            events,
            next_id: Arc::new(AtomicU64::new(start)),
            counters,
            results: Arc::default(),
        }
    }

    /// Shares `results` (filled from the master's events by the server).
    pub(crate) fn with_results(
        mut self,
        results: Arc<std::sync::Mutex<super::results::Results>>,
    ) -> Self {
        self.results = results;
        self
    }
}

/// Every route, behind the bearer-token check.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{id}", get(node))
        .route("/api/nodes/{id}/send", post(send))
        .route("/api/nodes/{id}/poll", post(poll))
        .route("/api/nodes/{id}/revoke", post(revoke))
        .route("/api/nodes/{id}/requests", post(super::requests::create))
        .route("/api/nodes/{id}/inventory", get(super::inventory::get_one))
        .route("/api/requests", post(super::fleet::create))
        .route("/api/queries", post(super::queries::create))
        .route("/api/requests/{id}", get(super::requests::get_one))
        .route("/api/tokens", get(tokens).post(create_token))
        .route("/api/events", get(event_stream))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "not_found", "message": "no such endpoint"})),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // The page itself holds no data: it is served without the token.
        .merge(super::web::routes())
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !authorized(header, &state.token) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

pub(super) fn parse_id(text: &str) -> Result<NodeId, ApiError> {
    NodeId::from_str(text).map_err(|_| ApiError::BadId(text.to_owned()))
}

async fn status(State(s): State<AppState>) -> Json<Value> {
    let topology = s.master.topology();
    Json(json!({
        "master": s.master.id().to_string(),
        "network": s.master.link().to_string(),
        "present": topology.present(),
        "lsns": topology.lsn_count(),
        "subnets": topology.subnets.len(),
        "known": s.master.known_nodes().len(),
        "isolated_since": s.master.isolated_since().map(|t| t.as_secs()),
        "topology": views::topology_json(&topology),
        "inventory": super::inventory::stats_json(&s.master),
    }))
}

/// Filters of `GET /api/nodes`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeFilter {
    subnet: Option<String>,
    lsn: Option<String>,
    tag: Option<String>,
    present: Option<bool>,
    limit: Option<usize>,
}

async fn nodes(
    State(s): State<AppState>,
    query: Result<Query<NodeFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<views::NodeList>, ApiError> {
    let Query(filter) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(lsn) = &filter.lsn {
        parse_id(lsn)?;
    }
    let all = views::all_nodes(&s.master.topology(), &s.master.known_nodes(), &s.master.gsns());
    let total = all.len();
    let selected: Vec<_> = all
        .into_iter()
        .filter(|n| filter.subnet.as_ref().is_none_or(|f| n.subnet.as_ref() == Some(f)))
        .filter(|n| filter.lsn.as_ref().is_none_or(|f| n.lsn.as_ref() == Some(f)))
        .filter(|n| filter.tag.as_ref().is_none_or(|t| n.tags.contains(t)))
        .filter(|n| filter.present.is_none_or(|p| n.present == p))
        .take(filter.limit.unwrap_or(usize::MAX))
        .collect();
    // Serialized straight from the typed list: a `json!` value would copy 30,000 nodes first.
    Ok(Json(views::NodeList { total, count: selected.len(), nodes: selected }))
}

pub(super) fn find(s: &AppState, id: &str) -> Result<views::NodeJson, ApiError> {
    let node = parse_id(id)?;
    let text = node.to_string();
    views::all_nodes(&s.master.topology(), &s.master.known_nodes(), &s.master.gsns())
        .into_iter()
        .find(|n| n.id == text)
        .ok_or(ApiError::UnknownNode(text))
}

async fn node(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(find(&s, &id)?)))
}

/// Body of `POST /api/nodes/{id}/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    text: String,
}

async fn send(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<SendBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let node = find(&s, &id)?;
    let node_id = parse_id(&node.id)?;
    let message = s.next_id.fetch_add(1, Ordering::Relaxed);
    let mut events = s.events.subscribe();
    s.master.send(node_id, message, body.text.into_bytes()).await.map_err(|_| ApiError::Stopped)?;
    let outcome = wait_for(&mut events, &node.id, |e| e["id"] == message).await;
    Ok(outcome_response(json!({ "id": message, "node": node.id }), outcome))
}

async fn poll(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let node = find(&s, &id)?;
    let mut events = s.events.subscribe();
    s.master.poll(parse_id(&node.id)?).await.map_err(|_| ApiError::Stopped)?;
    let outcome = wait_for(&mut events, &node.id, |e| e["id"] == 0).await;
    Ok(outcome_response(json!({ "node": node.id }), outcome))
}

/// How long `send` and `poll` wait for the delivery report before answering "pending".
const OUTCOME_WAIT: Duration = Duration::from_secs(10);

async fn wait_for(
    events: &mut broadcast::Receiver<String>,
    node: &str,
    matches: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(text) => {
                    let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
                    let kind = event["type"].as_str().unwrap_or_default();
                    if (kind == "delivered" || kind == "delivery_failed")
                        && event["node"] == node
                        && matches(&event)
                    {
                        return Some(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    tokio::time::timeout(OUTCOME_WAIT, wait).await.ok().flatten()
}

fn outcome_response(mut base: Value, outcome: Option<Value>) -> (StatusCode, Json<Value>) {
    match outcome {
        Some(event) if event["type"] == "delivered" => {
            base["outcome"] = json!("delivered");
            base["rtt_ms"] = event["rtt_ms"].clone();
            (StatusCode::OK, Json(base))
        }
        Some(event) => {
            base["outcome"] = json!("failed");
            base["error"] = event["error"].clone();
            (StatusCode::BAD_GATEWAY, Json(base))
        }
        None => {
            base["outcome"] = json!("pending");
            (StatusCode::ACCEPTED, Json(base))
        }
    }
}

async fn revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = find(&s, &id)?;
    s.master.revoke(vec![parse_id(&node.id)?]).await.map_err(|_| ApiError::Stopped)?;
    Ok(Json(json!({ "revoked": node.id })))
}

async fn tokens(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let remaining = s.master.tokens_remaining().map_err(|e| ApiError::Tokens(e.to_string()))?;
    Ok(Json(json!({ "remaining": remaining })))
}

/// Body of `POST /api/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    uses: Option<u32>,
    valid_secs: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create_token(
    State(s): State<AppState>,
    body: Result<Json<TokenBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut options = TokenOptions::default();
    if let Some(uses) = body.uses {
        if uses == 0 || uses > fleetmesh::MAX_USES_PER_TOKEN {
            let max = fleetmesh::MAX_USES_PER_TOKEN;
            return Err(ApiError::BadRequest(format!("uses must be 1 to {max}")));
        }
        options.uses = uses;
    }
    if let Some(secs) = body.valid_secs {
        options.valid_for = Duration::from_secs(secs);
    }
    if let Some(bad) = body.tags.iter().find(|t| !fleetmesh::valid_tag(t)) {
        return Err(ApiError::BadRequest(format!(
            "bad tag {bad:?}: tags are 1 to {} of a-z 0-9 - _ . :",
            fleetmesh::MAX_TAG_LEN
        )));
    }
    options.tags = body.tags;
    let uses = options.uses;
    let link = s.master.create_token(options).map_err(|e| ApiError::Tokens(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(json!({ "link": link.to_string(), "uses": uses }))))
}

async fn event_stream(State(s): State<AppState>) -> impl IntoResponse {
    events::stream(s.events.subscribe())
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.counters.render(&s.master),
    )
}
