//! [`NodeBuilder`] and [`NodeHandle`]: a managed device's node, from a data directory and (the
//! first time) an enrollment link.

use std::{
    collections::VecDeque,
    net::{Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use fleetmesh_lan::{LanConfig, LanDiscovery};
use fleetmesh_redb::RedbStore;
use rand_core::{OsRng, RngCore};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    data::{DataDir, CERT_FILE, LSN_CACHE_FILE, NETWORK_FILE, STATE_FILE},
    events::{Relay, NODE_EVENTS},
    handlers::{self, Handlers},
    machine::{decode_acked, Command, Front, OWN_INVENTORY_KEY, OWN_INVENTORY_TABLE},
    net, JoinLink, StartError,
};
use crate::{
    dht::{DhtCommand, QueryId},
    driver::{self, Clock, DriverError, DriverStopped},
    overlay::{
        inventory::InventoryDocument, query::Combiner, Node, NodeCommand, NodeEvent, NodeState,
        NodeStatus, OverlayConfig, REQUESTS_TABLE,
    },
    wire::{ErrorCode, ResponseStatus},
    Discovery, Endpoint, EndpointConfig, Event, MemoryDiscovery, NodeId, Store,
};

/// Where nodes listen unless told otherwise: every address, IPv4 and IPv6, on a port the
/// system picks (peers learn it from the LSN and the master).
pub const DEFAULT_NODE_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);

/// How long [`NodeBuilder::start`] waits for the master to answer a first enrollment.
pub const DEFAULT_ENROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// A change to the overlay's configuration, applied before the node starts.
type Configure = Box<dyn FnOnce(&mut OverlayConfig) + Send>;

/// Builds a node. See the [crate docs](crate) for a complete program.
#[must_use]
pub struct NodeBuilder {
    data_dir: PathBuf,
    link: Option<JoinLink>,
    listen: SocketAddr,
    lan: bool,
    enroll_timeout: Duration,
    configure: Option<Configure>,
    handlers: Handlers,
    combiners: Vec<(String, Combiner)>,
}

