//! [`OverlayFleet`]: a turmoil network of overlay nodes in numbered subnets and their master.

mod ask;
mod builder;
mod fault;
mod handle;
mod host;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::Duration,
};

pub use self::{ask::PollReport, builder::OverlayBuilder, handle::Control};
use self::{
    fault::Fault,
    handle::Running,
    host::{Common, Failures, MasterSpec, NodeSpec},
};
use fleetmesh::{
    overlay::{
        LocalNetwork, Master, MasterCommand, MasterEvent, Node, NodeCommand, NodeEvent, NodeState,
        PresenceEvent, Topology,
    },
    trust::{Authority, CertFlags},
    NodeId,
};

use crate::{
    firewall::{Firewall, UdpBlock},
    lan::Lan,
    log::EventLog,
    loss::Loss,
    seeds,
    tap::Tap,
    CommandError, RunError, NODE_PORT,
};

/// The master's host name (and address).
pub const MASTER_HOST: &str = "10.0.0.1";

/// The master's host name (and address) in an IPv6 fleet ([`OverlayBuilder::ipv6`]).
pub const MASTER_HOST_V6: &str = "fd00::1";

/// How long a node's certificate is valid, from the start of the run.
const CERT_VALIDITY: Duration = Duration::from_secs(30 * 86_400);

struct NodeEntry {
    id: NodeId,
    running: Running<Node>,
    control: Control<NodeCommand>,
    local: Arc<Mutex<LocalNetwork>>,
    tap: Tap,
    firewall: Firewall,
    fault: Fault,
}

/// A turmoil network of overlay [`Node`]s in numbered subnets and one [`Master`], each under
/// the real driver over the real UDP transport. See the [crate docs](crate) for an example.
///
/// * Hosts are named by their IP address, so the master sees real subnets: the master is
///   [`MASTER_HOST`] (`10.0.0.1`), node `i` of subnet `s` is `10.s.0.i`. Every host listens on
///   [`NODE_PORT`]; a node's local network is its address in a /24, which gives one subnet key
///   per subnet at the master.
/// * Links within a subnet have the LAN latency, all others (between subnets, to the master)
///   the WAN latency; both fixed, so runs repeat exactly.
/// * Discovery answers from the fleet's [`Lan`]: a node finds the LSNs of its subnet.
/// * Node and master events are logged with their simulated time; the test reads the running
///   machines' state (the master's [`Topology`], a node's state) between steps, and sends them
///   commands through [`Control`] handles.
/// * Hosts can be crashed, restarted (a node keeps its identity and certificate; the master
///   keeps its authority but forgets the topology), partitioned and moved between subnets.
pub struct OverlayFleet<'a> {
    sim: turmoil::Sim<'a>,
    authority: Authority,
    config: OverlayBuilder,
    lan: Lan,
    nodes: BTreeMap<String, NodeEntry>,
    names: BTreeMap<NodeId, String>,
    /// Nodes added per subnet, for the next host number.
    added: BTreeMap<u8, u8>,
    /// The NAT in front of each subnet's hosts added from now on ([`OverlayFleet::set_nat`]).
    nats: BTreeMap<u8, crate::NatKind>,
    identities: u64,
    master: Running<Master>,
    master_control: Control<MasterCommand>,
    master_tap: Tap,
    master_fault: Fault,
    node_log: EventLog<NodeEvent>,
    master_log: EventLog<MasterEvent>,
    /// Independent loss on every host's UDP sends.
    loss: Loss,
    /// Hosts whose driver ended while up, and how many of them a run already reported.
    failures: Failures,
    failures_seen: usize,
}

fn ip(host: &str) -> IpAddr {
    host.parse().unwrap_or_else(|_| panic!("host name {host:?} is not an IP address"))
}

impl OverlayFleet<'static> {
    /// A fleet seeded with `seed`.
    pub fn builder(seed: u64) -> OverlayBuilder {
        OverlayBuilder::new(seed)
    }
}

