//! The master's admin API: HTTP/JSON on 127.0.0.1 by default, every request authenticated by
//! the bearer token in `DATA_DIR/admin.token` (created 0600 on the first start).
//!
//! Endpoints (all under `/api`, documented in `docs/openapi.json`): `GET status`,
//! `GET nodes?subnet=&lsn=&present=`, `GET nodes/{id}`, `POST nodes/{id}/send`,
//! `POST nodes/{id}/poll`, `POST nodes/{id}/revoke`, `POST nodes/{id}/requests`,
//! `GET nodes/{id}/inventory`,
//! `POST requests` (a fleet request), `GET requests/{id}`, `GET tokens`, `POST tokens`, and
//! `GET events` (server-sent events: presence, deliveries, enrollments). `/` serves the live
//! web view, a client of the same API.

mod auth;
mod error;
mod events;
mod fleet;
mod inventory;
mod metrics;
mod queries;
mod requests;
mod results;
mod routes;
mod views;
mod web;

use std::{net::SocketAddr, path::Path};

use fleetmesh::{overlay::MasterEvent, MasterControl};
use tokio::{net::TcpListener, sync::broadcast, task::JoinHandle};

use auth::load_or_create_token;
use events::event_json;

/// How many events a slow SSE client may fall behind before it is told it lost some. The
/// 30,000-node morning join storm is about 25,000 events (`benches/event_storm.rs`), so a
/// client stalled through a whole storm still loses nothing; full, it holds about 16 MB.
const EVENT_BUFFER: usize = 65_536;

/// A running admin API.
pub(crate) struct AdminServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    events: broadcast::Sender<String>,
    counters: std::sync::Arc<metrics::Counters>,
    results: std::sync::Arc<std::sync::Mutex<results::Results>>,
    task: JoinHandle<()>,
}

/// Why the admin API did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// The token file could not be read or written.
    #[error("admin token {path}: {source}")]
    Token {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listening socket could not be bound.
    #[error("admin API cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl AdminServer {
    /// Binds `addr` and serves `master`'s admin API, with the token from `data_dir`.
    pub(crate) async fn start(
        addr: SocketAddr,
        data_dir: &Path,
        master: MasterControl,
    ) -> Result<AdminServer, AdminError> {
        let token = load_or_create_token(data_dir)?;
        let listener =
            TcpListener::bind(addr).await.map_err(|source| AdminError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr, source })?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let counters = std::sync::Arc::new(metrics::Counters::default());
        let results = std::sync::Arc::default();
        let state = routes::AppState::new(master, token, events.clone(), counters.clone())
            .with_results(std::sync::Arc::clone(&results));
        let app = routes::router(state);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "admin API stopped");
            }
        });
        tracing::info!(%addr, "admin API listening");
        Ok(AdminServer { addr, events, counters, results, task })
    }

    /// Passes one of the master's events to the event stream's subscribers.
    pub(crate) fn publish(&self, event: &MasterEvent) {
        self.counters.count(event);
        self.results.lock().unwrap_or_else(|e| e.into_inner()).record(event);
        if self.events.receiver_count() > 0 {
            if let Some(json) = event_json(event) {
                let _ = self.events.send(json);
            }
        }
    }

    /// Stops serving (and drops its handle on the master).
    pub(crate) async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