impl NodeBuilder {
    /// A node keeping its keys, certificate and state in `data_dir` (created if missing).
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        NodeBuilder {
            data_dir: data_dir.as_ref().to_path_buf(),
            link: None,
            listen: DEFAULT_NODE_LISTEN,
            lan: true,
            enroll_timeout: DEFAULT_ENROLL_TIMEOUT,
            configure: None,
            handlers: Handlers::default(),
            combiners: Vec::new(),
        }
    }

    /// Joins with this enrollment link. Needed on the first start only: the node keeps its
    /// certificate and the network (the link without its token) in the data directory.
    pub fn join(mut self, link: JoinLink) -> Self {
        self.link = Some(link);
        self
    }

    /// Where to listen (UDP and TCP on the same port). Default [`DEFAULT_NODE_LISTEN`].
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Whether to look for the subnet's LSN on the LAN (UDP broadcast and multicast on port
    /// 7947). Default on; when the port is taken (another node on this host) the node goes on
    /// without, with a warning.
    pub fn lan_discovery(mut self, on: bool) -> Self {
        self.lan = on;
        self
    }

    /// How long a first enrollment may take. Default [`DEFAULT_ENROLL_TIMEOUT`].
    pub fn enroll_timeout(mut self, timeout: Duration) -> Self {
        self.enroll_timeout = timeout;
        self
    }

    /// Adjusts the overlay's timers and limits (defaults meet the project's targets).
    pub fn configure(mut self, f: impl FnOnce(&mut OverlayConfig) + Send + 'static) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Answers the master's requests of `kind` with `handler`: its output is the answer, its
    /// error the reason the request failed. Each request is handled at most once, even across
    /// restarts; handlers run on their own tasks, whether or not the application reads
    /// events. Requests of kinds without a handler come as [`NodeEvent::Request`].
    pub fn handler<F, Fut>(mut self, kind: &str, handler: F) -> Self
    where
        F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static,
    {
        self.handlers.add(kind, handler);
        self
    }

    /// Combines the answers to fleet-wide queries of `kind` when this node is its subnet's
    /// LSN (see [`MasterControl::query_fleet`](super::MasterControl::query_fleet)). It must be
    /// associative and the same as the master's; an LSN without one reports its nodes'
    /// answers to that kind as failed.
    pub fn combiner(mut self, kind: &str, combiner: Combiner) -> Self {
        self.combiners.push((kind.to_owned(), combiner));
        self
    }

    /// Answers requests of kinds without a handler as unknown at once, instead of handing
    /// them to the application. Default off.
    pub fn refuse_unknown_requests(mut self, refuse: bool) -> Self {
        self.handlers.refuse_unknown = refuse;
        self
    }

    /// Starts the node: loads or creates its key, binds its sockets, opens its store, and on a
    /// first start enrolls with the master (returning once the certificate is in hand, or the
    /// master's refusal). Call inside a tokio runtime.
    pub async fn start(self) -> Result<NodeHandle, StartError> {
        let dir = DataDir::open(&self.data_dir)?;
        let identity = dir.identity("node.key")?;
        let id = identity.node_id();
        let saved = match dir.read_text(NETWORK_FILE)? {
            Some(text) => Some(text.parse::<JoinLink>().map_err(|e| StartError::Corrupt {
                path: dir.file(NETWORK_FILE),
                detail: e.to_string(),
            })?),
            None => None,
        };
        let link = match (self.link, saved) {
            (Some(given), Some(saved)) if given.network != saved.network => {
                return Err(StartError::OtherNetwork { path: dir.file(NETWORK_FILE) })
            }
            (Some(given), _) => given,
            (None, Some(saved)) => saved,
            (None, None) => return Err(StartError::NotEnrolled),
        };
        let certificate = dir.certificate()?.filter(|c| c.node_id() == id);
        let mut endpoint =
            EndpointConfig::new(identity, link.network).tcp_fallback(Some(Duration::from_secs(3)));
        let enrolling = certificate.is_none();
        match (certificate, &link.token) {
            (Some(cert), _) => endpoint = endpoint.certificate(cert),
            (None, Some(token)) => endpoint = endpoint.enroll_token(token.clone()),
            (None, None) => return Err(StartError::NotEnrolled),
        }
        dir.write(NETWORK_FILE, link.without_token().to_string().as_bytes())?;

        let (sockets, port) = net::bind(self.listen).await?;
        let master = link.masters[0];
        let local = net::own_network(self.listen, master).unwrap_or(crate::overlay::LocalNetwork {
            addr: std::net::Ipv4Addr::LOCALHOST.into(),
            prefix_len: 8,
        });
        let mut overlay =
            OverlayConfig::new(master, SocketAddr::new(local.addr, port)).local(local);
        if let Some(configure) = self.configure {
            configure(&mut overlay);
        }

        let store_path = dir.file(STATE_FILE);
        let store = tokio::task::spawn_blocking(move || RedbStore::open(store_path))
            .await
            .map_err(|e| StartError::data_dir(dir.file(STATE_FILE), std::io::Error::other(e)))??;
        let saved_dht = crate::store::load_dht(&store).await?;
        let saved_requests = store.scan(REQUESTS_TABLE).await?;
        let saved_inventory = store.scan(OWN_INVENTORY_TABLE).await?;

        let discovery = discovery(self.lan, &dir, id, &link).await;
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let mut node = Node::new(Endpoint::new(endpoint, seed), overlay);
        for (kind, combiner) in self.combiners {
            node.set_combiner(&kind, combiner);
        }
        let clock = Clock::system();
        node.dht_restore(clock.now(), saved_dht);
        node.requests_restore(clock.now(), &saved_requests);
        let acked = saved_inventory.iter().find(|(key, _)| key == OWN_INVENTORY_KEY);
        match acked.map(|(_, value)| decode_acked(value)) {
            Some(Some((version, document))) => node.restore_inventory(version, document),
            Some(None) => tracing::warn!("undecodable saved inventory; sending it whole"),
            None => {}
        }
        let machine = Arc::new(Mutex::new(Front::new(node)));
        let store: Arc<dyn Store> = Arc::new(store);
        let (commands, mut events, task) =
            driver::spawn_with_store(machine.clone(), sockets, discovery, store, clock);

        let mut early = VecDeque::new();
        if enrolling {
            let deadline = tokio::time::Instant::now() + self.enroll_timeout;
            loop {
                let event = match tokio::time::timeout_at(deadline, events.recv()).await {
                    Ok(Some(event)) => event,
                    Ok(None) => return Err(StartError::NotEnrolled),
                    Err(_) => {
                        task.abort();
                        let secs = self.enroll_timeout.as_secs();
                        return Err(StartError::EnrollmentTimeout { masters: link.masters, secs });
                    }
                };
                match &event {
                    NodeEvent::Link(Event::Enrolled { certificate }) => {
                        dir.write(CERT_FILE, &certificate.to_bytes())?;
                        tracing::info!(node = %id, "enrolled");
                        early.push_back(event);
                        break;
                    }
                    // No answer in time (the master restarting, a lost session): the node
                    // opens a fresh session and asks again by itself; wait on.
                    NodeEvent::Link(Event::EnrollmentFailed { error })
                        if error.code == ErrorCode::TIMEOUT =>
                    {
                        tracing::info!(detail = %error.detail, "enrollment unanswered; retrying");
                    }
                    NodeEvent::Link(Event::EnrollmentFailed { error }) => {
                        task.abort();
                        return Err(StartError::refused(error));
                    }
                    _ => early.push_back(event),
                }
            }
        }
        let (to, rx) = Relay::new("node", NODE_EVENTS);
        let answers = (self.handlers, commands.downgrade());
        let relay = tokio::spawn(relay(events, to, dir.clone(), early, answers));
        Ok(NodeHandle { id, machine, commands, events: rx, task, relay, port })
    }
}

