//! A deterministic, virtual-time simulation of a whole fleet: one master and nodes in numbered
//! subnets, running the real sans-IO [`Node`] and [`Master`] state machines (the same code the
//! async driver runs) with real wire encoding and encryption, over a modelled network: LAN and
//! WAN latency, loss, partitions, crashes and restarts. Discovery is answered the way a LAN
//! broadcast would be: by the live LSNs of the node's subnet.
//!
//! Nothing here reads a clock or a global random source: the same seed gives the same run.
//! Use it in your own CI to test behaviour that depends on the whole network.
//!
//! ```
//! use std::time::Duration;
//! use fleetmesh::sim::Simulation;
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

use std::{cmp::Reverse, collections::BinaryHeap, net::SocketAddr, time::Duration};

use rand::Rng;
use rand_core::SeedableRng;

use crate::{
    discovery::{Candidate, DiscoveryRequest, Source},
    overlay::{Master, MasterConfig, MasterEvent, Node, NodeEvent, NodeState, OverlayConfig},
    trust::{Authority, CertFlags, Certificate, OpenEnrollment},
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
    /// Where it listens: `10.<subnet>.0.<i>:4000`.
    pub addr: SocketAddr,
    /// Its subnet (LAN); change it to model a move.
    pub subnet: u8,
    /// The state machine, `None` while crashed.
    pub node: Option<Node>,
    /// Everything it reported, with the time.
    pub events: Vec<(Timestamp, NodeEvent)>,
    identity: Identity,
    seed: u64,
}

type InFlight = (Timestamp, u64, SocketAddr, SocketAddr, Vec<u8>);

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
    /// One-way latency inside a subnet. Default 1 ms.
    pub lan: Duration,
    /// One-way latency between subnets and to the master. Default 20 ms.
    pub wan: Duration,
    /// Probability that any datagram is lost. Default 0.
    pub loss: f64,
    /// Adjusts every node's overlay configuration before it starts.
    pub tune: fn(OverlayConfig) -> OverlayConfig,
    /// The master's configuration (applies from the next master start).
    pub master_cfg: MasterConfig,
    /// Datagrams between subnets or to/from the master.
    pub wan_datagrams: u64,
    /// Their bytes, counting a 28-byte IPv4/UDP header each.
    pub wan_bytes: u64,
    /// Directed links that drop everything: (from, to).
    pub cut: std::collections::HashSet<(SocketAddr, SocketAddr)>,
    authority: Authority,
    master_starts: u64,
    uncertified: std::collections::HashSet<usize>,
    /// Slot by address, so a datagram finds its host without a scan.
    by_addr: std::collections::HashMap<SocketAddr, usize>,
    per_subnet: std::collections::HashMap<u8, usize>,
    /// Every running node's next deadline, ordered, and each slot's entry in it: the next due
    /// timer is found without scanning the fleet.
    timers: std::collections::BTreeSet<(Timestamp, usize)>,
    deadlines: Vec<Option<Timestamp>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: rand_chacha::ChaCha8Rng,
}

