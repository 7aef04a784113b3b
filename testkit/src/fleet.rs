use std::{
    collections::BTreeMap,
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use fleetmesh::{
    driver::{self, Clock, DriverStopped, EndpointCommand},
    trust::{Authority, Certificate, EnrollmentPolicy, NetworkKey, OpenEnrollment},
    wire::Message,
    Endpoint, EndpointConfig, Event, Identity, NodeId, Timestamp, Transport,
};
use rand_core::SeedableRng;
use tokio::sync::mpsc;

use crate::{log::EventLog, seeds};

/// The port every fleet node listens on.
pub const NODE_PORT: u16 = 4000;

/// Which real transport the nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// `fleetmesh-udp` over turmoil's UDP.
    #[default]
    Udp,
    /// `fleetmesh-tcp` over turmoil's TCP.
    Tcp,
}

/// Configures a [`Fleet`].
#[derive(Debug, Clone)]
pub struct FleetBuilder {
    seed: u64,
    transport: TransportKind,
    duration: Duration,
    start: Timestamp,
    ipv6: bool,
    latency: Option<Duration>,
}

impl FleetBuilder {
    /// Nodes talk over `kind`. Default UDP.
    pub fn transport(mut self, kind: TransportKind) -> Self {
        self.transport = kind;
        self
    }

    /// The longest the simulation may run. Default one hour of simulated time.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Hosts get IPv6 addresses instead of IPv4.
    pub fn ipv6(mut self, yes: bool) -> Self {
        self.ipv6 = yes;
        self
    }

    /// The most a message may be delayed on any link (turmoil's maximum latency).
    pub fn max_latency(mut self, d: Duration) -> Self {
        self.latency = Some(d);
        self
    }

    /// Protocol time at the start of the run (certificates are issued at this time).
    pub fn start(mut self, t: Timestamp) -> Self {
        self.start = t;
        self
    }

    /// Builds the fleet: a simulation and a master authority derived from the seed.
    pub fn build(self) -> Fleet<'static> {
        let mut builder = turmoil::Builder::new();
        builder.rng_seed(self.seed).simulation_duration(self.duration);
        if self.ipv6 {
            builder.ip_version(turmoil::IpVersion::V6);
        }
        if let Some(latency) = self.latency {
            builder.max_message_latency(latency);
        }
        let authority = Authority::new(Identity::generate(
            &mut rand_chacha::ChaCha20Rng::seed_from_u64(self.seed),
        ));
        Fleet {
            sim: builder.build(),
            authority,
            config: self,
            nodes: BTreeMap::new(),
            log: EventLog::default(),
            identities: 0,
            tokens: BTreeMap::new(),
        }
    }
}

/// Sends commands to one fleet node from a turmoil client. Survives the node's restarts.
#[derive(Debug, Clone)]
pub struct NodeControl {
    commands: Arc<Mutex<Option<mpsc::Sender<EndpointCommand>>>>,
}

impl NodeControl {
    /// Sends any command. Fails while the node is down.
    pub async fn command(&self, command: EndpointCommand) -> Result<(), DriverStopped> {
        let sender = self.commands.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match sender {
            Some(tx) => tx.send(command).await.map_err(|_| DriverStopped),
            None => Err(DriverStopped),
        }
    }

    /// Opens a session with `addr`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expect: Option<NodeId>,
    ) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::Connect { addr, expect }).await
    }

    /// Sends `message` to whoever is at `addr`.
    pub async fn send_to(&self, addr: SocketAddr, message: Message) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::SendTo { addr, message }).await
    }

    /// Sends `message` to `peer` over its session.
    pub async fn send(&self, peer: NodeId, message: Message) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::Send { peer, message }).await
    }
}

type PolicyFactory = Arc<dyn Fn() -> Box<dyn EnrollmentPolicy> + Send + Sync>;

struct NodeEntry {
    id: NodeId,
    control: NodeControl,
}

/// A turmoil network of fleetmesh nodes. See the [crate docs](crate).
pub struct Fleet<'a> {
    sim: turmoil::Sim<'a>,
    authority: Authority,
    config: FleetBuilder,
    nodes: BTreeMap<String, NodeEntry>,
    log: EventLog,
    identities: u64,
    tokens: BTreeMap<String, String>,
}

