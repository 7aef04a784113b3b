//! [`MasterControl`]: a cloneable handle on a running master, for code that runs beside the
//! task owning the [`super::MasterHandle`] (an admin API, for instance).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::{
    tokens::{TokenError, TokenOptions, Tokens},
    JoinLink,
};
use crate::{
    driver::{Clock, DriverStopped},
    overlay::{
        inventory::InventoryDocument, master::InventoryStats, KnownNode, Master, MasterCommand,
        RequestError, RequestId, Topology,
    },
    NodeId,
};

/// Why [`MasterControl::request`] queued nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRefused {
    /// The outbox refused it (full, too large, bad time-to-live).
    #[error(transparent)]
    Refused(#[from] RequestError),
    /// The master has stopped.
    #[error("the master has stopped")]
    Stopped,
}

/// Reads and steers a running master; cheap to clone. Events stay with the
/// [`super::MasterHandle`] it came from ([`super::MasterHandle::control`]).
#[derive(Clone)]
pub struct MasterControl {
    pub(super) link: JoinLink,
    pub(super) tokens: Tokens,
    pub(super) clock: Clock,
    pub(super) master: Arc<Mutex<Master>>,
    pub(super) commands: mpsc::Sender<MasterCommand>,
}

impl MasterControl {
    fn lock(&self) -> MutexGuard<'_, Master> {
        self.master.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The master's node id.
    pub fn id(&self) -> NodeId {
        self.link.network.master_id()
    }

    /// The link without a token: names the network, admits no one.
    pub fn link(&self) -> JoinLink {
        self.link.clone()
    }

    /// The fleet as the master sees it now.
    pub fn topology(&self) -> Topology {
        self.lock().topology()
    }

    /// What the master refused from the wire since it started, by reason: rejected datagrams
    /// and handshakes, and unauthorized control messages (junk raises no event).
    pub fn refused(&self) -> crate::Refused {
        crate::Machine::refused(&*self.lock())
    }

    /// See [`super::MasterHandle::gsns`].
    pub fn gsns(&self) -> Vec<NodeId> {
        self.lock().gsns()
    }

    /// See [`super::MasterHandle::isolated_since`].
    pub fn isolated_since(&self) -> Option<crate::Timestamp> {
        self.lock().isolated_since()
    }

    /// The durable node registry (see [`super::MasterHandle::known_nodes`]).
    pub fn known_nodes(&self) -> Vec<(NodeId, KnownNode)> {
        self.lock().known_nodes().map(|(id, k)| (*id, k.clone())).collect()
    }

    /// One entry of the registry.
    pub fn known_node(&self, node: &NodeId) -> Option<KnownNode> {
        self.lock().known_nodes().find(|(id, _)| *id == node).map(|(_, k)| k.clone())
    }

    /// A new enrollment link (see [`super::MasterHandle::create_token`]).
    pub fn create_token(&self, options: TokenOptions) -> Result<JoinLink, TokenError> {
        let token = self.tokens.create(self.clock.now(), options)?;
        Ok(JoinLink { token: Some(token), ..self.link() })
    }

    /// Tokens that can still admit a device.
    pub fn tokens_remaining(&self) -> Result<usize, TokenError> {
        self.tokens.remaining(self.clock.now())
    }

    /// Sends `data` to `node` (see [`super::MasterHandle::send`]).
    pub async fn send(&self, node: NodeId, id: u64, data: Vec<u8>) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Send { node, id, data }).await.map_err(|_| DriverStopped)
    }

    /// Polls `node` (see [`super::MasterHandle::poll`]).
    pub async fn poll(&self, node: NodeId) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Poll { node }).await.map_err(|_| DriverStopped)
    }

    /// Queues a request of `kind` for `node`, handled by it at most once within `ttl`
    /// (see [`Master::request`]); it ends in a `MasterEvent::Response` or
    /// `MasterEvent::RequestFailed` with the id returned, and survives a master restart.
    pub async fn request(
        &self,
        node: NodeId,
        kind: &str,
        body: &[u8],
        ttl: std::time::Duration,
    ) -> Result<RequestId, RequestRefused> {
        let id = self.lock().request(self.clock.now(), node, kind, body, ttl)?;
        self.commands.send(MasterCommand::Wake).await.map_err(|_| RequestRefused::Stopped)?;
        Ok(id)
    }

    /// Queues a request of `kind` for every node of `audience`, each to handle it at most
    /// once within `ttl` (see [`Master::request_fleet`]): one answer per node arrives as a
    /// `MasterEvent::Response` with the id returned, the end as `MasterEvent::FleetEnded`.
    pub async fn request_fleet(
        &self,
        audience: crate::overlay::Audience,
        kind: &str,
        body: &[u8],
        ttl: std::time::Duration,
    ) -> Result<RequestId, RequestRefused> {
        let id = self.lock().request_fleet(self.clock.now(), audience, kind, body, ttl)?;
        self.commands.send(MasterCommand::Wake).await.map_err(|_| RequestRefused::Stopped)?;
        Ok(id)
    }

    /// Asks every present node of `audience` a query of `kind` whose answers the LSNs
    /// combine (see [`Master::query_fleet`]); the combination arrives as
    /// `MasterEvent::QueryEnded` with the id returned, within `window` plus
    /// [`QUERY_GRACE`](crate::overlay::master::QUERY_GRACE).
    pub async fn query_fleet(
        &self,
        audience: crate::overlay::Audience,
        kind: &str,
        body: &[u8],
        window: std::time::Duration,
    ) -> Result<RequestId, RequestRefused> {
        let id = self.lock().query_fleet(self.clock.now(), audience, kind, body, window)?;
        self.commands.send(MasterCommand::Wake).await.map_err(|_| RequestRefused::Stopped)?;
        Ok(id)
    }

    /// Registers how the answers to queries of `kind` are combined (the nodes need the same,
    /// [`NodeBuilder::combiner`](super::NodeBuilder::combiner)).
    pub fn set_combiner(&self, kind: &str, combiner: crate::overlay::query::Combiner) {
        self.lock().set_combiner(kind, combiner);
    }

    /// Fleet requests open now.
    pub fn fleet_open(&self) -> usize {
        self.lock().fleet_open()
    }

    /// Where open fleet request `id` stands (see [`Master::fleet_progress`]).
    pub fn fleet_progress(&self, id: RequestId) -> Option<crate::overlay::master::FleetProgress> {
        self.lock().fleet_progress(id)
    }

    /// Request `id` while it awaits its answer: its node, and whether the node took it.
    pub fn request_state(&self, id: RequestId) -> Option<(NodeId, bool)> {
        self.lock().request_state(id)
    }

    /// The inventory of `node` as the master holds it: its version and document (kept in
    /// the master's store across restarts).
    pub fn inventory(&self, node: &NodeId) -> Option<(u64, InventoryDocument)> {
        self.lock().inventory(node).map(|(v, d)| (v, d.clone()))
    }

    /// How many nodes' inventories the master holds.
    pub fn inventory_count(&self) -> usize {
        self.lock().inventory_count()
    }

    /// What arrived in inventory batches since the master started (changes, whole
    /// documents, bytes).
    pub fn inventory_stats(&self) -> InventoryStats {
        self.lock().inventory_stats()
    }

    /// Revokes `nodes` (see [`super::MasterHandle::revoke`]).
    pub async fn revoke(&self, nodes: Vec<NodeId>) -> Result<(), DriverStopped> {
        self.commands.send(MasterCommand::Revoke { nodes }).await.map_err(|_| DriverStopped)
    }
}

impl std::fmt::Debug for MasterControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterControl").field("id", &self.id()).finish()
    }
}
