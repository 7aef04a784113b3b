//! [`MasterBuilder`] and [`MasterHandle`]: the management server's node, which issues
//! certificates, admits enrollments and keeps the fleet's topology.

use std::{
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rand_core::{OsRng, RngCore};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    data::{DataDir, STATE_FILE},
    events::{Relay, MASTER_EVENTS},
    net,
    tokens::{TokenError, TokenOptions, Tokens},
    JoinLink, StartError,
};
use crate::{
    driver::{self, Clock, DriverError, DriverStopped},
    overlay::{
        master::{CERTS_TABLE, INVENTORY_TABLE, LSNS_TABLE, NODES_TABLE, REVOCATIONS_TABLE},
        KnownNode, Master, MasterCommand, MasterConfig, MasterEvent, MasterSaved, Topology,
        FLEET_TABLE, OUTBOX_TABLE,
    },
    trust::{Authority, NetworkKey},
    Endpoint, EndpointConfig, MemoryDiscovery, NodeId, Store,
};
use fleetmesh_redb::RedbStore;

/// The master's default port (UDP and TCP).
pub const DEFAULT_MASTER_PORT: u16 = 7946;

/// Builds a master.
#[must_use]
pub struct MasterBuilder {
    data_dir: PathBuf,
    listen: SocketAddr,
    public: Vec<SocketAddr>,
    config: MasterConfig,
}

impl MasterBuilder {
    /// A master keeping its key and state in `data_dir` (created if missing).
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        MasterBuilder {
            data_dir: data_dir.as_ref().to_path_buf(),
            listen: SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), DEFAULT_MASTER_PORT),
            public: Vec::new(),
            config: MasterConfig::default(),
        }
    }

    /// Where to listen (UDP and TCP on the same port). Default `[::]:7946` (IPv4 and IPv6).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// The addresses nodes reach the master at, written into enrollment links (a public
    /// address, or the NAT's forwarded port). Default: the listening address when it is a
    /// specific one, otherwise every non-loopback address of this host's interfaces.
    pub fn public_addrs(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.public = addrs;
        self
    }

    /// The master's timers and limits.
    pub fn config(mut self, config: MasterConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts the master. Call inside a tokio runtime.
    pub async fn start(self) -> Result<MasterHandle, StartError> {
        let dir = DataDir::open(&self.data_dir)?;
        let identity = dir.identity("master.key")?;
        let tokens = Tokens::open(&self.data_dir)?;
        let (sockets, port) = net::bind(self.listen).await?;
        let public = if self.public.is_empty() {
            default_public(self.listen.ip(), port)
        } else {
            self.public
        };
        let clock = Clock::system();
        let authority = Authority::new(identity);
        let network = authority.network_key();
        let endpoint = EndpointConfig::master(authority, tokens.clone(), clock.now());
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let mut master = Master::new(Endpoint::new(endpoint, seed), self.config);
        let store = open_state(&dir).await?;
        master.restore(load_state(&*store).await?);
        master.restore_outbox(&store.scan(OUTBOX_TABLE).await?);
        master.restore_fleet(clock.now(), &store.scan(FLEET_TABLE).await?);
        master.restore_inventories(&store.scan(INVENTORY_TABLE).await?);
        reconcile_tags(&mut master, &tokens, clock.now());
        let master = Arc::new(Mutex::new(master));
        let discovery = Arc::new(MemoryDiscovery::new());
        let (commands, from_driver, task) =
            driver::spawn_with_store(master.clone(), sockets, discovery, store, clock);
        let (relay, events) = Relay::new("master", MASTER_EVENTS);
        let relay =
            tokio::spawn(relay_events(from_driver, relay, tokens.clone(), master.clone(), clock));
        tracing::info!(master = %network.master_id(), port, "master started");
        let listen_ip = self.listen.ip();
        Ok(MasterHandle {
            network,
            public,
            tokens,
            clock,
            master,
            commands,
            events,
            task,
            relay,
            port,
            listen_ip,
        })
    }
}

/// Gives the registry the tags of every admitted node's token, for nodes admitted just before
/// a stop (the token's use was spent, the registry not yet written).
fn reconcile_tags(master: &mut Master, tokens: &Tokens, now: crate::Timestamp) {
    let tagged = match tokens.tagged_nodes() {
        Ok(tagged) => tagged,
        Err(error) => return tracing::warn!(%error, "token tags not read"),
    };
    for (node, tags) in tagged {
        if let Ok(node) = node.parse::<NodeId>() {
            master.set_tags(now, node, tags);
        }
    }
}

