//! The admin API's typed errors, each answered with a status and a JSON body
//! `{"error": KIND, "message": TEXT}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No or wrong bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The node id does not parse.
    #[error("bad node id {0:?}")]
    BadId(String),
    /// The request body or query is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The master has never seen this node.
    #[error("unknown node {0}")]
    UnknownNode(String),
    /// The node has reported no inventory (yet).
    #[error("no inventory from node {0} yet")]
    NoInventory(String),
    /// The master's driver has stopped.
    #[error("the master has stopped")]
    Stopped,
    /// No request with this id is open or remembered.
    #[error("unknown request {0}")]
    UnknownRequest(String),
    /// The master's outbox refused the request.
    #[error("{0}")]
    Refused(String),
    /// Tokens could not be read or created.
    #[error("tokens: {0}")]
    Tokens(String),
}

impl ApiError {
    fn kind(&self) -> (&'static str, StatusCode) {
        match self {
            ApiError::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            ApiError::BadId(_) => ("bad_id", StatusCode::BAD_REQUEST),
            ApiError::BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST),
            ApiError::UnknownNode(_) => ("unknown_node", StatusCode::NOT_FOUND),
            ApiError::NoInventory(_) => ("no_inventory", StatusCode::NOT_FOUND),
            ApiError::Stopped => ("stopped", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::UnknownRequest(_) => ("unknown_request", StatusCode::NOT_FOUND),
            ApiError::Refused(_) => ("refused", StatusCode::SERVICE_UNAVAILABLE),
            ApiError::Tokens(_) => ("tokens", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (kind, status) = self.kind();
        let body = serde_json::json!({ "error": kind, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}
