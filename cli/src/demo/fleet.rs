//! The demo's fleet: a master on 127.0.0.1 and nodes on 127.0.N.i, each a real UDP socket run
//! by its own driver task, and the crash of one of them.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use fleetmesh::{
    driver::{self, Clock, DriverError},
    overlay::{
        Master, MasterCommand, MasterConfig, MasterEvent, Node, NodeCommand, NodeEvent,
        OverlayConfig,
    },
    trust::{Authority, CertFlags, OpenEnrollment},
    Endpoint, EndpointConfig, Identity, MemoryDiscovery, NodeId,
};
use fleetmesh_udp::UdpTransport;
use rand_core::{OsRng, RngCore};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{lan::LoopbackLan, DemoError};

/// How long the certificates issued up front are valid: far longer than any demo runs.
const CERT_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// What to start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) subnets: u8,
    pub(crate) nodes_per_subnet: u8,
    /// Nodes enroll with the master on first contact instead of getting certificates up front.
    pub(crate) enroll: bool,
}

/// A node's demo name (`N.i` for 127.0.N.i) and subnet number.
#[derive(Clone, Debug)]
pub(crate) struct Label {
    pub(crate) name: String,
    pub(crate) subnet: u8,
}

/// Names for every node id the demo knows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    labels: HashMap<NodeId, Label>,
}

impl Names {
    /// `N.i`, or the short id of a node the demo did not start.
    pub(crate) fn name(&self, id: &NodeId) -> String {
        self.labels.get(id).map_or_else(|| short(id), |l| l.name.clone())
    }

    /// The subnet number of a node the demo started.
    pub(crate) fn subnet(&self, id: &NodeId) -> Option<u8> {
        self.labels.get(id).map(|l| l.subnet)
    }

    /// `N.i (1a2b3c4d)`.
    pub(crate) fn both(&self, id: &NodeId) -> String {
        format!("{} ({})", self.name(id), short(id))
    }
}

/// The first eight hex digits of an id.
pub(crate) fn short(id: &NodeId) -> String {
    id.to_string()[..8].to_owned()
}

/// One running node.
struct Member {
    id: NodeId,
    /// Dropping the sender would end the driver; it is kept until the node is crashed.
    commands: Option<mpsc::Sender<NodeCommand>>,
    driver: JoinHandle<Result<(), DriverError>>,
    relay: JoinHandle<()>,
}

/// The running fleet.
pub(crate) struct Fleet {
    pub(crate) master: Arc<Mutex<Master>>,
    pub(crate) master_id: NodeId,
    pub(crate) master_addr: SocketAddr,
    pub(crate) master_commands: mpsc::Sender<MasterCommand>,
    master_driver: JoinHandle<Result<(), DriverError>>,
    members: Vec<Member>,
    pub(crate) names: Names,
}

/// What the fleet reports: the master's events, and the nodes' (link-layer events left out).
pub(crate) struct Feeds {
    pub(crate) master: mpsc::Receiver<MasterEvent>,
    pub(crate) nodes: mpsc::UnboundedReceiver<(NodeId, NodeEvent)>,
}

async fn bind(addr: SocketAddr) -> Result<UdpTransport, DemoError> {
    UdpTransport::bind(addr).await.map_err(|source| DemoError::Bind { addr, source })
}

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    s
}