/// Everything a host needs to (re)start its node.
#[derive(Clone)]
struct HostSpec {
    name: String,
    identity: Identity,
    certificate: Option<Certificate>,
    network: NetworkKey,
    master: Option<(Authority, PolicyFactory)>,
    token: Option<String>,
    transport: TransportKind,
    start: Timestamp,
    seed: u64,
    restarts: Arc<AtomicU64>,
    commands: Arc<Mutex<Option<mpsc::Sender<EndpointCommand>>>>,
    log: EventLog,
}

impl Fleet<'static> {
    /// A fleet seeded with `seed`.
    pub fn builder(seed: u64) -> FleetBuilder {
        FleetBuilder {
            seed,
            transport: TransportKind::Udp,
            duration: Duration::from_secs(3600),
            start: Timestamp::from_secs(1_700_000_000),
            ipv6: false,
            latency: None,
        }
    }

    /// The network key of this fleet's master.
    pub fn network_key(&self) -> NetworkKey {
        self.authority.network_key()
    }

    /// The master's signing authority (to issue certificates or revocation lists in a test).
    pub fn authority(&mut self) -> &mut Authority {
        &mut self.authority
    }

    /// A fresh identity, derived from the fleet's seed.
    pub fn identity(&mut self) -> Identity {
        self.identities += 1;
        seeds::identity(self.config.seed, self.identities)
    }

    /// A certificate from this fleet's master for `identity`, valid for 30 days from the start.
    pub fn certify(&mut self, identity: &Identity) -> Certificate {
        self.authority.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            fleetmesh::trust::CertFlags::NONE,
            self.config.start,
            Duration::from_secs(30 * 86_400),
        )
    }

    /// Adds a host running a certified node of this fleet's network.
    pub fn add_node(&mut self, name: &str) -> NodeId {
        let identity = self.identity();
        let certificate = self.certify(&identity);
        let network = self.network_key();
        self.add_node_with(name, identity, Some(certificate), network)
    }

    /// Adds a host running a node with any identity, certificate (or none, to enroll) and
    /// network key: for tests of foreign, expired or missing credentials.
    pub fn add_node_with(
        &mut self,
        name: &str,
        identity: Identity,
        certificate: Option<Certificate>,
        network: NetworkKey,
    ) -> NodeId {
        self.add_host(name, identity, certificate, network, None)
    }

    /// Adds a host running a node without a certificate, configured to enroll with `token`
    /// (tell it to connect to the master to do so).
    pub fn add_node_with_token(&mut self, name: &str, token: &str) -> NodeId {
        let identity = self.identity();
        let network = self.network_key();
        self.tokens.insert(name.to_owned(), token.to_owned());
        self.add_host(name, identity, None, network, None)
    }

    /// Adds the master host. It answers enrollment requests with the policy `policy` makes
    /// (called again on each restart: a restarted master starts from its configured policy).
    pub fn add_master(
        &mut self,
        name: &str,
        policy: impl Fn() -> Box<dyn EnrollmentPolicy> + Send + Sync + 'static,
    ) -> NodeId {
        let identity = self.authority.identity().clone();
        let network = self.network_key();
        let master = (self.authority.clone(), Arc::new(policy) as PolicyFactory);
        self.add_host(name, identity, None, network, Some(master))
    }

    /// Adds the master host with open enrollment.
    pub fn add_open_master(&mut self, name: &str) -> NodeId {
        self.add_master(name, || Box::new(OpenEnrollment::default()))
    }

    fn add_host(
        &mut self,
        name: &str,
        identity: Identity,
        certificate: Option<Certificate>,
        network: NetworkKey,
        master: Option<(Authority, PolicyFactory)>,
    ) -> NodeId {
        assert!(!self.nodes.contains_key(name), "host {name:?} added twice");
        let id = identity.node_id();
        let commands = Arc::new(Mutex::new(None));
        let spec = HostSpec {
            name: name.to_owned(),
            identity,
            certificate,
            network,
            master,
            token: self.tokens.get(name).cloned(),
            transport: self.config.transport,
            start: self.config.start,
            seed: self.config.seed,
            restarts: Arc::new(AtomicU64::new(0)),
            commands: commands.clone(),
            log: self.log.clone(),
        };
        self.sim.host(name, move || run_host(spec.clone()));
        self.nodes.insert(name.to_owned(), NodeEntry { id, control: NodeControl { commands } });
        id
    }

    /// The node id of host `name`.
    pub fn node_id(&self, name: &str) -> NodeId {
        self.entry(name).id
    }

    /// The address fleet nodes reach host `name` at.
    pub fn addr(&self, name: &str) -> SocketAddr {
        SocketAddr::new(self.sim.lookup(name), NODE_PORT)
    }

    /// A handle to send commands to host `name`'s node from a client.
    pub fn control(&self, name: &str) -> NodeControl {
        self.entry(name).control.clone()
    }

    fn entry(&self, name: &str) -> &NodeEntry {
        self.nodes.get(name).unwrap_or_else(|| panic!("no host named {name:?}"))
    }

    /// Every event of host `name` so far, in order.
    pub fn events(&self, name: &str) -> Vec<Event> {
        self.log.of(name)
    }

    /// The shared event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Adds a client task (it runs until it returns).
    pub fn client<F>(&mut self, name: &str, client: F)
    where
        F: Future<Output = turmoil::Result> + 'static,
    {
        self.sim.client(name, client);
    }

    /// Cuts the links between `a` and `b`.
    pub fn partition(&self, a: &str, b: &str) {
        self.sim.partition(a, b);
    }

    /// Restores the links between `a` and `b`.
    pub fn repair(&self, a: &str, b: &str) {
        self.sim.repair(a, b);
    }

    /// Crashes host `name`: its node stops at once, without a word to anyone.
    pub fn crash(&mut self, name: &str) {
        self.sim.crash(name);
        *self.entry(name).control.commands.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Restarts host `name` (after a crash, or as a crash and restart in one).
    pub fn bounce(&mut self, name: &str) {
        self.sim.bounce(name);
    }

    /// Runs the simulation for `d` of simulated time (or until every client finished and the
    /// simulation's time limit is reached, whichever first).
    pub fn run_for(&mut self, d: Duration) -> turmoil::Result {
        crate::run::run_for(&mut self.sim, d)
    }

    /// Runs until `cond` holds on the event log, or fails after `max` of simulated time.
    pub fn run_until(
        &mut self,
        max: Duration,
        mut cond: impl FnMut(&EventLog) -> bool,
    ) -> turmoil::Result {
        let until = self.sim.elapsed() + max;
        while !cond(&self.log) {
            if self.sim.elapsed() >= until {
                return Err(format!("condition not met within {max:?}").into());
            }
            self.sim.step()?;
        }
        Ok(())
    }

    /// The underlying turmoil simulation, for anything this type does not wrap.
    pub fn sim(&mut self) -> &mut turmoil::Sim<'static> {
        &mut self.sim
    }
}