impl<'a> OverlayFleet<'a> {
    pub(crate) fn new(sim: turmoil::Sim<'a>, authority: Authority, config: OverlayBuilder) -> Self {
        let mut fleet = OverlayFleet {
            sim,
            authority,
            config,
            lan: Lan::default(),
            nodes: BTreeMap::new(),
            names: BTreeMap::new(),
            added: BTreeMap::new(),
            nats: BTreeMap::new(),
            identities: 0,
            master: Running::default(),
            master_control: Control::default(),
            master_tap: Tap::default(),
            master_fault: Fault::default(),
            node_log: EventLog::default(),
            master_log: EventLog::default(),
            loss: Loss::default(),
            failures: Failures::default(),
            failures_seen: 0,
        };
        fleet.loss.set(fleet.config.loss);
        fleet.add_master();
        fleet
    }

    fn common(&self, name: &str, tap: &Tap, firewall: &Firewall, fault: &Fault) -> Common {
        Common {
            name: name.to_owned(),
            seed: self.config.seed,
            start: self.config.start,
            restarts: Arc::new(AtomicU64::new(0)),
            tap: tap.clone(),
            firewall: firewall.clone(),
            loss: self.loss.clone(),
            fault: fault.clone(),
            failures: self.failures.clone(),
            tcp_fallback: self.config.tcp_fallback,
            ipv6: self.config.ipv6,
            nat: None,
        }
    }

    /// Puts the nodes of `subnet` added from now on behind a NAT of `kind` each (`None`: no
    /// NAT), which translates their UDP ports as a home router would (turmoil translates
    /// nothing; see [`Nat`](crate::Nat)). Their LAN (the subnet) stays inside it.
    pub fn set_nat(&mut self, subnet: u8, kind: Option<crate::NatKind>) {
        match kind {
            Some(kind) => self.nats.insert(subnet, kind),
            None => self.nats.remove(&subnet),
        };
    }

