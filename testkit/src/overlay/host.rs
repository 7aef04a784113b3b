//! The software of an overlay fleet's hosts: one run of a node or of the master, from binding
//! the UDP socket to the host's crash. Everything a run needs is in its spec, which the host
//! keeps across restarts.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use fleetmesh::{
    driver::{self, Clock},
    overlay::{
        LocalNetwork, Master, MasterCommand, MasterConfig, MasterEvent, Node, NodeCommand,
        NodeEvent, NodeState, OverlayConfig,
    },
    trust::{Authority, Certificate, NetworkKey, OpenEnrollment},
    DualTransport, Endpoint, EndpointConfig, Identity, MemoryDiscovery, Timestamp, Transport,
};
use fleetmesh_tcp::TcpTransport;
use fleetmesh_udp::UdpTransport;

use super::{
    fault::Fault,
    handle::{Control, Running},
};
use crate::{
    firewall::Firewall,
    lan::Lan,
    log::EventLog,
    loss::Loss,
    nat::{Bind, Nat, NatKind},
    seeds,
    tap::Tap,
    RunError, NODE_PORT,
};

/// Adjusts each node's [`OverlayConfig`] (timers) before it starts.
pub(crate) type Tune = Arc<dyn Fn(OverlayConfig) -> OverlayConfig + Send + Sync>;

/// What every run of a host shares: seeds, restart count, handles, logs, tap.
#[derive(Clone)]
pub(crate) struct Common {
    pub(crate) name: String,
    pub(crate) seed: u64,
    pub(crate) start: Timestamp,
    pub(crate) restarts: Arc<AtomicU64>,
    pub(crate) tap: Tap,
    pub(crate) firewall: Firewall,
    /// The fleet's independent loss, applied to the host's UDP sends.
    pub(crate) loss: Loss,
    /// Faults the kit's own tests inject.
    pub(crate) fault: Fault,
    /// Where the host reports its driver's unexpected end.
    pub(crate) failures: Failures,
    /// With a TCP fallback, the host also listens on TCP.
    pub(crate) tcp_fallback: Option<std::time::Duration>,
    /// The host's address family: IPv6 hosts bind `[::]`.
    pub(crate) ipv6: bool,
    /// The NAT in front of the host's UDP, and its LAN (address, prefix length).
    pub(crate) nat: Option<(NatKind, (std::net::IpAddr, u8))>,
}

/// A host's transport: UDP behind its firewall, and TCP when the fleet falls back to it.
type HostTransport = Arc<dyn Transport>;

impl Common {
    /// Binds the host's tapped sockets; returns them with the clock and endpoint seed of this
    /// run.
    async fn begin(&self) -> Result<(HostTransport, Clock, [u8; 32]), Box<dyn std::error::Error>> {
        let restart = self.restarts.fetch_add(1, Ordering::SeqCst);
        let ip: std::net::IpAddr = if self.ipv6 {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        };
        let bind = SocketAddr::new(ip, NODE_PORT);
        let udp = UdpTransport::bind_turmoil(bind).await?;
        let udp: Arc<dyn Transport> = match self.nat {
            None => Arc::new(udp),
            Some((kind, lan)) => {
                let any = SocketAddr::new(ip, 0);
                let ports: Bind<UdpTransport> =
                    Arc::new(move || Box::pin(UdpTransport::bind_turmoil(any)));
                Arc::new(Nat::new(kind, lan, udp, ports))
            }
        };
        let udp = self.firewall.wrap(udp);
        // Loss on UDP only: TCP retransmits what the network drops.
        let loss_seed = seeds::host_seed(self.seed, &format!("{}/loss", self.name), restart);
        let udp = self.loss.wrap(udp, loss_seed);
        let transport: HostTransport = match self.tcp_fallback {
            Some(_) => {
                let tcp = TcpTransport::bind_turmoil(bind).await?;
                Arc::new(self.fault.wrap(self.tap.wrap(DualTransport::new(udp, tcp))))
            }
            None => Arc::new(self.fault.wrap(self.tap.wrap(udp))),
        };
        let clock = Clock::starting_at(self.start + turmoil::sim_elapsed().unwrap_or_default());
        Ok((transport, clock, seeds::host_seed(self.seed, &self.name, restart)))
    }
}

/// Everything a node host needs to (re)start its node.
#[derive(Clone)]
pub(crate) struct NodeSpec {
    pub(crate) common: Common,
    pub(crate) identity: Identity,
    pub(crate) certificate: Certificate,
    pub(crate) network: NetworkKey,
    pub(crate) master: SocketAddr,
    pub(crate) listen: SocketAddr,
    /// The node's local network; a restart after a move starts on the new one.
    pub(crate) local: Arc<Mutex<LocalNetwork>>,
    pub(crate) tune: Tune,
    pub(crate) running: Running<Node>,
    pub(crate) control: Control<NodeCommand>,
    pub(crate) log: EventLog<NodeEvent>,
    pub(crate) lan: Lan,
}

