//! [`Lan`]: the local networks of an [`OverlayFleet`](crate::OverlayFleet), and the test
//! [`Discovery`] that answers from them.
//!
//! Turmoil has neither subnets nor NAT: every host reaches every other. The fleet therefore
//! keeps its own map of which host sits in which subnet, and which hosts are their subnet's LSN
//! right now (fed from the nodes' [`NodeEvent::State`](fleetmesh::overlay::NodeEvent::State)
//! events). A node's discovery answers as a LAN broadcast would: with the LSNs of its subnet
//! that it can currently reach.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use fleetmesh::{Candidate, Discovery, DiscoveryError, Source};

#[derive(Debug, Default)]
struct LanState {
    /// Host → (subnet, listening address).
    hosts: BTreeMap<String, (u8, SocketAddr)>,
    /// Hosts that are their subnet's LSN now.
    lsns: BTreeSet<String>,
    /// Cut host pairs, both orders.
    cut: BTreeSet<(String, String)>,
}

/// The shared view of the fleet's subnets. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct Lan {
    inner: Arc<Mutex<LanState>>,
}

impl Lan {
    fn lock(&self) -> std::sync::MutexGuard<'_, LanState> {
        // Every update is a single map operation; a poisoned lock still holds a consistent map.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Places `host` (listening on `addr`) in `subnet`.
    pub fn add(&self, host: &str, subnet: u8, addr: SocketAddr) {
        self.lock().hosts.insert(host.to_owned(), (subnet, addr));
    }

    /// Moves `host` to `subnet` (its LAN broadcasts now reach that subnet's hosts).
    pub fn set_subnet(&self, host: &str, subnet: u8) {
        if let Some(entry) = self.lock().hosts.get_mut(host) {
            entry.0 = subnet;
        }
    }

    /// The subnet of `host`.
    pub fn subnet(&self, host: &str) -> Option<u8> {
        self.lock().hosts.get(host).map(|(s, _)| *s)
    }

    /// Records whether `host` is its subnet's LSN now.
    pub fn set_lsn(&self, host: &str, is_lsn: bool) {
        let mut state = self.lock();
        if is_lsn {
            state.lsns.insert(host.to_owned());
        } else {
            state.lsns.remove(host);
        }
    }

    /// The hosts that are LSNs now, in name order.
    pub fn lsns(&self) -> Vec<String> {
        self.lock().lsns.iter().cloned().collect()
    }

    /// Cuts (`cut`) or restores the LAN between `a` and `b`: discovery stops (or resumes)
    /// naming one to the other.
    pub fn set_cut(&self, a: &str, b: &str, cut: bool) {
        let mut state = self.lock();
        for pair in [(a.to_owned(), b.to_owned()), (b.to_owned(), a.to_owned())] {
            if cut {
                state.cut.insert(pair);
            } else {
                state.cut.remove(&pair);
            }
        }
    }

    /// What a LAN broadcast from `host` finds: the LSNs of its subnet it can reach, itself
    /// excluded.
    pub fn lsns_near(&self, host: &str) -> Vec<Candidate> {
        let state = self.lock();
        let Some((subnet, _)) = state.hosts.get(host) else { return Vec::new() };
        state
            .lsns
            .iter()
            .filter(|h| h.as_str() != host)
            .filter(|h| !state.cut.contains(&(h.to_string(), host.to_owned())))
            .filter_map(|h| state.hosts.get(h))
            .filter(|(s, _)| s == subnet)
            .map(|(_, addr)| Candidate { addr: *addr, id: None, source: Source::Lan })
            .collect()
    }

    /// The [`Discovery`] of `host`.
    pub fn discovery(&self, host: &str) -> LanDiscovery {
        LanDiscovery { lan: self.clone(), host: host.to_owned() }
    }
}

/// One host's [`Discovery`]: answers with [`Lan::lsns_near`]. There is no cache: a restarted
/// node finds its LSN on the LAN or through the master.
#[derive(Debug, Clone)]
pub struct LanDiscovery {
    lan: Lan,
    host: String,
}

#[async_trait]
impl Discovery for LanDiscovery {
    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        Ok(self.lan.lsns_near(&self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        format!("{s}:4000").parse().unwrap()
    }

    #[test]
    fn a_broadcast_finds_the_reachable_lsns_of_its_own_subnet() {
        let lan = Lan::default();
        for (h, s) in [("10.1.0.1", 1), ("10.1.0.2", 1), ("10.1.0.3", 1), ("10.2.0.1", 2)] {
            lan.add(h, s, addr(h));
        }
        lan.set_lsn("10.1.0.1", true);
        lan.set_lsn("10.2.0.1", true);
        let found = |h| lan.lsns_near(h).iter().map(|c| c.addr).collect::<Vec<_>>();
        assert_eq!(found("10.1.0.2"), vec![addr("10.1.0.1")]);
        assert_eq!(found("10.1.0.1"), vec![]);
        lan.set_cut("10.1.0.1", "10.1.0.3", true);
        assert_eq!(found("10.1.0.3"), vec![]);
        lan.set_cut("10.1.0.3", "10.1.0.1", false);
        assert_eq!(found("10.1.0.3"), vec![addr("10.1.0.1")]);
        lan.set_subnet("10.1.0.3", 2);
        assert_eq!(found("10.1.0.3"), vec![addr("10.2.0.1")]);
        lan.set_lsn("10.2.0.1", false);
        assert_eq!(found("10.1.0.3"), vec![]);
    }
}