async fn discovery(on: bool, dir: &DataDir, id: NodeId, link: &JoinLink) -> Arc<dyn Discovery> {
    if !on {
        return Arc::new(MemoryDiscovery::new());
    }
    let mut config = LanConfig::new(id).cache_file(dir.file(LSN_CACHE_FILE));
    // Fleets sharing a LAN keep apart by their network key.
    config.network.copy_from_slice(&link.network.master_id().as_bytes()[..8]);
    match LanDiscovery::bind(config).await {
        Ok(lan) => Arc::new(lan),
        Err(error) => {
            tracing::warn!(%error, "LAN discovery unavailable; finding the LSN through the master");
            Arc::new(MemoryDiscovery::new())
        }
    }
}

/// Forwards the node's events to the application, keeping a renewed certificate on disk and
/// passing requests to their handlers.
async fn relay(
    mut from: mpsc::Receiver<NodeEvent>,
    mut to: Relay<NodeEvent>,
    dir: DataDir,
    early: VecDeque<NodeEvent>,
    (handlers, commands): (Handlers, mpsc::WeakSender<Command>),
) {
    for event in early {
        to.forward(event);
    }
    while let Some(event) = from.recv().await {
        match event {
            NodeEvent::Link(Event::Enrolled { ref certificate }) => {
                if let Err(error) = dir.write(CERT_FILE, &certificate.to_bytes()) {
                    tracing::error!(%error, "cannot keep the new certificate");
                }
            }
            NodeEvent::Request { id, ref kind, ref body } => {
                if handlers.take(id, kind, body.clone(), &commands) {
                    continue;
                }
                if !to.forward(event) {
                    // Not even queued for the application: say so rather than leave the
                    // master waiting until the request expires.
                    let why = b"the application is not reading requests".to_vec();
                    handlers::answer(commands.clone(), id, ResponseStatus::FAILED, why);
                }
                continue;
            }
            _ => {}
        }
        to.forward(event);
    }
}

/// A running node.
pub struct NodeHandle {
    id: NodeId,
    machine: Arc<Mutex<Front>>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<NodeEvent>,
    task: JoinHandle<Result<(), DriverError>>,
    relay: JoinHandle<()>,
    port: u16,
}