/// One run of a node host: start the node, record its events (and whether it is the LSN)
/// until the host is crashed.
pub(crate) async fn run_node(spec: NodeSpec) -> turmoil::Result {
    let name = spec.common.name.as_str();
    let (transport, clock, seed) = spec.common.begin().await?;
    let config = EndpointConfig::new(spec.identity.clone(), spec.network)
        .certificate(spec.certificate.clone())
        .tcp_fallback(spec.common.tcp_fallback);
    let local = *spec.local.lock().unwrap_or_else(|e| e.into_inner());
    let overlay = (spec.tune)(OverlayConfig::new(spec.master, spec.listen).local(local));
    let node = Arc::new(Mutex::new(Node::new(Endpoint::new(config, seed), overlay)));
    spec.running.set(Some(node.clone()));
    let discovery = Arc::new(spec.lan.discovery(name));
    let (commands, mut events, task) = driver::spawn(node, transport, discovery, clock);
    spec.control.set(Some(commands));
    while let Some(event) = events.recv().await {
        if let NodeEvent::State { to, .. } = &event {
            spec.lan.set_lsn(name, *to == NodeState::IsLsn);
        }
        spec.log.push(name, event);
    }
    // The events ended, so the driver did, on its own: a crash would have dropped this task.
    let reason = ended(task).await;
    spec.running.set(None);
    spec.control.set(None);
    spec.lan.set_lsn(name, false);
    spec.common.failures.push(name, reason);
    Ok(())
}

/// Why a driver task ended.
async fn ended(task: tokio::task::JoinHandle<Result<(), driver::DriverError>>) -> String {
    match task.await {
        Ok(Ok(())) => "it stopped: its command channel closed".to_owned(),
        Ok(Err(error)) => format!("it failed: {error}"),
        Err(error) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(not a string)".to_owned());
            format!("it panicked: {message}")
        }
        Err(error) => format!("its task ended: {error}"),
    }
}

/// The hosts whose driver ended while they were up, in order; clones share the list.
#[derive(Clone, Default)]
pub(crate) struct Failures {
    list: Arc<Mutex<Vec<(String, std::time::Duration, String)>>>,
}

impl Failures {
    fn push(&self, host: &str, reason: String) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        // One push per failure; a poisoned lock still holds a consistent list.
        self.list.lock().unwrap_or_else(|e| e.into_inner()).push((host.to_owned(), at, reason));
    }

    /// Failures after the first `seen`, as errors.
    pub(crate) fn since(&self, seen: usize) -> Vec<RunError> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let new = list.get(seen..).unwrap_or_default();
        new.iter()
            .map(|(host, at, reason)| RunError::HostFailed {
                host: host.clone(),
                at: *at,
                reason: reason.clone(),
            })
            .collect()
    }
}

/// Everything the master host needs to (re)start the master.
#[derive(Clone)]
pub(crate) struct MasterSpec {
    pub(crate) common: Common,
    pub(crate) authority: Authority,
    pub(crate) config: MasterConfig,
    pub(crate) running: Running<Master>,
    pub(crate) control: Control<MasterCommand>,
    pub(crate) log: EventLog<MasterEvent>,
}

/// One run of the master host: open enrollment, a fresh registry (a restarted master learns
/// the topology again from its LSNs), events recorded until the host is crashed.
pub(crate) async fn run_master(spec: MasterSpec) -> turmoil::Result {
    let (transport, clock, seed) = spec.common.begin().await?;
    let config = EndpointConfig::master(
        spec.authority.clone(),
        OpenEnrollment::default(),
        spec.common.start,
    )
    .tcp_fallback(spec.common.tcp_fallback);
    let master =
        Arc::new(Mutex::new(Master::new(Endpoint::new(config, seed), spec.config.clone())));
    spec.running.set(Some(master.clone()));
    let discovery = Arc::new(MemoryDiscovery::new());
    let (commands, mut events, task) = driver::spawn(master, transport, discovery, clock);
    spec.control.set(Some(commands));
    while let Some(event) = events.recv().await {
        spec.log.push(&spec.common.name, event);
    }
    // As for a node: the driver ended on its own.
    let reason = ended(task).await;
    spec.running.set(None);
    spec.control.set(None);
    spec.common.failures.push(&spec.common.name, reason);
    Ok(())
}
