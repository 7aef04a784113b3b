//! # fleetmesh-lan
//!
//! A [`Discovery`] that finds the subnet's LSN on the local network (thesis 4.3.1): a query
//! goes out as an IPv4 broadcast and an IPv6 link-local multicast, and the subnet's LSN answers
//! it with its node id and overlay address. LSNs the node joined are kept in a small file (the
//! [LSN cache](cache)) and returned after the LAN's answers, so a restarted node tries them
//! before asking the master.
//!
//! * The node becomes an announcer by *remembering itself*: the overlay node hands discovery a
//!   candidate with its own id when it becomes its subnet's LSN (see
//!   [`Discovery::remember`]); remembering another LSN, or discovering, stops it answering.
//! * A discovery round waits [`LanConfig::wait`] for answers, never longer; a missing interface
//!   (no IPv6, no broadcast permission) only removes that family.
//! * The datagram format is in [`proto`]: versioned, size-checked, decoded without panics.
//!
//! Targets are configurable: the defaults are `255.255.255.255` and the IPv6 group
//! [`DEFAULT_GROUP`] (`ff02::114`, IANA's "any private experiment" group) on
//! [`DEFAULT_PORT`]. Where broadcast does not reach (a test sandbox's loopback, a routed
//! segment), list unicast or subnet-broadcast addresses in [`LanConfig::targets`]; this crate's
//! own tests do that over `127.0.0.1`.
//!
//! ```no_run
//! # async fn run() -> Result<(), fleetmesh_lan::LanError> {
//! use fleetmesh_lan::{LanConfig, LanDiscovery};
//! # let node_id = fleetmesh_driver::NodeId::ZERO;
//! let discovery = LanDiscovery::bind(
//!     LanConfig::new(node_id).cache_file("/var/lib/fleetmesh/lsn-cache"),
//! )
//! .await?;
//! // Hand it to the driver with the node; it answers queries once the node is the LSN.
//! # Ok(()) }
//! ```

pub mod cache;
mod config;
pub mod proto;
mod responder;

use std::{
    collections::hash_map::RandomState,
    hash::BuildHasher,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use fleetmesh_driver::{Candidate, Discovery, DiscoveryError, Source};
use tokio::{net::UdpSocket, sync::mpsc, task::JoinHandle};

use self::{cache::LsnCache, proto::Datagram};
pub use self::{
    cache::{CacheError, Entry},
    config::{LanConfig, DEFAULT_GROUP, DEFAULT_PORT},
};

/// Why [`LanDiscovery::bind`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LanError {
    /// No socket could be bound.
    #[error("lan discovery: no socket could be bound: {0}")]
    Bind(std::io::Error),
    /// The LSN cache could not be read.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// What the sockets' receive tasks and the discovery calls share.
pub(crate) struct Shared {
    pub(crate) cfg: LanConfig,
    pub(crate) state: Mutex<State>,
}

pub(crate) struct State {
    /// When we are the subnet's LSN: the address we announce.
    pub(crate) announce: Option<SocketAddr>,
    /// The round in progress: its nonce and where its answers go.
    pub(crate) round: Option<(u64, mpsc::UnboundedSender<(fleetmesh_driver::NodeId, SocketAddr)>)>,
    cache: LsnCache,
    nonces: u64,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No code panics while holding the lock with the state half-changed; recover it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Aborts the receive tasks when the last clone of the discovery is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// LAN discovery with an LSN cache: see the [crate docs](crate). Clones share everything.
#[derive(Clone)]
pub struct LanDiscovery {
    shared: Arc<Shared>,
    /// The sockets on the shared, well-known port: they hear queries.
    sockets: Vec<Arc<UdpSocket>>,
    /// One socket per family on a port of its own: queries go out from it, answers come back.
    askers: Vec<Arc<UdpSocket>>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for LanDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanDiscovery").field("local_addrs", &self.local_addrs()).finish()
    }
}

impl LanDiscovery {
    /// Binds the configured sockets (skipping a family that is not available), reads the LSN
    /// cache and starts answering queries in the background. A cache file that is corrupt is
    /// logged and replaced on the next change; one that cannot be read is an error.
    pub async fn bind(cfg: LanConfig) -> Result<Self, LanError> {
        let mut sockets = Vec::new();
        let mut askers = Vec::new();
        let mut last_error = None;
        for bind in [cfg.bind_v4, cfg.bind_v6].into_iter().flatten() {
            let opened = async {
                let listen = config::open_socket(&cfg, bind).await?;
                let ask = config::open_asking_socket(&cfg, bind).await?;
                Ok::<_, std::io::Error>((listen, ask))
            };
            match opened.await {
                Ok((listen, ask)) => {
                    sockets.push(Arc::new(listen));
                    askers.push(Arc::new(ask));
                }
                Err(e) => {
                    tracing::debug!(%bind, error = %e, "lan discovery: socket unavailable");
                    last_error = Some(e);
                }
            }
        }
        if sockets.is_empty() {
            let e = last_error.unwrap_or_else(|| std::io::Error::other("no bind address"));
            return Err(LanError::Bind(e));
        }
        let cache = match LsnCache::open(cfg.cache.clone(), cfg.cache_len) {
            Err(CacheError::Corrupt { line }) => {
                tracing::warn!(line, "lsn cache corrupt: starting empty");
                LsnCache::open(None, cfg.cache_len)?.with_path(cfg.cache.clone())
            }
            other => other?,
        };
        let nonces = RandomState::new().hash_one(std::process::id());
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(State { announce: None, round: None, cache, nonces }),
        });
        let tasks = sockets
            .iter()
            .chain(&askers)
            .map(|s| tokio::spawn(responder::run(shared.clone(), s.clone())))
            .collect();
        Ok(LanDiscovery { shared, sockets, askers, _tasks: Arc::new(Tasks(tasks)) })
    }

    /// The addresses the sockets are bound to.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().filter_map(|s| s.local_addr().ok()).collect()
    }

    /// Whether this node answers queries (it told us it is the LSN).
    pub fn is_announcing(&self) -> bool {
        self.shared.lock().announce.is_some()
    }

    /// The cached LSNs, newest first.
    pub fn cached(&self) -> Vec<Entry> {
        self.shared.lock().cache.entries().to_vec()
    }
}