    /// The master's host name: [`MASTER_HOST`], or [`MASTER_HOST_V6`] in an IPv6 fleet.
    pub fn master_host(&self) -> &'static str {
        if self.config.ipv6 {
            MASTER_HOST_V6
        } else {
            MASTER_HOST
        }
    }

    /// Sets which direction of `host`'s UDP its firewall drops, from now on (TCP is never
    /// dropped).
    pub fn block_udp(&self, host: &str, block: UdpBlock) {
        self.entry(host).firewall.set(block);
    }

    fn add_master(&mut self) {
        let spec = MasterSpec {
            common: self.common(
                self.master_host(),
                &self.master_tap,
                &Firewall::default(),
                &self.master_fault,
            ),
            authority: self.authority.clone(),
            config: self.config.master.clone(),
            running: self.master.clone(),
            control: self.master_control.clone(),
            log: self.master_log.clone(),
        };
        self.sim.host(self.master_host(), move || host::run_master(spec.clone()));
        self.names.insert(self.authority.network_key().master_id(), "master".to_owned());
        self.set_latencies(self.master_host());
    }

    /// The address every host listens on: its name (an IP address) and [`NODE_PORT`].
    pub fn addr(host: &str) -> SocketAddr {
        SocketAddr::new(ip(host), NODE_PORT)
    }

    /// Sets the latency of every link of `host` from the subnets (the master is in none).
    fn set_latencies(&self, host: &str) {
        let subnet = self.lan.subnet(host);
        let others = self.nodes.keys().map(String::as_str).chain([self.master_host()]);
        for other in others.filter(|o| *o != host) {
            let same = subnet.is_some() && self.lan.subnet(other) == subnet;
            let latency = if same { self.config.lan } else { self.config.wan };
            self.sim.set_link_latency(ip(host), ip(other), latency);
        }
    }

    /// Adds a node host in `subnet` (1 to 255), named `10.<subnet>.0.<i>` for its `i`th node.
    /// It starts at once, certified by the fleet's master. Returns the host name.
    pub fn add_node(&mut self, subnet: u8) -> String {
        assert!(subnet != 0, "subnet 0 is the master's");
        let i = self.added.entry(subnet).or_default();
        *i = i.checked_add(1).filter(|i| *i < 255).expect("at most 254 nodes per subnet");
        let name = if self.config.ipv6 {
            format!("fd00:{subnet:x}::{i:x}")
        } else {
            format!("10.{subnet}.0.{i}")
        };
        self.identities += 1;
        let identity = seeds::identity(self.config.seed, self.identities);
        let certificate = self.authority.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::NONE,
            self.config.start,
            CERT_VALIDITY,
        );
        let id = identity.node_id();
        let listen = Self::addr(&name);
        let prefix_len = if self.config.ipv6 { 64 } else { 24 };
        let local = Arc::new(Mutex::new(LocalNetwork { addr: listen.ip(), prefix_len }));
        let entry = NodeEntry {
            id,
            running: Running::default(),
            control: Control::default(),
            local: local.clone(),
            tap: Tap::default(),
            firewall: Firewall::default(),
            fault: Fault::default(),
        };
        self.lan.add(&name, subnet, listen);
        let mut common = self.common(&name, &entry.tap, &entry.firewall, &entry.fault);
        common.nat = self.nats.get(&subnet).map(|k| (*k, (listen.ip(), prefix_len)));
        let spec = NodeSpec {
            common,
            identity,
            certificate,
            network: self.authority.network_key(),
            master: Self::addr(self.master_host()),
            listen,
            local,
            tune: self.config.tune.clone(),
            running: entry.running.clone(),
            control: entry.control.clone(),
            log: self.node_log.clone(),
            lan: self.lan.clone(),
        };
        self.sim.host(name.as_str(), move || host::run_node(spec.clone()));
        self.nodes.insert(name.clone(), entry);
        self.names.insert(id, name.clone());
        self.set_latencies(&name);
        name
    }

    /// Adds `n` nodes in `subnet`; returns their host names.
    pub fn add_subnet(&mut self, subnet: u8, n: usize) -> Vec<String> {
        (0..n).map(|_| self.add_node(subnet)).collect()
    }

    fn entry(&self, host: &str) -> &NodeEntry {
        self.nodes.get(host).unwrap_or_else(|| panic!("no node host named {host:?}"))
    }

    /// Every node host, in name order.
    pub fn hosts(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The node hosts now in `subnet`, in name order.
    pub fn hosts_in(&self, subnet: u8) -> Vec<String> {
        self.nodes.keys().filter(|h| self.lan.subnet(h) == Some(subnet)).cloned().collect()
    }

    /// The node id of `host`.
    pub fn node_id(&self, host: &str) -> NodeId {
        self.entry(host).id
    }

    /// The host name of `id` ("master" for the master), or its short id when unknown.
    pub fn name(&self, id: &NodeId) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_string()[..8].to_owned())
    }

    /// The subnet `host` is in now.
    pub fn subnet(&self, host: &str) -> u8 {
        self.lan.subnet(host).unwrap_or_else(|| panic!("no node host named {host:?}"))
    }

    /// The local network `host` starts on (and restarts on after [`set_subnet`](Self::set_subnet)).
    pub fn local_network(&self, host: &str) -> LocalNetwork {
        *self.entry(host).local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves `host`'s LAN to `subnet`: its discovery now finds that subnet's LSNs, its links
    /// to that subnet get the LAN latency, and a restart starts it on that subnet's local
    /// network (`10.<subnet>.0.<its host number>`, which it returns). The running node is not
    /// told: send it [`NodeCommand::Move`] with the returned network.
    pub fn set_subnet(&mut self, host: &str, subnet: u8) -> LocalNetwork {
        assert!(subnet != 0, "subnet 0 is the master's");
        let entry = self.entry(host);
        let local = if self.config.ipv6 {
            let number = host.rsplit(':').next().and_then(|n| u16::from_str_radix(n, 16).ok());
            let addr =
                std::net::Ipv6Addr::new(0xfd00, subnet.into(), 0, 0, 0, 0, 0, number.unwrap_or(1));
            LocalNetwork { addr: addr.into(), prefix_len: 64 }
        } else {
            let number = host.rsplit('.').next().and_then(|n| n.parse().ok()).unwrap_or(1);
            LocalNetwork { addr: IpAddr::from([10, subnet, 0, number]), prefix_len: 24 }
        };
        *entry.local.lock().unwrap_or_else(|e| e.into_inner()) = local;
        self.lan.set_subnet(host, subnet);
        self.set_latencies(host);
        local
    }

    /// The fleet's view of the subnets, shared with every node's discovery.
    pub fn lan(&self) -> &Lan {
        &self.lan
    }

    /// The hosts whose node believes it is an LSN now (its last state event), in name order.
    /// This is what the nodes believe, not the master's topology: two nodes of one subnet may
    /// both believe it for a while, and the master may still list an LSN that has crashed.
    /// For the master's view see [`lsn_of`](Self::lsn_of) and [`topology`](Self::topology).
    pub fn lsns(&self) -> Vec<String> {
        self.lan.lsns()
    }

    /// The hosts of `subnet` whose node believes it is an LSN now (see [`lsns`](Self::lsns):
    /// the nodes' belief, not the master's topology).
    pub fn lsns_in(&self, subnet: u8) -> Vec<String> {
        self.lsns().into_iter().filter(|h| self.lan.subnet(h) == Some(subnet)).collect()
    }

    /// `host`'s running node, shared with its driver (lock it briefly), if it is up.
    pub fn node(&self, host: &str) -> Option<Arc<Mutex<Node>>> {
        self.entry(host).running.get()
    }

    /// Runs `f` on `host`'s node, if it is up.
    pub fn with_node<R>(&self, host: &str, f: impl FnOnce(&Node) -> R) -> Option<R> {
        self.entry(host).running.with(f)
    }

    /// `host`'s node state, if it is up.
    pub fn node_state(&self, host: &str) -> Option<NodeState> {
        self.with_node(host, Node::state)
    }

    /// Whether `host`'s node is up: started, not crashed, and its driver still running (a
    /// driver that ended on its own makes the next run fail with [`RunError::HostFailed`]).
    pub fn is_up(&self, host: &str) -> bool {
        self.entry(host).running.get().is_some()
    }

    /// Runs `f` on the master, if it is up.
    pub fn with_master<R>(&self, f: impl FnOnce(&Master) -> R) -> Option<R> {
        self.master.with(f)
    }

    /// The running master, shared with its driver (lock it briefly).
    pub fn master(&self) -> Option<Arc<Mutex<Master>>> {
        self.master.get()
    }

    /// The master's topology, if it is up.
    pub fn topology(&self) -> Option<Topology> {
        self.with_master(Master::topology)
    }

    /// The master's topology with nodes named by host (times left out): stable across runs of
    /// the same scenario. Empty while the master is down.
    pub fn render_topology(&self) -> String {
        self.topology().map(|t| t.render(|id| self.name(id))).unwrap_or_default()
    }

    /// Whether every node that is up is present at the master, and nothing else is.
    pub fn all_present(&self) -> bool {
        let up: Vec<NodeId> =
            self.nodes.values().filter(|e| e.running.get().is_some()).map(|e| e.id).collect();
        self.with_master(|m| m.present_count() == up.len() && up.iter().all(|id| m.is_present(id)))
            .unwrap_or(false)
    }

    /// The commands handle of `host`'s node.
    pub fn control(&self, host: &str) -> Control<NodeCommand> {
        self.entry(host).control.clone()
    }

    /// Sends `command` to `host`'s node now.
    pub fn command(&self, host: &str, command: NodeCommand) -> Result<(), CommandError> {
        self.entry(host).control.try_send(command)
    }

    /// The commands handle of the master.
    pub fn master_control(&self) -> Control<MasterCommand> {
        self.master_control.clone()
    }

    /// Sends `command` to the master now.
    pub fn master_command(&self, command: MasterCommand) -> Result<(), CommandError> {
        self.master_control.try_send(command)
    }

    /// The wiretap on `host` (a node, or [`MASTER_HOST`]): what it receives while switched on.
    pub fn tap(&self, host: &str) -> Tap {
        if host == self.master_host() {
            return self.master_tap.clone();
        }
        self.entry(host).tap.clone()
    }

    /// Every node event so far, with host and time.
    pub fn node_log(&self) -> &EventLog<NodeEvent> {
        &self.node_log
    }

    /// Every event of `host`'s node so far (over all its runs), in order.
    pub fn node_events(&self, host: &str) -> Vec<NodeEvent> {
        self.node_log.of(host)
    }

    /// Every master event so far, with time.
    pub fn master_log(&self) -> &EventLog<MasterEvent> {
        &self.master_log
    }

    /// The master's presence events so far (over all its runs), in order.
    pub fn presence(&self) -> Vec<PresenceEvent> {
        self.master_log
            .all()
            .into_iter()
            .filter_map(|r| match r.event {
                MasterEvent::Presence(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Crashes `host` (a node or [`MASTER_HOST`]): it stops at once, without a word to anyone.
    pub fn crash(&mut self, host: &str) {
        self.sim.crash(ip(host));
        self.stopped(host);
    }

    /// Restarts `host` (after a crash, or as a crash and restart in one).
    pub fn bounce(&mut self, host: &str) {
        self.stopped(host);
        self.sim.bounce(ip(host));
    }

    fn stopped(&self, host: &str) {
        if host == self.master_host() {
            self.master.set(None);
            self.master_control.set(None);
        } else {
            let entry = self.entry(host);
            entry.running.set(None);
            entry.control.set(None);
            self.lan.set_lsn(host, false);
        }
    }

    /// Cuts every link between a host of `a` and a host of `b`, and their LAN.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.sim.partition(ip(x), ip(y));
                self.lan.set_cut(x, y, true);
            }
        }
    }

    /// Cuts `host` (a node or the master) off from every other host, the LAN included, until
    /// [`rejoin`](Self::rejoin). It keeps running: only the network is gone. Hosts added
    /// later are not cut off from it.
    pub fn isolate(&self, host: &str) {
        let others = self.others(host);
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.partition(&[host], &others);
    }

    /// Restores every link of `host` cut by [`isolate`](Self::isolate) (or by
    /// [`partition`](Self::partition)).
    pub fn rejoin(&self, host: &str) {
        let others = self.others(host);
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.repair(&[host], &others);
    }

    /// Every host but `host`, the master included.
    fn others(&self, host: &str) -> Vec<String> {
        let all = self.nodes.keys().map(String::as_str).chain([self.master_host()]);
        all.filter(|h| *h != host).map(str::to_owned).collect()
    }

    /// Sets the independent per-datagram loss from now on (see [`OverlayBuilder::loss`]).
    pub fn set_loss(&self, p: f64) {
        self.loss.set(p);
    }

    /// The independent per-datagram loss now.
    pub fn loss(&self) -> f64 {
        self.loss.get()
    }

    /// Sets the burst loss (turmoil's fail rate: a lost datagram takes everything in flight
    /// on its link with it) on every link from now on (see [`OverlayBuilder::burst_loss`]).
    pub fn set_burst_loss(&mut self, p: f64) {
        self.sim.set_fail_rate(p);
    }

    /// Restores every link between a host of `a` and a host of `b`.
    pub fn repair(&self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.sim.repair(ip(x), ip(y));
                self.lan.set_cut(x, y, false);
            }
        }
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    /// One simulation step; fails if a host's driver ended on its own meanwhile.
    fn step(&mut self) -> Result<(), RunError> {
        self.sim.step()?;
        if let Some(failure) = self.failures.since(self.failures_seen).into_iter().next() {
            self.failures_seen += 1;
            return Err(failure);
        }
        Ok(())
    }

    /// Runs the simulation for `d` of simulated time. Fails at once with
    /// [`RunError::HostFailed`], naming the host, when a host's driver panics or returns an
    /// error (each such end is reported once; the host counts as down afterwards).
    pub fn run_for(&mut self, d: Duration) -> Result<(), RunError> {
        let until = self.sim.elapsed() + d;
        while self.sim.elapsed() < until {
            self.step()?;
        }
        Ok(())
    }

    /// Runs until `cond` holds (checked before each step), returning the simulated time that
    /// took; fails with [`RunError::Timeout`] (the topology in the message) after `max`, and
    /// as [`run_for`](Self::run_for) does when a host's driver ends.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> Result<Duration, RunError> {
        let start = self.sim.elapsed();
        while !cond(self) {
            if self.sim.elapsed() - start >= max {
                return Err(RunError::Timeout { max, topology: self.render_topology() });
            }
            self.step()?;
        }
        Ok(self.sim.elapsed() - start)
    }

    /// The underlying turmoil simulation, for anything this type does not wrap (per-link
    /// latencies and burst loss, clients). Stepping it directly bypasses the driver-failure
    /// check of [`run_for`](Self::run_for).
    pub fn sim(&mut self) -> &mut turmoil::Sim<'a> {
        &mut self.sim
    }
}
