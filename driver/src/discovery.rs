//! The [`Discovery`] trait: where a node finds candidate peers (its subnet's LSN above all).
//!
//! Sources, in the order the overlay asks them (thesis 4.3.1): the local network, LSNs cached
//! from earlier runs, the master, the DHT, a static list. Each implementation tags its results
//! with their [`Source`] so the caller can weigh them.
//!
//! What later implementations must do:
//! * **LAN**: answer within a bounded time (a broadcast or multicast round, not an open wait),
//!   return only responders that spoke the fleetmesh protocol, and never block on a missing
//!   interface.
//! * **Cache**: persist what [`Discovery::remember`] is told across restarts, newest first, and
//!   forget entries that [`Discovery::forget`] names.
//! * **Master / DHT**: are answered by protocol messages, so they are fed into the core, not
//!   queried through this trait.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;

pub use fleetmesh_proto::discovery::{Candidate, DiscoveryRequest, Source};

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// I/O on the network or the cache failed.
    #[error("discovery i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The mechanism is not available here (no interface, no permission).
    #[error("discovery unavailable: {0}")]
    Unavailable(String),
}

/// Finds candidate peers.
#[async_trait]
pub trait Discovery: Send + Sync + 'static {
    /// Candidates for the local subnet's LSN, best first.
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError>;

    /// Tells the source that `candidate` worked (a cache keeps it). A node also remembers
    /// *itself* (its own id) when it becomes its subnet's LSN, so a LAN source can answer its
    /// subnet's queries. Default: ignored.
    async fn remember(&self, candidate: Candidate) -> Result<(), DiscoveryError> {
        let _ = candidate;
        Ok(())
    }

    /// Tells the source that the peer at `addr` is gone. Default: ignored.
    async fn forget(&self, addr: SocketAddr) -> Result<(), DiscoveryError> {
        let _ = addr;
        Ok(())
    }
}

#[async_trait]
impl<T: Discovery + ?Sized> Discovery for Arc<T> {
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        (**self).discover().await
    }
    async fn remember(&self, candidate: Candidate) -> Result<(), DiscoveryError> {
        (**self).remember(candidate).await
    }
    async fn forget(&self, addr: SocketAddr) -> Result<(), DiscoveryError> {
        (**self).forget(addr).await
    }
}

/// In-memory discovery: a shared list of candidates. Clones share the list, so a test can
/// change what a running node discovers. `remember` adds to the front; `forget` removes.
#[derive(Clone, Debug, Default)]
pub struct MemoryDiscovery {
    candidates: Arc<Mutex<Vec<Candidate>>>,
}

impl MemoryDiscovery {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the candidate list.
    pub fn set(&self, candidates: Vec<Candidate>) {
        *self.lock() = candidates;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Candidate>> {
        // A panic while holding this lock cannot leave the Vec inconsistent; recover it.
        self.candidates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Discovery for MemoryDiscovery {
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        Ok(self.lock().clone())
    }

    async fn remember(&self, candidate: Candidate) -> Result<(), DiscoveryError> {
        let mut list = self.lock();
        list.retain(|c| c.addr != candidate.addr);
        list.insert(0, candidate);
        Ok(())
    }

    async fn forget(&self, addr: SocketAddr) -> Result<(), DiscoveryError> {
        self.lock().retain(|c| c.addr != addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_discovery_remembers_newest_first_and_forgets() {
        let d = MemoryDiscovery::new();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        d.remember(Candidate { addr: a, id: None, source: Source::Cache }).await.unwrap();
        d.remember(Candidate { addr: b, id: None, source: Source::Lan }).await.unwrap();
        d.remember(Candidate { addr: a, id: None, source: Source::Lan }).await.unwrap();
        let got: Vec<_> = d.discover().await.unwrap().iter().map(|c| c.addr).collect();
        assert_eq!(got, vec![a, b]);
        d.forget(a).await.unwrap();
        assert_eq!(d.discover().await.unwrap().len(), 1);
    }
}