#[async_trait]
impl Discovery for LanDiscovery {
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let nonce = {
            let mut state = self.shared.lock();
            // Looking for an LSN: we are not one.
            state.announce = None;
            state.nonces = state.nonces.wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.round = Some((state.nonces, tx));
            state.nonces
        };
        let query = Datagram::Query { network: self.shared.cfg.network, nonce }.encode();
        for target in &self.shared.cfg.targets {
            let Some(socket) = self
                .askers
                .iter()
                .find(|s| s.local_addr().is_ok_and(|a| a.is_ipv4() == target.is_ipv4()))
            else {
                continue;
            };
            if let Err(e) = socket.send_to(&query, target).await {
                tracing::debug!(%target, error = %e, "lan discovery: query not sent");
            }
        }
        let mut found: Vec<Candidate> = Vec::new();
        let deadline = tokio::time::Instant::now() + self.shared.cfg.wait;
        while let Ok(Some((id, addr))) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if !found.iter().any(|c| c.addr == addr) {
                found.push(Candidate { addr, id: Some(id), source: Source::Lan });
            }
        }
        let mut state = self.shared.lock();
        state.round = None;
        for e in state.cache.entries() {
            if !found.iter().any(|c| c.addr == e.addr) {
                found.push(Candidate { addr: e.addr, id: e.id, source: Source::Cache });
            }
        }
        Ok(found)
    }

    async fn remember(&self, candidate: Candidate) -> Result<(), DiscoveryError> {
        let mut state = self.shared.lock();
        if candidate.id == Some(self.shared.cfg.node) {
            state.announce = Some(candidate.addr);
            return Ok(());
        }
        state.announce = None;
        let entry = Entry { addr: candidate.addr, id: candidate.id };
        state.cache.remember(entry).map_err(cache_error)
    }

    async fn forget(&self, addr: SocketAddr) -> Result<(), DiscoveryError> {
        self.shared.lock().cache.forget(addr).map_err(cache_error)
    }
}

fn cache_error(e: CacheError) -> DiscoveryError {
    match e {
        CacheError::Io(e) => DiscoveryError::Io(e),
        other => DiscoveryError::Unavailable(other.to_string()),
    }
}