/// Relays the master's events to the application, recording the tags of each enrolled node's
/// token in the registry on the way.
async fn relay_events(
    mut from: mpsc::Receiver<MasterEvent>,
    mut to: Relay<MasterEvent>,
    tokens: Tokens,
    master: Arc<Mutex<Master>>,
    clock: Clock,
) {
    while let Some(event) = from.recv().await {
        if let MasterEvent::Link(crate::endpoint::Event::PeerEnrolled { peer, .. }) = &event {
            let (tokens, peer) = (tokens.clone(), *peer);
            let tags = tokio::task::spawn_blocking(move || tokens.tags_of(&peer.to_string())).await;
            match tags {
                Ok(Ok(tags)) if !tags.is_empty() => {
                    let mut master = master.lock().unwrap_or_else(|e| e.into_inner());
                    master.set_tags(clock.now(), peer, tags);
                }
                Ok(Err(error)) => tracing::warn!(%error, node = %peer, "token tags not read"),
                _ => {}
            }
        }
        to.forward(event);
    }
}

/// The addresses a master listening on `listen` writes into its enrollment links when it is
/// given none ([`MasterBuilder::public_addrs`]): `listen` itself when it is a specific
/// address, otherwise every non-loopback address of this host's interfaces (IPv4 first; IPv6
/// too when `listen` is IPv6), or loopback when there is none. Tools that create links beside
/// a running master (`fleetmesh token create`) use it to agree with the master.
pub fn default_public_addrs(listen: SocketAddr) -> Vec<SocketAddr> {
    default_public(listen.ip(), listen.port())
}

/// The master's state database, [`STATE_FILE`] in its data directory.
async fn open_state(dir: &DataDir) -> Result<Arc<dyn Store>, StartError> {
    let path = dir.file(STATE_FILE);
    let open = tokio::task::spawn_blocking(move || RedbStore::open(path)).await;
    let store =
        open.map_err(|e| StartError::data_dir(dir.file(STATE_FILE), io::Error::other(e)))??;
    Ok(Arc::new(store))
}

async fn load_state(store: &dyn Store) -> Result<MasterSaved, StartError> {
    let certs = store.scan(CERTS_TABLE).await?;
    let nodes = store.scan(NODES_TABLE).await?;
    let revocations = store.scan(REVOCATIONS_TABLE).await?;
    let lsns = store.scan(LSNS_TABLE).await?;
    Ok(MasterSaved::from_tables(&certs, &nodes, &revocations, &lsns))
}

fn default_public(ip: IpAddr, port: u16) -> Vec<SocketAddr> {
    if !ip.is_unspecified() {
        return vec![SocketAddr::new(ip, port)];
    }
    let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && (ip.is_ipv6() || i.ip().is_ipv4()))
        // Link-local IPv6 needs a scope id that another host cannot use.
        .filter(|i| !matches!(i.ip(), IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .map(|i| SocketAddr::new(i.ip(), port))
        .collect();
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs.truncate(super::link::MAX_LINK_ADDRS);
    if addrs.is_empty() {
        addrs.push(SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port));
    }
    addrs
}

/// A running master.
pub struct MasterHandle {
    network: NetworkKey,
    public: Vec<SocketAddr>,
    tokens: Tokens,
    clock: Clock,
    master: Arc<Mutex<Master>>,
    commands: mpsc::Sender<MasterCommand>,
    events: mpsc::Receiver<MasterEvent>,
    task: JoinHandle<Result<(), DriverError>>,
    relay: JoinHandle<()>,
    port: u16,
    listen_ip: IpAddr,
}

impl MasterHandle {
    /// The master's node id.
    pub fn id(&self) -> NodeId {
        self.network.master_id()
    }

    /// The network key every node checks certificates with.
    pub fn network(&self) -> NetworkKey {
        self.network
    }

    /// The port it listens on (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The link without a token: names the network, admits no one.
    pub fn link(&self) -> JoinLink {
        JoinLink { masters: self.public.clone(), network: self.network, token: None }
    }

    /// A cloneable handle reading and steering this master from other tasks.
    pub fn control(&self) -> super::MasterControl {
        super::MasterControl {
            link: self.link(),
            tokens: self.tokens.clone(),
            clock: self.clock,
            master: self.master.clone(),
            commands: self.commands.clone(),
        }
    }

    /// A new enrollment link: a fresh token admitting `options.uses` devices until it
    /// expires. The token is on disk before this returns.
    pub fn create_token(&self, options: TokenOptions) -> Result<JoinLink, TokenError> {
        let token = self.tokens.create(self.clock.now(), options)?;
        Ok(JoinLink { token: Some(token), ..self.link() })
    }

