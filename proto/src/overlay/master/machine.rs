//! The master as a [`Machine`](crate::Machine): what the driver and the simulator call.

use std::net::SocketAddr;

use super::{Master, MasterCommand, MasterEvent};
use crate::{Timestamp, Transmit};

impl crate::Machine for Master {
    type Event = MasterEvent;
    type Command = MasterCommand;

    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        Master::handle_datagram(self, now, src, datagram);
    }
    fn handle_datagram_on(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: crate::Path,
        datagram: &[u8],
    ) {
        Master::handle_datagram_on(self, now, src, path, datagram);
    }
    fn handle_command(&mut self, now: Timestamp, command: MasterCommand) {
        Master::handle_command(self, now, command);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        Master::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Master::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Master::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<MasterEvent> {
        Master::poll_event(self)
    }
    fn poll_store(&mut self) -> Option<crate::dht::StoreOp> {
        Master::poll_store(self)
    }
    fn refused(&self) -> crate::Refused {
        crate::Refused::new(self.endpoint().stats().rejected, self.refusals())
    }
}
