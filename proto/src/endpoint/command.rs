//! Commands to an [`Endpoint`] run by a driver, and the endpoint as a [`Machine`].

use std::net::SocketAddr;

use super::{CommandError, Endpoint, Event};
use crate::{trust::RevocationList, wire::Message, Machine, NodeId, Path, Timestamp, Transmit};

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

    fn refused(&self) -> crate::Refused {
        crate::Refused::new(self.stats().rejected, Default::default())
    }
}