/// The master's address in every simulation.
pub fn master_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4000))
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
            lan: Duration::from_millis(1),
            wan: Duration::from_millis(20),
            loss: 0.0,
            tune: |c| c,
            master_cfg: MasterConfig::default(),
            wan_datagrams: 0,
            wan_bytes: 0,
            cut: Default::default(),
            authority,
            master_starts: 0,
            uncertified: Default::default(),
            by_addr: Default::default(),
            per_subnet: Default::default(),
            timers: Default::default(),
            deadlines: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed_n),
        };
        w.start_master();
        w
    }

    /// (Re)starts the master (a restart loses all its state, as a real restart would).
    pub fn start_master(&mut self) {
        let config =
            EndpointConfig::master(self.authority.clone(), OpenEnrollment::default(), START);
        self.master_starts += 1;
        let endpoint = Endpoint::new(config, seed(1 << 40 | self.master_starts));
        self.master = Some(Master::new(endpoint, self.master_cfg.clone()));
    }

    /// Adds a node in `subnet` (1 to 255) and starts it. Returns its index.
    pub fn add(&mut self, subnet: u8) -> usize {
        // Addresses are handed out per subnet in order; count the subnet without a scan.
        let i = *self.per_subnet.entry(subnet).and_modify(|n| *n += 1).or_insert(0);
        let addr = SocketAddr::from(([10, subnet, (i / 250) as u8, (i % 250) as u8 + 1], 4000));
        let seed_n = 100 + self.slots.len() as u64;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed_n << 20 | 0xf1ee7);
        let identity = Identity::generate(&mut rng);
        self.slots.push(Slot {
            addr,
            subnet,
            node: None,
            events: Vec::new(),
            identity,
            seed: seed_n,
        });
        let idx = self.slots.len() - 1;
        self.by_addr.insert(addr, idx);
        self.deadlines.push(None);
        self.start(idx);
        idx
    }

    /// Adds a node in `subnet` that has no certificate yet: it enrolls with the master (open
    /// enrollment) on its first contact, then joins. Returns its index.
    pub fn add_uncertified(&mut self, subnet: u8) -> usize {
        let idx = self.add(subnet);
        self.uncertified.insert(idx);
        self.start(idx);
        idx
    }

    fn certify(&mut self, identity: &Identity) -> Certificate {
        let month = Duration::from_secs(30 * 86_400);
        self.authority.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::NONE,
            START,
            month,
        )
    }

    /// (Re)starts node `i` with its identity and certificate.
    pub fn start(&mut self, i: usize) {
        let identity = self.slots[i].identity.clone();
        let mut config = EndpointConfig::new(identity.clone(), self.authority.network_key());
        if !self.uncertified.contains(&i) {
            config = config.certificate(self.certify(&identity));
        }
        let slot = &mut self.slots[i];
        slot.seed += 1000;
        let overlay = (self.tune)(OverlayConfig::new(master_addr(), slot.addr));
        slot.node = Some(Node::new(Endpoint::new(config, seed(slot.seed)), overlay));
        self.reschedule(i);
    }

    /// Refiles node `i`'s next deadline after anything touched it.
    fn reschedule(&mut self, i: usize) {
        if let Some(old) = self.deadlines[i].take() {
            self.timers.remove(&(old, i));
        }
        let next = self.slots[i].node.as_ref().and_then(|n| n.poll_timeout());
        if let Some(t) = next {
            self.timers.insert((t, i));
        }
        self.deadlines[i] = next;
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
        self.slots[i].node = None;
        self.reschedule(i);
    }

    /// Node `i`'s id.
    pub fn id(&self, i: usize) -> NodeId {
        self.slots[i].identity.node_id()
    }

    /// Node `i` (panics while it is crashed).
    pub fn node(&self, i: usize) -> &Node {
        self.slots[i].node.as_ref().expect("node is running")
    }

    /// Acts on node `i` now, then sends what it produced.
    pub fn node_do<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.slots[i].node.as_mut().expect("node is running"), now);
        self.drain(Some(i));
        r
    }

    /// Acts on the master now, then sends what it produced.
    pub fn master_do<R>(&mut self, f: impl FnOnce(&mut Master, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.master.as_mut().expect("master is running"), now);
        self.drain(None);
        r
    }

    /// The master (panics while it is down).
    pub fn master(&self) -> &Master {
        self.master.as_ref().expect("master is running")
    }

    fn slot_of(&self, addr: SocketAddr) -> Option<usize> {
        self.by_addr.get(&addr).copied()
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

    /// Collects what host `i` (or the master, for `None`) produced, and refiles its deadline.
    fn drain(&mut self, i: Option<usize>) {
        self.drain_outputs(i);
        if let Some(i) = i {
            self.reschedule(i);
        }
    }

    fn drain_outputs(&mut self, i: Option<usize>) {
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
        let n = self.timers.first().map(|(t, _)| *t);
        [q, m, n].into_iter().flatten().min()
    }

    /// Handles everything due at the earliest deadline; false when nothing is due by `limit`.
    pub fn step(&mut self, limit: Timestamp) -> bool {
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
        // Every node whose deadline has come, earliest (then lowest index) first.
        let mut handled = std::collections::HashSet::new();
        while let Some(&(t, i)) = self.timers.first() {
            if t > now {
                break;
            }
            // A machine that leaves its deadline in the past after handling it would make a
            // driver spin forever; fail loudly instead of hanging.
            assert!(
                handled.insert(i),
                "node {i} keeps its deadline {t:?} due at {now:?}: a driver would spin"
            );
            if let Some(n) = self.slots[i].node.as_mut() {
                n.handle_timeout(now);
            }
            self.drain(Some(i));
        }
        true
    }

    /// Runs `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
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

    /// Whether every running node is present at the master.
    pub fn all_present(&self) -> bool {
        let Some(m) = &self.master else { return false };
        self.slots.iter().filter(|s| s.node.is_some()).all(|s| m.is_present(&s.identity.node_id()))
            && m.present_count() == self.slots.iter().filter(|s| s.node.is_some()).count()
    }

    /// Names nodes "s<subnet>n<i>" for readable, stable dumps.
    pub fn name(&self, id: &NodeId) -> String {
        self.slots
            .iter()
            .position(|s| s.identity.node_id() == *id)
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
