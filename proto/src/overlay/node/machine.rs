//! The node as a [`crate::Machine`], the interface drivers and simulations run.

use std::net::SocketAddr;

use super::Node;
use super::{NodeCommand, NodeEvent};
use crate::{Candidate, DiscoveryRequest, Timestamp, Transmit};

impl crate::Machine for Node {
    type Event = NodeEvent;
    type Command = NodeCommand;

    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        Node::handle_datagram(self, now, src, datagram);
    }
    fn handle_datagram_on(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: crate::Path,
        datagram: &[u8],
    ) {
        Node::handle_datagram_on(self, now, src, path, datagram);
    }
    fn handle_command(&mut self, now: Timestamp, command: NodeCommand) {
        Node::handle_command(self, now, command);
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        Node::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Node::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Node::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        Node::poll_event(self)
    }
    fn poll_discovery(&mut self) -> Option<DiscoveryRequest> {
        self.poll_request()
    }
    fn handle_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        Node::handle_candidates(self, now, candidates);
    }
    fn poll_store(&mut self) -> Option<crate::dht::StoreOp> {
        Node::poll_store(self)
    }
    fn refused(&self) -> crate::Refused {
        crate::Refused::new(self.endpoint().stats().rejected, self.refusals())
    }
}
