//! The node daemon's metric history (S15): CPU, memory, disk and network sampled every 10 s
//! into `DATA_DIR/history.log` (compressed, 30 days, at most 8 MiB), and the `history`
//! request handler that answers the master's range queries, downsampled on the node.

use std::{
    path::Path,
    sync::{mpsc, Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fleetmesh_history::{HostReader, Query, Sampler, Store, StoreConfig, StoreError};

/// Most buckets in one answer: each is some 100 bytes of JSON, and an answer is one message.
pub(crate) const MAX_ANSWER_BUCKETS: u64 = 500;

/// The history file in the node's data directory.
pub(crate) const HISTORY_FILE: &str = "history.log";

/// A running sampler and the store it writes.
pub(crate) struct History {
    store: Arc<Mutex<Store>>,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl History {
    /// Opens (or creates) the store in `data_dir` and starts sampling on a thread of its own
    /// (reading the OS takes milliseconds; the async runtime is not the place for it).
    pub(crate) fn start(data_dir: &Path) -> Result<History, StoreError> {
        let mut store = Store::open(data_dir.join(HISTORY_FILE), StoreConfig::default())?;
        Sampler::declare(&mut store)?;
        let store = Arc::new(Mutex::new(store));
        let (stop, stopped) = mpsc::channel();
        let writer = store.clone();
        let thread = std::thread::Builder::new()
            .name("fleetmesh-history".into())
            .spawn(move || sample(&writer, &stopped))
            .map_err(StoreError::Io)?;
        Ok(History { store, stop, thread })
    }

    /// The store, for the `history` handler.
    pub(crate) fn store(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// Stops sampling and writes what is buffered.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
        if let Err(error) = lock(&self.store).flush() {
            tracing::warn!(%error, "metric history not flushed");
        }
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

fn sample(store: &Mutex<Store>, stopped: &mpsc::Receiver<()>) {
    let mut reader = HostReader::new();
    let mut sampler = Sampler::new();
    let interval = Duration::from_secs(fleetmesh_history::SAMPLE_INTERVAL_SECS as u64);
    loop {
        let metrics = reader.read();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        if let Err(error) = sampler.sample(&mut lock(store), now, &metrics) {
            // A clock stepped back gives out-of-order samples: skip them, keep sampling.
            tracing::debug!(%error, "metric sample not recorded");
        }
        match stopped.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

/// The `history` handler: `body` is a JSON [`Query`] (`series`, `from`, `to`, `bucket_secs`,
/// times in Unix seconds); the answer is the JSON `Answer` with its buckets.
pub(crate) async fn answer(store: Arc<Mutex<Store>>, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let query: Query =
        serde_json::from_slice(&body).map_err(|e| format!("not a history query: {e}"))?;
    let buckets = query.buckets().map_err(|e| e.to_string())?;
    if buckets > MAX_ANSWER_BUCKETS {
        return Err(format!(
            "{buckets} buckets asked; at most {MAX_ANSWER_BUCKETS} fit one answer (widen the buckets)"
        ));
    }
    let answer = tokio::task::spawn_blocking(move || lock(&store).query(&query))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    serde_json::to_vec(&answer).map_err(|e| e.to_string())
}

/// Combines two `history` answers (JSON `Answer`s on the same bucket grid) into the fleet's:
/// per bucket the min of minima, max of maxima, host-weighted means. The LSNs combine their
/// nodes' answers with it, the master the LSNs'.
pub(crate) fn combine(a: &[u8], b: &[u8]) -> Result<Vec<u8>, String> {
    let parse = |x: &[u8]| {
        serde_json::from_slice::<fleetmesh_history::Answer>(x)
            .map_err(|e| format!("not a history answer: {e}"))
    };
    let both = [parse(a)?, parse(b)?];
    let combined = fleetmesh_history::aggregate(&both).map_err(|e| e.to_string())?;
    serde_json::to_vec(&combined).map_err(|e| e.to_string())
}

/// [`combine`] as the overlay takes it.
pub(crate) fn combiner() -> fleetmesh::overlay::query::Combiner {
    Arc::new(combine)
}