    /// Tokens that can still admit a device.
    pub fn tokens_remaining(&self) -> Result<usize, TokenError> {
        self.tokens.remaining(self.clock.now())
    }

    fn lock(&self) -> MutexGuard<'_, Master> {
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fleet as the master sees it now.
    pub fn topology(&self) -> Topology {
        self.lock().topology()
    }

    /// Since when the master has heard from none of its LSNs, pings to them unanswered: it
    /// is probably cut off from the fleet, and what it shows as present is stale
    /// ([`Master::isolated_since`]).
    pub fn isolated_since(&self) -> Option<crate::Timestamp> {
        self.lock().isolated_since()
    }

    /// The nodes the master appointed Global Super Nodes (relays between NATed peers;
    /// [`Master::gsns`]).
    pub fn gsns(&self) -> Vec<NodeId> {
        self.lock().gsns()
    }

    /// Every node the master has seen present (the durable registry): first and last seen,
    /// last address and subnet.
    pub fn known_nodes(&self) -> Vec<(NodeId, KnownNode)> {
        self.lock().known_nodes().map(|(id, k)| (*id, k.clone())).collect()
    }

    /// Whether `node` is present.
    pub fn is_present(&self, node: &NodeId) -> bool {
        self.lock().is_present(node)
    }

    /// How many nodes are present.
    pub fn present_count(&self) -> usize {
        self.lock().present_count()
    }

    /// The inventory of `node` as the master holds it: its version and document.
    pub fn inventory(
        &self,
        node: &NodeId,
    ) -> Option<(u64, crate::overlay::inventory::InventoryDocument)> {
        self.lock().inventory(node).map(|(v, d)| (v, d.clone()))
    }

    /// How many nodes' inventories the master holds.
    pub fn inventory_count(&self) -> usize {
        self.lock().inventory_count()
    }

    /// What arrived in inventory batches since the master started.
    pub fn inventory_stats(&self) -> crate::overlay::master::InventoryStats {
        self.lock().inventory_stats()
    }

    /// Sends `data` to `node`, sealed end to end; its delivery (or failure) comes back as a
    /// [`MasterEvent`] carrying `id` (0 is reserved for polls).
    pub async fn send(&self, node: NodeId, id: u64, data: Vec<u8>) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Send { node, id, data }).await.map_err(|_| DriverStopped)
    }

    /// Asks `node` whether it is there; the answer comes back as a [`MasterEvent`].
    pub async fn poll(&self, node: NodeId) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Poll { node }).await.map_err(|_| DriverStopped)
    }

    /// Queues a request of `kind` for `node`, handled by it at most once within `ttl`; see
    /// [`super::MasterControl::request`].
    pub async fn request(
        &self,
        node: NodeId,
        kind: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<crate::overlay::RequestId, super::RequestRefused> {
        self.control().request(node, kind, body, ttl).await
    }

    /// Queues a request of `kind` for every node of `audience`; see
    /// [`super::MasterControl::request_fleet`].
    pub async fn request_fleet(
        &self,
        audience: crate::overlay::Audience,
        kind: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<crate::overlay::RequestId, super::RequestRefused> {
        self.control().request_fleet(audience, kind, body, ttl).await
    }

    /// Asks every present node of `audience` a query whose answers the LSNs combine; see
    /// [`super::MasterControl::query_fleet`].
    pub async fn query_fleet(
        &self,
        audience: crate::overlay::Audience,
        kind: &str,
        body: &[u8],
        window: Duration,
    ) -> Result<crate::overlay::RequestId, super::RequestRefused> {
        self.control().query_fleet(audience, kind, body, window).await
    }

    /// Revokes `nodes`: the master signs a new revocation list and sends it through every LSN
    /// to every node, which then refuses the revoked nodes' certificates.
    pub async fn revoke(&self, nodes: Vec<NodeId>) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Revoke { nodes }).await.map_err(|_| DriverStopped)
    }

    /// The next event; `None` once the master has stopped. Up to 65,536 events wait here;
    /// while the application does not read them, later ones are dropped (with a warning in
    /// the log) so that the master itself never waits.
    pub async fn next_event(&mut self) -> Option<MasterEvent> {
        self.events.recv().await
    }

    /// Stops the master; returns once its port is free again.
    pub async fn shutdown(self) {
        drop(self.commands);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        self.relay.abort();
        net::released(SocketAddr::new(self.listen_ip, self.port)).await;
    }
}

impl std::fmt::Debug for MasterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterHandle").field("id", &self.id()).field("port", &self.port).finish()
    }
}