/// One run of a host: start the node, record its events until the host is crashed.
async fn run_host(spec: HostSpec) -> turmoil::Result {
    let restart = spec.restarts.fetch_add(1, Ordering::SeqCst);
    let unspecified: IpAddr = match turmoil::lookup(spec.name.as_str()) {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let bind = SocketAddr::new(unspecified, NODE_PORT);
    let transport: Arc<dyn Transport> = match spec.transport {
        TransportKind::Udp => Arc::new(fleetmesh_udp::UdpTransport::bind_turmoil(bind).await?),
        TransportKind::Tcp => Arc::new(fleetmesh_tcp::TcpTransport::bind_turmoil(bind).await?),
    };
    let clock = Clock::starting_at(spec.start + turmoil::sim_elapsed().unwrap_or_default());
    let config = match spec.master {
        Some((authority, policy)) => EndpointConfig::master(authority, policy(), spec.start),
        None => {
            let mut config = EndpointConfig::new(spec.identity, spec.network);
            if let Some(token) = spec.token {
                config = config.enroll_token(token);
            }
            match spec.certificate {
                Some(cert) => config.certificate(cert),
                None => config,
            }
        }
    };
    let endpoint = Endpoint::new(config, seeds::host_seed(spec.seed, &spec.name, restart));
    let discovery = Arc::new(fleetmesh::MemoryDiscovery::new());
    let (commands, mut events, _task) = driver::spawn(endpoint, transport, discovery, clock);
    *spec.commands.lock().unwrap_or_else(|e| e.into_inner()) = Some(commands);
    while let Some(event) = events.recv().await {
        spec.log.push(&spec.name, event);
    }
    Ok(())
}
