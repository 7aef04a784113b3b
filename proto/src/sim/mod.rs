//! A deterministic, virtual-time simulation of a whole fleet: one master and nodes in numbered
//! subnets, running the real sans-IO [`Node`] and [`Master`] state machines (the same code the
//! async driver runs) with real wire encoding and encryption, over a modelled network: LAN and
//! WAN latency, bandwidth, loss, NAT, partitions, crashes, moves and restarts. Discovery is
//! answered the way a LAN broadcast would be: by the live LSNs of the node's subnet.
//!
//! Nothing here reads a clock or a global random source: the same seed gives the same run
//! ([`Accounting::trace`] hashes every delivery, so two runs are easy to compare). Use it in
//! your own CI to test behaviour that depends on the whole network. [`day`] runs a whole
//! simulated day of a large fleet (diurnal rhythm, churn, failures) and reports on it; the
//! `fleetmesh simulate` command is a front end to it.
//!
//! Large fleets can run their subnets on several threads ([`Simulation::parallel`]) with the
//! same result for any number of threads.
//!
//! The module is behind the `sim` feature.
//!
//! ```
//! use std::time::Duration;
//! use fleetmesh_proto::sim::Simulation;
//!
//! let mut sim = Simulation::new(7);
//! for subnet in 1..=2 {
//!     for _ in 0..4 {
//!         sim.add(subnet);
//!     }
//! }
//! let took = sim.run_until(Duration::from_secs(30), |s| s.all_present());
//! assert!(took < Duration::from_secs(5));
//! assert_eq!(sim.master().topology().lsn_count(), 2);
//! ```

mod advance;
mod balance;
mod conntrack;
pub mod day;
mod dht;
#[cfg(test)]
mod fixture;
mod inventory;
mod lane;
mod master;
mod metrics;
mod nat;
mod network;
mod observe;
pub mod reach;
mod requests;
mod stats;
mod view;
mod window;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use rand::Rng;
use rand_core::SeedableRng;

use self::balance::Balance;
use self::lane::{Lane, SubnetInfo};
pub use self::{
    inventory::{document_bytes, sample_ratio, synthetic, InventoryModel, SimInventory},
    metrics::{
        decode_answer, query_body, synthetic_sample, MetricsModel, MetricsStats, NodeHistory,
        HISTORY_KIND,
    },
    nat::{Nat, NatKind},
    network::{host_addr, public_ip, NetModel, Subnet},
    requests::RequestStats,
    stats::{
        quantile_ms, Accounting, DhtStats, LinkClass, RateMeter, Role, Traffic, WanKind,
        HEADER_BYTES,
    },
};
use crate::{
    overlay::{
        LocalNetwork, Master, MasterConfig, MasterEvent, Node, NodeCommand, NodeEvent, NodeState,
        OverlayConfig,
    },
    trust::{Authority, CertFlags, Certificate},
    Endpoint, EndpointConfig, Identity, NodeId, Timestamp,
};

/// Protocol time at the start of every simulation.
pub const START: Timestamp = Timestamp::from_secs(1_700_000_000);

fn seed(n: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

/// One simulated node: its address, subnet, state machine (while running) and events.
pub struct Slot {
    /// Where it listens: see [`host_addr`].
    pub addr: SocketAddr,
    /// Its subnet (LAN). Move it with [`Simulation::move_node`].
    subnet: u16,
    /// The state machine, `None` while crashed.
    pub node: Option<Node>,
    /// Everything it reported, with the time (kept only while
    /// [`Simulation::keep_events`] is on).
    pub events: Vec<(Timestamp, NodeEvent)>,
    identity: Identity,
    seed: u64,
    /// Its request log as its store holds it (with [`Simulation::answer_requests`]): a
    /// restarted node remembers the requests it took, as the daemon does.
    pub(crate) requests_saved: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    /// Daily inventory changes so far, and what the master acknowledged (`inventory.rs`).
    pub(crate) inventory_rev: u32,
    pub(crate) inventory_acked: Option<(u64, crate::overlay::inventory::InventoryDocument)>,
    /// Its metric history (`metrics.rs`), kept across restarts as the daemon's file is.
    pub(crate) history: metrics::NodeHistory,
}

impl Slot {
    /// Its subnet.
    pub fn subnet(&self) -> u16 {
        self.subnet
    }

    /// Its identity's id.
    pub fn id(&self) -> NodeId {
        self.identity.node_id()
    }
}

/// Which UDP a host's own firewall drops (TCP always passes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpBlock {
    /// Drops UDP arriving at the host.
    pub inbound: bool,
    /// Drops UDP the host sends.
    pub outbound: bool,
}

