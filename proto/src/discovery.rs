//! Candidate peers and what a machine asks of discovery.
//!
//! Discovery itself (a LAN round, a cache on disk) is I/O and lives in the `fleetmesh` crate's
//! `Discovery` trait; the core only names [`Candidate`]s and asks with [`DiscoveryRequest`]s,
//! which its driver or the simulator carries out.

use std::net::SocketAddr;

use crate::NodeId;

/// Where a candidate came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[non_exhaustive]
pub enum Source {
    /// Heard on the local network.
    Lan,
    /// Remembered from an earlier run.
    Cache,
    /// Named by the master.
    Master,
    /// Found in the DHT.
    Dht,
    /// Configured by hand.
    Static,
}

/// A peer worth trying.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Candidate {
    /// Where to reach it.
    pub addr: SocketAddr,
    /// Its id, when known (the session then checks it is that node).
    pub id: Option<NodeId>,
    /// Where this candidate came from.
    pub source: Source,
}

/// What a sans-IO machine asks of discovery (the driver or simulator carries it out).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryRequest {
    /// Run discovery (the `fleetmesh` crate's `Discovery::discover`) and hand the result back to the machine.
    Discover,
    /// Tell discovery that this candidate worked (`Discovery::remember`).
    Remember(Candidate),
}
