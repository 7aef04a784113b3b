//! `GET /api/nodes/{id}/inventory`: a node's inventory as the master holds it (see
//! `fleetmesh::overlay::inventory`): its version and entries, path → value.

use axum::{
    extract::{Path, State},
    Json,
};
use fleetmesh::MasterControl;
use serde_json::{json, Value};

use super::{error::ApiError, routes::AppState};

/// The node's inventory: `{"node", "version", "entries"}`; 404 `unknown_node` for a node the
/// master has never seen, 404 `no_inventory` for one that has not reported any yet.
pub(super) async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = super::routes::parse_id(&id)?;
    let Some((version, entries)) = s.master.inventory(&node) else {
        return Err(match s.master.known_node(&node) {
            Some(_) => ApiError::NoInventory(node.to_string()),
            None => ApiError::UnknownNode(node.to_string()),
        });
    };
    Ok(Json(json!({ "node": node.to_string(), "version": version, "entries": entries })))
}

/// The inventories at the master, for `GET /api/status`: how many it holds, and what arrived
/// since it started (LSN batches and their compressed bytes, changes, applied ones, of those
/// whole documents: a node restarted with its acknowledged version sends a diff, not one).
pub(super) fn stats_json(master: &MasterControl) -> Value {
    let stats = master.inventory_stats();
    json!({
        "held": master.inventory_count(),
        "batches": stats.batches,
        "batch_bytes": stats.batch_bytes,
        "changes": stats.changes,
        "applied": stats.applied,
        "whole": stats.whole,
    })
}
