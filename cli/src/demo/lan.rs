//! [`LoopbackLan`]: LAN discovery for a fleet that lives on loopback, in one process.
//!
//! A real deployment finds its subnet's LSN with a broadcast or multicast round on the local
//! network (a later issue; see the requirements in [`fleetmesh::discovery`]). Loopback has no
//! broadcast domain per subnet, so the demo's fleet shares this table instead: each node's
//! driver reports when the node becomes or stops being an LSN, and [`Discovery::discover`]
//! answers with the current LSNs of the caller's /24, as the LSNs answering a broadcast there
//! would. A crashed node answers no broadcast, so its entry goes as soon as its driver stops.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard},
};

use async_trait::async_trait;
use fleetmesh::{
    overlay::{NodeEvent, NodeState},
    Candidate, Discovery, DiscoveryError, Source,
};

/// The LSNs of every loopback subnet, by listening address.
#[derive(Debug, Default)]
pub(crate) struct LoopbackLan {
    lsns: Mutex<BTreeSet<SocketAddr>>,
}

impl LoopbackLan {
    /// The discovery handle of the node listening on `node`.
    pub(crate) fn port(self: &Arc<Self>, node: SocketAddr) -> LanPort {
        LanPort { lan: self.clone(), node }
    }

    /// Tracks the node at `node` becoming or ceasing to be an LSN.
    pub(crate) fn observe(&self, node: SocketAddr, event: &NodeEvent) {
        if let NodeEvent::State { from, to } = event {
            if *to == NodeState::IsLsn {
                self.lock().insert(node);
            } else if *from == NodeState::IsLsn {
                self.lock().remove(&node);
            }
        }
    }

    /// Forgets the node at `node` (it stopped: it answers nothing any more).
    pub(crate) fn gone(&self, node: SocketAddr) {
        self.lock().remove(&node);
    }

    /// What a LAN round from `node` would hear: the other LSNs of its /24.
    pub(crate) fn lsns_heard_by(&self, node: SocketAddr) -> Vec<Candidate> {
        self.lock()
            .iter()
            .filter(|lsn| **lsn != node && same_subnet(lsn.ip(), node.ip()))
            .map(|&addr| Candidate { addr, id: None, source: Source::Lan })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<SocketAddr>> {
        // A panic while holding the lock cannot leave a set half-updated; recover it.
        self.lsns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether two addresses share a /24 (IPv4) or a /64 (IPv6), the overlay's default prefixes.
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..8] == b.octets()[..8],
        _ => false,
    }
}

/// One node's view of the [`LoopbackLan`].
#[derive(Clone, Debug)]
pub(crate) struct LanPort {
    lan: Arc<LoopbackLan>,
    node: SocketAddr,
}

#[async_trait]
impl Discovery for LanPort {
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        Ok(self.lan.lsns_heard_by(self.node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn state(from: NodeState, to: NodeState) -> NodeEvent {
        NodeEvent::State { from, to }
    }

    #[tokio::test]
    async fn answers_with_the_lsns_of_the_callers_subnet_only() {
        let lan = Arc::new(LoopbackLan::default());
        let (a1, a2, b1) = (addr("127.0.1.1:4000"), addr("127.0.1.2:4000"), addr("127.0.2.1:4000"));
        lan.observe(a1, &state(NodeState::LookingForLsn, NodeState::IsLsn));
        lan.observe(b1, &state(NodeState::LookingForLsn, NodeState::IsLsn));
        let heard: Vec<SocketAddr> =
            lan.port(a2).discover().await.unwrap().iter().map(|c| c.addr).collect();
        assert_eq!(heard, vec![a1]);
        assert!(lan.port(a1).discover().await.unwrap().is_empty(), "an LSN does not hear itself");
        let found = lan.port(a2).discover().await.unwrap();
        assert_eq!(found[0].source, Source::Lan);
        assert_eq!(found[0].id, None);
    }

    #[tokio::test]
    async fn forgets_an_lsn_that_resigned_or_stopped() {
        let lan = Arc::new(LoopbackLan::default());
        let (a1, a2, a3) = (addr("127.0.1.1:4000"), addr("127.0.1.2:4000"), addr("127.0.1.3:4000"));
        lan.observe(a1, &state(NodeState::LookingForLsn, NodeState::IsLsn));
        lan.observe(a3, &state(NodeState::Joining, NodeState::IsLsn));
        lan.observe(a1, &state(NodeState::IsLsn, NodeState::Joining));
        lan.observe(a2, &state(NodeState::Joining, NodeState::HasLsn));
        let heard: Vec<SocketAddr> =
            lan.port(a2).discover().await.unwrap().iter().map(|c| c.addr).collect();
        assert_eq!(heard, vec![a3]);
        lan.gone(a3);
        assert!(lan.port(a2).discover().await.unwrap().is_empty());
    }
}