impl Fleet {
    /// Binds every socket, then starts the master and the nodes.
    pub(crate) async fn start(plan: Plan, clock: Clock) -> Result<(Fleet, Feeds), DemoError> {
        let mut authority = Authority::new(Identity::generate(&mut OsRng));
        let network = authority.network_key();
        let master_id = network.master_id();

        // Bind everything first, so a missing address fails before anything runs.
        let master_transport = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let master_addr = master_transport.local_addr();
        let mut sockets = Vec::new();
        for subnet in 1..=plan.subnets {
            for i in 1..=plan.nodes_per_subnet {
                let ip = Ipv4Addr::new(127, 0, subnet, i);
                let transport = bind(SocketAddr::from((ip, 0))).await?;
                sockets.push((subnet, i, transport));
            }
        }

        let mut names = Names::default();
        names.labels.insert(master_id, Label { name: "master".into(), subnet: 0 });
        let mut nodes = Vec::new();
        for (subnet, i, transport) in sockets {
            let identity = Identity::generate(&mut OsRng);
            let mut config = EndpointConfig::new(identity.clone(), network);
            if !plan.enroll {
                let cert = authority.issue(
                    &identity.verifying_key(),
                    identity.x25519_public(),
                    CertFlags::NONE,
                    clock.now(),
                    CERT_VALIDITY,
                );
                config = config.certificate(cert);
            }
            let id = identity.node_id();
            names.labels.insert(id, Label { name: format!("{subnet}.{i}"), subnet });
            // The listening address is the bound one; its /24 is the node's local network,
            // which is what the master keys the subnet by.
            let listen = transport.local_addr();
            let node =
                Node::new(Endpoint::new(config, seed()), OverlayConfig::new(master_addr, listen));
            nodes.push((id, listen, node, transport));
        }

        // Issuing is done: the authority moves into the master, which also admits any node
        // that enrolls (open enrollment: a demo's policy, never a deployment's).
        let endpoint = EndpointConfig::master(authority, OpenEnrollment::default(), clock.now());
        let master = Arc::new(Mutex::new(Master::new(
            Endpoint::new(endpoint, seed()),
            MasterConfig::default(),
        )));
        let (master_commands, master_events, master_driver) = driver::spawn(
            master.clone(),
            master_transport,
            Arc::new(MemoryDiscovery::new()),
            clock,
        );

        let lan = Arc::new(LoopbackLan::default());
        let (node_tx, node_rx) = mpsc::unbounded_channel();
        let members = nodes
            .into_iter()
            .map(|(id, listen, node, transport)| {
                let discovery = Arc::new(lan.port(listen));
                let (commands, mut events, driver) =
                    driver::spawn(node, transport, discovery, clock);
                let (lan, tx) = (lan.clone(), node_tx.clone());
                let relay = tokio::spawn(async move {
                    while let Some(event) = events.recv().await {
                        lan.observe(listen, &event);
                        if !matches!(event, NodeEvent::Link(_)) {
                            let _ = tx.send((id, event));
                        }
                    }
                    // The driver stopped (crashed): the node answers no LAN round any more.
                    lan.gone(listen);
                });
                Member { id, commands: Some(commands), driver, relay }
            })
            .collect();

        let fleet = Fleet {
            master,
            master_id,
            master_addr,
            master_commands,
            master_driver,
            members,
            names,
        };
        Ok((fleet, Feeds { master: master_events, nodes: node_rx }))
    }

    /// Number of nodes started (the master not counted).
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Crashes `id`: aborts its driver task, which drops its socket mid-flight. No Part is
    /// sent; the node's peers find out only from its silence.
    pub(crate) async fn crash(&mut self, id: &NodeId, limit: Duration) -> Result<(), DemoError> {
        let member = self.members.iter_mut().find(|m| m.id == *id).ok_or_else(|| {
            DemoError::Failed { step: "crash", detail: format!("no node {id} in the fleet") }
        })?;
        member.driver.abort();
        member.commands = None;
        // Wait until the task (and with it the socket) is really gone.
        match tokio::time::timeout(limit, &mut member.driver).await {
            Ok(_) => Ok(()),
            Err(_) => Err(DemoError::Timeout {
                step: "crash",
                limit,
                progress: "the node's driver task did not stop".into(),
            }),
        }
    }

    /// Stops every task.
    pub(crate) fn shutdown(self) {
        for member in &self.members {
            member.driver.abort();
            member.relay.abort();
        }
        self.master_driver.abort();
    }
}

/// The subnet number of a loopback address 127.0.N.i.
pub(crate) fn subnet_of(addr: SocketAddr) -> Option<u8> {
    match addr.ip() {
        IpAddr::V4(v4) if v4.octets()[..2] == [127, 0] => Some(v4.octets()[2]),
        _ => None,
    }
}
