//! A crate-private virtual-time world for overlay tests: one master and nodes in numbered
//! subnets, LAN and WAN latency, loss, crashes and restarts. Discovery is answered the way a
//! LAN broadcast would be: by the live LSNs of the node's subnet.

use std::{cmp::Reverse, collections::BinaryHeap, net::SocketAddr, time::Duration};

use rand::Rng;
use rand_core::SeedableRng;

use super::{Master, MasterConfig, MasterEvent, Node, NodeEvent, NodeState, OverlayConfig};
use crate::{
    discovery::{Candidate, DiscoveryRequest, Source},
    harness::{seed, Fixture, T0},
    trust::OpenEnrollment,
    Endpoint, EndpointConfig, NodeId, Timestamp,
};

pub(crate) struct Slot {
    pub(crate) addr: SocketAddr,
    pub(crate) subnet: u8,
    pub(crate) node: Option<Node>,
    pub(crate) events: Vec<(Timestamp, NodeEvent)>,
    config: EndpointConfig,
    seed: u64,
}

type InFlight = (Timestamp, u64, SocketAddr, SocketAddr, Vec<u8>);

pub(crate) struct World {
    pub(crate) now: Timestamp,
    pub(crate) master: Option<Master>,
    pub(crate) master_events: Vec<(Timestamp, MasterEvent)>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) lan: Duration,
    pub(crate) wan: Duration,
    pub(crate) loss: f64,
    pub(crate) tune: fn(OverlayConfig) -> OverlayConfig,
    pub(crate) master_cfg: MasterConfig,
    /// Datagrams sent and bytes (with a 28-byte IPv4/UDP header each) between subnets.
    pub(crate) wan_datagrams: u64,
    pub(crate) wan_bytes: u64,
    /// Directed links that drop everything: (from, to).
    pub(crate) cut: std::collections::HashSet<(SocketAddr, SocketAddr)>,
    fx: Fixture,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: rand_chacha::ChaCha8Rng,
}

pub(crate) fn master_addr() -> SocketAddr {
    "192.0.2.1:4000".parse().unwrap()
}