/// The simulation: see the [module docs](self).
pub struct Simulation {
    /// Simulated time now.
    pub now: Timestamp,
    /// The master, `None` while it is down.
    pub master: Option<Master>,
    /// Everything the master reported, with the time.
    pub master_events: Vec<(Timestamp, MasterEvent)>,
    /// The nodes.
    pub slots: Vec<Slot>,
    /// The network model (latency, bandwidth, loss).
    pub net: NetModel,
    /// Adjusts every node's overlay configuration before it starts.
    pub tune: fn(OverlayConfig) -> OverlayConfig,
    /// The master's configuration (applies from the next master start).
    pub master_cfg: MasterConfig,
    /// Directed links that drop everything: (from, to).
    pub cut: HashSet<(SocketAddr, SocketAddr)>,
    /// When set, every endpoint (nodes and the master, from their next start) falls back to
    /// TCP after this long without a UDP answer. TCP datagrams take the same latency as UDP
    /// and are never lost (TCP retransmits). Default `None`.
    pub tcp_fallback: Option<Duration>,
    /// How long the certificates nodes start with are valid, from the simulation's start.
    /// Default 30 days; shorter makes renewals happen within a run.
    pub cert_validity: Duration,
    /// Per-host UDP firewalls, by slot.
    pub udp_blocks: HashMap<usize, UdpBlock>,
    /// Whether node and master events are kept in `events` / `master_events` (on by default;
    /// large runs turn it off and read [`Simulation::stats`]).
    pub keep_events: bool,
    /// Keeps the master's events in `master_events` even when `keep_events` is off: a large
    /// run can then hand its master's timeline to a replay (the admin API's storm benchmark)
    /// without holding every node's events. Default `false`.
    pub keep_master_events: bool,
    /// Every node answers each request it takes at once, with an empty `OK`, and keeps its
    /// request log across restarts as the daemon's store does (default `false`: the test
    /// answers, or nobody does). Set it before starting the nodes.
    pub answer_requests: bool,
    /// Inventories, when on ([`Simulation::inventory`]).
    pub(crate) inventory: Option<Box<inventory::SimInventory>>,
    /// Metric histories, when on ([`Simulation::metrics`]).
    pub(crate) metrics: Option<Box<metrics::MetricsStats>>,
    /// The master keeps its store across restarts and restores it, as the daemon does
    /// (`durable.rs`); default `false`: a restarted master starts empty. Set it before the
    /// master first restarts.
    pub durable_master: bool,
    master_store: master::MasterStore,
    /// What the run counted.
    pub stats: Accounting,
    /// Events handled: datagrams delivered to a running host plus timers that fired.
    pub events: u64,
    /// Datagrams one thread handed to another (see [`advance`](Self::advance)).
    pub handed: u64,
    /// The subnets, indexed by number (0 is never used).
    subnets: Vec<Subnet>,
    /// What other lanes read of each subnet, indexed the same way.
    info: Vec<SubnetInfo>,
    /// Each slot's subnet, for lanes that may not touch the slot itself.
    place: Vec<u16>,
    authority: Authority,
    master_starts: u64,
    seed: u64,
    uncertified: HashSet<usize>,
    /// Slot by address and by id, so a datagram or an event finds its host without a scan.
    by_addr: network::AddrBook,
    by_id: HashMap<NodeId, usize>,
    /// Each running node's filed deadline (the entry in its lane's timers).
    deadlines: Vec<Option<Timestamp>>,
    master_deadline: Option<Timestamp>,
    /// The lanes (`lane.rs`): one, or with [`parallel`](Self::parallel) one per subnet.
    lanes: Vec<Lane>,
    per_subnet: bool,
    /// Every lane's next event, ordered, and each lane's entry in it.
    lane_next: BTreeSet<(Timestamp, usize)>,
    filed: Vec<Option<Timestamp>>,
    threads: usize,
    /// How the lanes split over threads: each part's first lane and first slot (`None`: the
    /// subnets' slots are not in contiguous runs, so windows run on one thread).
    parts: Option<Vec<(usize, usize)>>,
    parts_stale: bool,
    /// How many nodes each part gets, after how busy the parts were (`balance.rs`).
    balance: Balance,
}

