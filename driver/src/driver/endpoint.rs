//! Running an [`Endpoint`] under the driver, and the handle the application holds.

use std::net::SocketAddr;

use tokio::sync::mpsc;

pub use fleetmesh_proto::endpoint::EndpointCommand;

use super::{spawn, Clock, DriverError, DriverStopped};
use crate::{
    endpoint::{Endpoint, Event},
    wire::Message,
    NodeId, Transport,
};

/// The application's side of a running endpoint: send commands, receive events.
#[derive(Debug)]
pub struct EndpointHandle {
    id: NodeId,
    commands: mpsc::Sender<EndpointCommand>,
    events: mpsc::Receiver<Event>,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

impl EndpointHandle {
    /// Starts `endpoint` over `transport` on the current tokio runtime.
    pub fn spawn<T: Transport>(endpoint: Endpoint, transport: T, clock: Clock) -> Self {
        let id = endpoint.node_id();
        let discovery = std::sync::Arc::new(crate::MemoryDiscovery::new());
        let (commands, events, task) = spawn(endpoint, transport, discovery, clock);
        EndpointHandle { id, commands, events, task }
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// Opens a session with `addr` (see [`Endpoint::connect`]).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expect: Option<NodeId>,
    ) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::Connect { addr, expect }).await
    }

    /// Sends `message` to whoever is at `addr`, opening a session first if needed.
    pub async fn send_to(&self, addr: SocketAddr, message: Message) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::SendTo { addr, message }).await
    }

    /// Sends `message` to `peer` over its established session.
    pub async fn send(&self, peer: NodeId, message: Message) -> Result<(), DriverStopped> {
        self.command(EndpointCommand::Send { peer, message }).await
    }

    /// Sends any command.
    pub async fn command(&self, command: EndpointCommand) -> Result<(), DriverStopped> {
        self.commands.send(command).await.map_err(|_| DriverStopped)
    }

    /// The next event; `None` once the driver stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Stops the driver and waits for it.
    pub async fn shutdown(self) -> Result<(), DriverError> {
        drop(self.commands);
        match self.task.await {
            Ok(result) => result,
            // The task only ends by returning; a join error means it panicked or was aborted.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        }
    }
}