impl World {
    pub(crate) fn new(seed_n: u64) -> Self {
        let fx = Fixture::new(seed_n);
        let mut w = World {
            now: T0,
            master: None,
            master_events: Vec::new(),
            slots: Vec::new(),
            lan: Duration::from_millis(1),
            wan: Duration::from_millis(20),
            loss: 0.0,
            tune: |c| c,
            master_cfg: MasterConfig::default(),
            wan_datagrams: 0,
            wan_bytes: 0,
            cut: Default::default(),
            fx,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed_n),
        };
        w.start_master();
        w
    }

    pub(crate) fn start_master(&mut self) {
        let config =
            EndpointConfig::master(self.fx.authority.clone(), OpenEnrollment::default(), T0);
        let restarts = self.master_events.len() as u64;
        self.master = Some(Master::new(
            Endpoint::new(config, seed(9_000 + restarts)),
            self.master_cfg.clone(),
        ));
    }

    /// Adds a node in `subnet` (it starts at once).
    pub(crate) fn add(&mut self, subnet: u8) -> usize {
        let i = self.slots.iter().filter(|s| s.subnet == subnet).count() as u8 + 1;
        let addr: SocketAddr = format!("10.{subnet}.0.{i}:4000").parse().unwrap();
        let config = self.fx.node();
        let seed_n = 100 + self.slots.len() as u64;
        self.slots.push(Slot {
            addr,
            subnet,
            node: None,
            events: Vec::new(),
            config,
            seed: seed_n,
        });
        let idx = self.slots.len() - 1;
        self.start(idx);
        idx
    }

    /// (Re)starts node `i` with its identity and certificate.
    pub(crate) fn start(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.seed += 1000;
        let config =
            EndpointConfig::new(slot.config.identity().clone(), self.fx.authority.network_key())
                .certificate(self.fx.certify(slot.config.identity(), crate::harness::DAY));
        let overlay = (self.tune)(OverlayConfig::new(master_addr(), slot.addr));
        slot.node = Some(Node::new(Endpoint::new(config, seed(slot.seed)), overlay));
    }

    /// Cuts (or with `heal`, restores) the links between `a` and every node in `others`.
    pub(crate) fn partition(&mut self, a: usize, others: &[usize], heal: bool) {
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

    pub(crate) fn crash(&mut self, i: usize) {
        self.slots[i].node = None;
    }

    pub(crate) fn id(&self, i: usize) -> NodeId {
        self.slots[i].config.identity().node_id()
    }

    pub(crate) fn node(&self, i: usize) -> &Node {
        self.slots[i].node.as_ref().expect("node is running")
    }

    pub(crate) fn node_mut(&mut self, i: usize) -> &mut Node {
        self.slots[i].node.as_mut().expect("node is running")
    }

    /// Acts on node `i` now, then sends what it produced.
    pub(crate) fn node_do<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.node_mut(i), now);
        self.drain(Some(i));
        r
    }

    /// Acts on the master now, then sends what it produced.
    pub(crate) fn master_do<R>(&mut self, f: impl FnOnce(&mut Master, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.master.as_mut().expect("master is running"), now);
        self.drain(None);
        r
    }

    pub(crate) fn master(&self) -> &Master {
        self.master.as_ref().expect("master is running")
    }

    fn slot_of(&self, addr: SocketAddr) -> Option<usize> {
        self.slots.iter().position(|s| s.addr == addr)
    }

    fn subnet_of(&self, addr: SocketAddr) -> Option<u8> {
        self.slot_of(addr).map(|i| self.slots[i].subnet)
    }

    fn latency(&self, a: SocketAddr, b: SocketAddr) -> Duration {
        match (self.subnet_of(a), self.subnet_of(b)) {
            (Some(x), Some(y)) if x == y => self.lan,
            _ => self.wan,
        }
    }

    fn enqueue(&mut self, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        let lat = self.latency(src, dst);
        if lat == self.wan {
            self.wan_datagrams += 1;
            self.wan_bytes += bytes.len() as u64 + 28;
        }
        if self.cut.contains(&(src, dst)) || (self.loss > 0.0 && self.rng.gen_bool(self.loss)) {
            return;
        }
        self.seq += 1;
        self.queue.push(Reverse((self.now + lat, self.seq, src, dst, bytes)));
    }

    /// Collects what host `i` (or the master, for `None`) produced.
    fn drain(&mut self, i: Option<usize>) {
        let now = self.now;
        match i {
            None => {
                let Some(m) = self.master.as_mut() else { return };
                let mut out = Vec::new();
                while let Some(t) = m.poll_transmit() {
                    out.push(t);
                }
                while let Some(e) = m.poll_event() {
                    self.master_events.push((now, e));
                }
                for t in out {
                    self.enqueue(master_addr(), t.dst, t.payload);
                }
            }
            Some(i) => {
                let Some(n) = self.slots[i].node.as_mut() else { return };
                let mut out = Vec::new();
                let mut discover = false;
                while let Some(t) = n.poll_transmit() {
                    out.push(t);
                }
                while let Some(r) = n.poll_request() {
                    discover |= r == DiscoveryRequest::Discover;
                }
                let mut events = Vec::new();
                while let Some(e) = n.poll_event() {
                    events.push((now, e));
                }
                self.slots[i].events.extend(events);
                let src = self.slots[i].addr;
                for t in out {
                    self.enqueue(src, t.dst, t.payload);
                }
                if discover {
                    let subnet = self.slots[i].subnet;
                    let found: Vec<Candidate> = self
                        .slots
                        .iter()
                        .enumerate()
                        .filter(|(j, s)| {
                            *j != i
                                && s.subnet == subnet
                                && !self.cut.contains(&(s.addr, src))
                                && s.node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn)
                        })
                        .map(|(_, s)| Candidate { addr: s.addr, id: None, source: Source::Lan })
                        .collect();
                    if let Some(n) = self.slots[i].node.as_mut() {
                        n.handle_candidates(now, found);
                    }
                    self.drain(Some(i));
                }
            }
        }
    }

    fn next_time(&self) -> Option<Timestamp> {
        let q = self.queue.peek().map(|Reverse((t, ..))| *t);
        let m = self.master.as_ref().and_then(|m| m.poll_timeout());
        let n = self.slots.iter().filter_map(|s| s.node.as_ref()?.poll_timeout()).min();
        [q, m, n].into_iter().flatten().min()
    }

    /// Handles everything due at the earliest deadline; false when nothing is due by `limit`.
    pub(crate) fn step(&mut self, limit: Timestamp) -> bool {
        let Some(next) = self.next_time() else { return false };
        if next > limit {
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        if self.queue.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
            let Reverse((_, _, src, dst, bytes)) = self.queue.pop().unwrap();
            if dst == master_addr() {
                if let Some(m) = self.master.as_mut() {
                    m.handle_datagram(now, src, &bytes);
                    self.drain(None);
                }
            } else if let Some(i) = self.slot_of(dst) {
                if let Some(n) = self.slots[i].node.as_mut() {
                    n.handle_datagram(now, src, &bytes);
                    self.drain(Some(i));
                }
            }
            return true;
        }
        if self.master.as_ref().and_then(|m| m.poll_timeout()).is_some_and(|t| t <= now) {
            if let Some(m) = self.master.as_mut() {
                m.handle_timeout(now);
            }
            self.drain(None);
        }
        for i in 0..self.slots.len() {
            let due = self.slots[i]
                .node
                .as_ref()
                .and_then(|n| n.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                if let Some(n) = self.slots[i].node.as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(Some(i));
            }
        }
        true
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until `cond`, returning the virtual time it took; panics after `max`.
    pub(crate) fn run_until(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&World) -> bool,
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

    /// Whether every running node is present at the master.
    pub(crate) fn all_present(&self) -> bool {
        let Some(m) = &self.master else { return false };
        self.slots
            .iter()
            .filter(|s| s.node.is_some())
            .all(|s| m.is_present(&s.config.identity().node_id()))
            && m.present_count() == self.slots.iter().filter(|s| s.node.is_some()).count()
    }

    /// Names nodes "s<subnet>n<i>" for readable, stable dumps.
    pub(crate) fn name(&self, id: &NodeId) -> String {
        self.slots
            .iter()
            .position(|s| s.config.identity().node_id() == *id)
            .map(|i| {
                let s = &self.slots[i];
                format!(
                    "s{}n{}",
                    s.subnet,
                    s.addr.ip().to_string().rsplit('.').next().unwrap_or("?")
                )
            })
            .unwrap_or_else(|| format!("{id:?}"))
    }
}