impl NodeHandle {
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The port it listens on (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where it is in the overlay.
    pub fn state(&self) -> NodeState {
        self.machine.lock().unwrap_or_else(|e| e.into_inner()).node().state()
    }

    /// Its LSN, when it has joined one (itself when it is the LSN).
    pub fn lsn(&self) -> Option<NodeId> {
        let front = self.machine.lock().unwrap_or_else(|e| e.into_inner());
        match front.node().state() {
            NodeState::IsLsn => Some(self.id),
            _ => front.node().lsn(),
        }
    }

    /// Its place in the overlay, the path each of its links takes (to its LSN; to the master)
    /// and their round-trip times.
    pub fn status(&self) -> NodeStatus {
        self.machine.lock().unwrap_or_else(|e| e.into_inner()).node().status()
    }

    /// The GSN the session with `peer` runs through; `None` when it runs directly (or no
    /// session stands).
    pub fn relayed_via(&self, peer: &NodeId) -> Option<NodeId> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner()).node().relayed_via(peer)
    }

    /// The next event; `None` once the node has stopped. Up to 1,024 events wait here; while
    /// the application does not read them, later ones are dropped (with a warning in the
    /// log) so that the node itself never waits.
    pub async fn next_event(&mut self) -> Option<NodeEvent> {
        self.events.recv().await
    }

    /// Starts a DHT query or store; its result arrives as [`NodeEvent::Dht`] carrying the
    /// returned id.
    pub async fn dht(&self, command: DhtCommand) -> Result<QueryId, DriverStopped> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(Command::Dht(command, tx)).await.map_err(|_| DriverStopped)?;
        rx.await.map_err(|_| DriverStopped)
    }

    /// Sends `data` (up to `u32::MAX` chunks of
    /// [`OverlayConfig::bulk_chunk`](crate::overlay::OverlayConfig::bulk_chunk) bytes) to
    /// `peer`, reached at `addr` unless a session with it stands, reliably and in order: over
    /// a direct path where hole punching succeeds, through a GSN where it does not, and
    /// across a switch between the two. Returns the transfer's id; the outcome comes as
    /// [`NodeEvent::BulkSent`] or [`NodeEvent::BulkFailed`] with it, and the peer gets the
    /// payload whole, once, as [`NodeEvent::BulkReceived`].
    pub async fn send_bulk(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        data: Vec<u8>,
    ) -> Result<u64, SendBulkError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let command = Command::Bulk { peer, addr, data, reply };
        self.commands.send(command).await.map_err(|_| DriverStopped)?;
        Ok(rx.await.map_err(|_| DriverStopped)??)
    }

    /// Answers request `id` (a [`NodeEvent::Request`] without a handler); the answer reaches
    /// the master as a sealed report, retried until it arrives.
    pub async fn respond(
        &self,
        id: u64,
        status: ResponseStatus,
        body: Vec<u8>,
    ) -> Result<(), DriverStopped> {
        let command = Command::Node(NodeCommand::Respond { id, status, body }, None);
        self.commands.send(command).await.map_err(|_| DriverStopped)
    }

    /// Sends `data` to the master, sealed end to end and retried until it arrives; the
    /// outcome comes as [`NodeEvent::ReportDelivered`] or [`NodeEvent::ReportFailed`] with
    /// `id`.
    pub async fn report(&self, id: u64, data: Vec<u8>) -> Result<(), DriverStopped> {
        let command = Command::Node(NodeCommand::Report { id, data }, None);
        self.commands.send(command).await.map_err(|_| DriverStopped)
    }

    /// Sets this node's inventory document (OS, hardware, packages, the application's own
    /// entries: paths to values). The master gets what changed since the version it
    /// acknowledged last, batched by the LSN; the acknowledged version is kept in the node's
    /// store, so that after a restart only a diff is sent.
    pub async fn set_inventory(&self, document: InventoryDocument) -> Result<(), DriverStopped> {
        self.commands.send(Command::SetInventory(document)).await.map_err(|_| DriverStopped)
    }

    /// The inventory the master acknowledged last: its version and document.
    pub fn inventory_acked(&self) -> Option<(u64, InventoryDocument)> {
        let front = self.machine.lock().unwrap_or_else(|e| e.into_inner());
        front.node().inventory_acked().map(|(v, d)| (v, d.clone()))
    }

    /// Leaves the overlay with an announced part (the LSN reports it at once, not after its
    /// timeouts) and stops.
    pub async fn shutdown(self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Node(NodeCommand::Leave, Some(tx))).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        drop(self.commands);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        self.relay.abort();
    }
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").field("id", &self.id).field("port", &self.port).finish()
    }
}

/// Why [`NodeHandle::send_bulk`] could not start a transfer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendBulkError {
    /// The node refused it (empty, too large, too many under way).
    #[error(transparent)]
    Refused(#[from] crate::overlay::BulkError),
    /// The node has stopped.
    #[error(transparent)]
    Stopped(#[from] DriverStopped),
}