/// The master's address in every simulation.
pub fn master_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4000))
}

/// A lane's own random stream: lane 0's is the simulation's seed stream.
fn lane_rng(seed_n: u64, lane: usize) -> rand_chacha::ChaCha8Rng {
    let mix = (lane as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    rand_chacha::ChaCha8Rng::seed_from_u64(seed_n ^ mix)
}

impl Simulation {
    /// A simulation seeded with `seed_n`, with its master running and no nodes yet.
    pub fn new(seed_n: u64) -> Self {
        let authority = Authority::new(Identity::generate(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(seed_n),
        ));
        let mut w = Simulation {
            now: START,
            master: None,
            master_events: Vec::new(),
            slots: Vec::new(),
            net: NetModel::default(),
            tune: |c| c,
            master_cfg: MasterConfig::default(),
            cut: Default::default(),
            keep_events: true,
            keep_master_events: false,
            answer_requests: false,
            inventory: None,
            metrics: None,
            durable_master: false,
            master_store: Default::default(),
            tcp_fallback: None,
            cert_validity: Duration::from_secs(30 * 86_400),
            udp_blocks: HashMap::new(),
            stats: Accounting::new(),
            events: 0,
            handed: 0,
            subnets: Vec::new(),
            info: Vec::new(),
            place: Vec::new(),
            authority,
            master_starts: 0,
            seed: seed_n,
            uncertified: Default::default(),
            by_addr: Default::default(),
            by_id: Default::default(),
            deadlines: Vec::new(),
            master_deadline: None,
            lanes: vec![Lane::new(0, lane_rng(seed_n, 0))],
            per_subnet: false,
            lane_next: BTreeSet::new(),
            filed: vec![None],
            threads: 1,
            parts: None,
            parts_stale: true,
            balance: Balance::default(),
        };
        w.start_master();
        w
    }

    /// Gives every subnet its own lane of events (`lane.rs`), which
    /// [`advance`](Self::advance) runs on up to `threads` threads: for large fleets. Call it
    /// before adding nodes. The run is the same whatever `threads` is, but not the same as
    /// without lanes: each subnet draws its losses from its own random stream. Lanes split
    /// over threads only while each subnet's nodes are consecutive slots (add them subnet by
    /// subnet, and do not move them), and only when the WAN's shortest latency
    /// ([`NetModel::lookahead`]) is above zero.
    pub fn parallel(&mut self, threads: usize) {
        assert!(self.slots.is_empty(), "Simulation::parallel comes before the first node");
        self.per_subnet = true;
        self.threads = threads.max(1);
        let lanes = self.subnets.len().max(1);
        while self.lanes.len() < lanes {
            let l = self.lanes.len();
            self.lanes.push(Lane::new(l, lane_rng(self.seed, l)));
            self.filed.push(None);
        }
        self.parts_stale = true;
    }

    /// The subnet `id`, created on first use with the network model's WAN spread.
    fn subnet_mut(&mut self, id: u16) -> &mut Subnet {
        while self.subnets.len() <= id as usize {
            let n = self.subnets.len() as u16;
            let spread = self.net.wan_spread.as_micros() as i64;
            let rng = &mut self.lanes[0].rng;
            let offset = if spread > 0 { rng.gen_range(-spread..=spread) } else { 0 };
            self.subnets.push(Subnet::new(n, NatKind::None, offset));
            self.info.push(SubnetInfo {
                nat: NatKind::None,
                udp_blocked: false,
                wan_offset_us: offset,
            });
            if self.per_subnet && self.lanes.len() <= n as usize {
                self.lanes.push(Lane::new(n as usize, lane_rng(self.seed, n as usize)));
                self.filed.push(None);
            }
        }
        &mut self.subnets[id as usize]
    }

    /// Subnet `id`, if any node has been in it.
    pub fn subnet(&self, id: u16) -> Option<&Subnet> {
        self.subnets.get(id as usize)
    }

    /// Puts subnet `id` behind a NAT of `kind`. Existing mappings are dropped (mid-run, this
    /// is a router swapped: hosts reappear at new public ports).
    pub fn set_nat(&mut self, id: u16, kind: NatKind) {
        self.subnet_mut(id).nat.replace(kind);
        self.info[id as usize].nat = kind;
    }

    /// Adds a node in `subnet` (from 1) and starts it. Returns its index.
    pub fn add(&mut self, subnet: u16) -> usize {
        let sub = self.subnet_mut(subnet);
        let host = sub.next_host;
        sub.next_host += 1;
        let addr = host_addr(subnet, host);
        let seed_n = 100 + self.slots.len() as u64;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed_n << 20 | 0xf1ee7);
        let identity = Identity::generate(&mut rng);
        let idx = self.slots.len();
        self.by_id.insert(identity.node_id(), idx);
        self.slots.push(Slot {
            addr,
            subnet,
            node: None,
            events: Vec::new(),
            identity,
            seed: seed_n,
            requests_saved: Default::default(),
            inventory_rev: 0,
            inventory_acked: None,
            history: Default::default(),
        });
        self.place.push(subnet);
        self.subnet_mut(subnet).members.push(idx);
        self.by_addr.insert(subnet, host, idx);
        self.deadlines.push(None);
        self.parts_stale = true;
        self.start(idx);
        idx
    }

    /// Adds a node in `subnet` that has no certificate yet: it enrolls with the master (open
    /// enrollment) on its first contact, then joins. Returns its index.
    pub fn add_uncertified(&mut self, subnet: u16) -> usize {
        let idx = self.add(subnet);
        self.uncertified.insert(idx);
        self.start(idx);
        idx
    }

    fn certify(&mut self, identity: &Identity) -> Certificate {
        self.authority.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::NONE,
            START,
            self.cert_validity,
        )
    }

    /// (Re)starts node `i` with its identity and certificate. Its join is timed (see
    /// [`Accounting::joins`]) when the master is up and does not list it present already.
    pub fn start(&mut self, i: usize) {
        let identity = self.slots[i].identity.clone();
        let mut config = EndpointConfig::new(identity.clone(), self.authority.network_key())
            .tcp_fallback(self.tcp_fallback);
        if !self.uncertified.contains(&i) {
            config = config.certificate(self.certify(&identity));
        }
        let slot = &mut self.slots[i];
        slot.seed += 1000;
        let mut overlay = (self.tune)(OverlayConfig::new(master_addr(), slot.addr));
        overlay.local = LocalNetwork { addr: slot.addr.ip(), prefix_len: 24 };
        let mut node = Node::new(Endpoint::new(config, seed(slot.seed)), overlay);
        if self.answer_requests {
            let saved: Vec<(Vec<u8>, Vec<u8>)> =
                slot.requests_saved.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            node.requests_restore(self.now, &saved);
        }
        slot.node = Some(node);
        // A master that still lists the node (its crash not noticed yet) sees no change when
        // it rejoins the same LSN: no event would end the timing but an unrelated one later.
        let id = identity.node_id();
        if self.master.as_ref().is_some_and(|m| !m.is_present(&id)) {
            self.stats.expect_join(id, self.now);
        }
        self.with_view(|v| v.reschedule(i));
        self.inventory_started(i);
        self.metrics_started(i);
    }

    /// Cuts (or with `heal`, restores) the links between `a` and every node in `others`.
    pub fn partition(&mut self, a: usize, others: &[usize], heal: bool) {
        for &b in others {
            let (x, y) = (self.slots[a].addr, self.slots[b].addr);
            for pair in [(x, y), (y, x)] {
                if heal {
                    self.cut.remove(&pair);
                } else {
                    self.cut.insert(pair);
                }
            }
        }
    }

    /// Crashes node `i`: it stops at once, telling nobody.
    pub fn crash(&mut self, i: usize) {
        self.inventory_stopped(i);
        self.metrics_stopped(i);
        if let Some(n) = self.slots[i].node.take() {
            self.stats.dht_traffic_stopped.add(&n.dht_traffic());
        }
        self.stats.forget(self.now, i, &self.slots[i].identity.node_id());
        self.with_view(|v| v.reschedule(i));
    }

    /// Crashes node `i`; if it was an LSN and the master is up, times the failover: until
    /// every child it had is present under another LSN ([`Accounting::recoveries`]). Children
    /// that are down already (crashed before the LSN noticed) are not waited for: they rejoin
    /// when they restart, minutes later, whatever the failover did.
    pub fn crash_timed(&mut self, i: usize) {
        if self.master.is_some() {
            if let Some(n) = self.slots[i].node.as_ref().filter(|n| n.state() == NodeState::IsLsn) {
                let running =
                    |id: &NodeId| self.by_id.get(id).is_some_and(|&j| self.slots[j].node.is_some());
                let children = n.children().into_iter().filter(running).collect();
                self.stats.expect_failover(self.now, n.node_id(), children);
            }
        }
        self.crash(i);
    }

    /// Shuts node `i` down cleanly: it announces its part, then stops.
    pub fn stop(&mut self, i: usize) {
        if self.slots[i].node.is_some() {
            self.metrics_stopping(i);
            self.node_do(i, |n, now| n.handle_command(now, NodeCommand::Leave));
        }
        self.crash(i);
    }

    /// Moves node `i` to `subnet`: its LAN becomes that subnet's, it is told so
    /// ([`NodeCommand::Move`]), and the time until it is present under an LSN of the new
    /// subnet is measured ([`Accounting::moves`]). It keeps its address (the model's
    /// addresses are names, not routes).
    pub fn move_node(&mut self, i: usize, subnet: u16) {
        let old = self.slots[i].subnet;
        if old == subnet {
            return;
        }
        if let Some(s) = self.subnets.get_mut(old as usize) {
            s.members.retain(|&j| j != i);
        }
        let host = {
            let s = self.subnet_mut(subnet);
            s.members.push(i);
            s.next_host += 1;
            s.next_host - 1
        };
        self.slots[i].subnet = subnet;
        self.place[i] = subnet;
        self.parts_stale = true;
        if self.per_subnet {
            // Its timer and the datagrams on their way to it follow it to its new lane.
            let (from, to) = (usize::from(old), usize::from(subnet));
            if let Some(t) = self.deadlines[i] {
                self.lanes[from].timers.remove(&(t, i));
                self.lanes[to].timers.insert((t, i));
            }
            let (a, b) = if from < to {
                let (lo, hi) = self.lanes.split_at_mut(to);
                (&mut lo[from], &mut hi[0])
            } else {
                let (lo, hi) = self.lanes.split_at_mut(from);
                (&mut hi[0], &mut lo[to])
            };
            a.hand_over(i, b);
            self.refile(from);
            self.refile(to);
        }
        let local = LocalNetwork { addr: host_addr(subnet, host).ip(), prefix_len: 24 };
        if self.slots[i].node.is_some() {
            if self.master.is_some() {
                self.stats.expect_move(self.slots[i].identity.node_id(), self.now, subnet);
            }
            self.node_do(i, |n, now| n.handle_command(now, NodeCommand::Move(local)));
        }
    }

    /// The NAT class of node `i`'s subnet.
    pub fn nat_of(&self, i: usize) -> NatKind {
        self.info.get(self.slots[i].subnet() as usize).map_or(NatKind::None, |s| s.nat)
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> NodeId {
        self.slots[i].identity.node_id()
    }

    /// The slot of the node with `id`.
    pub fn slot_of_id(&self, id: &NodeId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Node `i` (panics while it is crashed).
    pub fn node(&self, i: usize) -> &Node {
        self.slots[i].node.as_ref().expect("node is running")
    }

    /// Acts on node `i` now, then sends what it produced.
    pub fn node_do<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.slots[i].node.as_mut().expect("node is running"), now);
        self.with_view(|v| v.drain(Some(i)));
        r
    }

    /// Blocks UDP at subnet `id`'s edge (WAN traffic in and out; the LAN is not affected), as
    /// a corporate firewall that only lets TCP out would.
    pub fn block_subnet_udp(&mut self, id: u16, blocked: bool) {
        self.subnet_mut(id).udp_blocked = blocked;
        self.info[id as usize].udp_blocked = blocked;
    }

    /// Sets what subnet `id` adds to the base WAN latency each way (negative: takes away; a
    /// WAN path never takes less than half the base), in microseconds.
    pub fn set_wan_offset_us(&mut self, id: u16, offset_us: i64) {
        self.subnet_mut(id).wan_offset_us = offset_us;
        self.info[id as usize].wan_offset_us = offset_us;
    }

    /// Runs `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.advance(self.now + d);
    }

    /// Runs until `cond`, returning the virtual time it took; panics after `max`.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&Simulation) -> bool,
    ) -> Duration {
        let start = self.now;
        let limit = self.now + max;
        while !cond(self) {
            if !self.step(limit) {
                panic!("condition not reached within {max:?}");
            }
        }
        self.now.saturating_since(start)
    }
}
