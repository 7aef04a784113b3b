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
    overlay::{KnownNode, Master, MasterCommand, Topology},
    NodeId,
};

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
