//! Running an [`Endpoint`] under the driver, and the handle the application holds.

use std::net::SocketAddr;

use tokio::sync::mpsc;

use super::{spawn, Clock, DriverError, DriverStopped, Machine};
use crate::{
    endpoint::{CommandError, Endpoint, Event},
    trust::RevocationList,
    wire::Message,
    NodeId, Path, Timestamp, Transmit, Transport,
};

/// What an application can ask of a running [`Endpoint`].
#[derive(Debug)]
#[non_exhaustive]
pub enum EndpointCommand {
    /// [`Endpoint::connect`].
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Only this node is accepted, when given.
        expect: Option<NodeId>,
    },
    /// [`Endpoint::send`]; a failure comes back as [`Event::CommandFailed`].
    Send {
        /// To whom.
        peer: NodeId,
        /// What.
        message: Message,
    },
    /// [`Endpoint::send_to`].
    SendTo {
        /// Where.
        addr: SocketAddr,
        /// What.
        message: Message,
    },
    /// [`Endpoint::close`].
    Close {
        /// Whom.
        peer: NodeId,
    },
    /// [`Endpoint::update_revocations`].
    UpdateRevocations(RevocationList),
}

impl Machine for Endpoint {
    type Event = Event;
    type Command = EndpointCommand;

    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        Endpoint::handle_datagram(self, now, src, datagram);
    }

    fn handle_datagram_on(&mut self, now: Timestamp, src: SocketAddr, path: Path, datagram: &[u8]) {
        Endpoint::handle_datagram_on(self, now, src, path, datagram);
    }

    fn handle_command(&mut self, now: Timestamp, command: EndpointCommand) {
        let result = match command {
            EndpointCommand::Connect { addr, expect } => {
                self.connect(now, addr, expect);
                Ok(())
            }
            EndpointCommand::Send { peer, message } => {
                self.send(now, &peer, &message).map_err(CommandError::from)
            }
            EndpointCommand::SendTo { addr, message } => {
                self.send_to(now, addr, message).map_err(CommandError::from)
            }
            EndpointCommand::Close { peer } => {
                self.close(&peer);
                Ok(())
            }
            EndpointCommand::UpdateRevocations(list) => {
                self.update_revocations(list).map_err(CommandError::from)
            }
        };
        if let Err(error) = result {
            self.report(error);
        }
    }

    fn handle_timeout(&mut self, now: Timestamp) {
        Endpoint::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        Endpoint::poll_transmit(self)
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        Endpoint::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Endpoint::poll_event(self)
    }
}

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
