//! Which LSNs are registered, and where their sessions with the master are.

use std::net::SocketAddr;

use super::Registry;
use crate::NodeId;

impl Registry {
    /// LSNs registered.
    pub(in crate::overlay::master) fn lsn_count(&self) -> usize {
        self.lsns.len()
    }

    pub(in crate::overlay::master) fn is_lsn(&self, peer: &NodeId) -> bool {
        self.lsns.contains_key(peer)
    }

    /// The address `lsn`'s session with the master uses now.
    pub(in crate::overlay::master) fn lsn_addr(&self, lsn: &NodeId) -> Option<SocketAddr> {
        self.lsns.get(lsn).map(|l| l.addr)
    }

    /// Every LSN with its session address.
    pub(in crate::overlay::master) fn lsn_addrs(&self) -> Vec<(NodeId, SocketAddr)> {
        self.lsns.iter().map(|(id, l)| (*id, l.addr)).collect()
    }

    /// The `n` LSNs heard from last, with their session addresses.
    pub(in crate::overlay::master) fn latest_lsns(&self, n: usize) -> Vec<(NodeId, SocketAddr)> {
        let latest = self.lsn_expiry.iter().rev().take(n);
        latest.filter_map(|(_, id)| self.lsns.get(id).map(|l| (*id, l.addr))).collect()
    }
}
