//! The node as the front door runs it: the overlay [`Node`] plus answers to the handle (the id
//! of a DHT query, the moment a Part has gone out).

use std::net::SocketAddr;

use tokio::sync::oneshot;

use crate::{
    dht::{DhtCommand, QueryId, StoreOp},
    overlay::{Node, NodeCommand, NodeEvent},
    Candidate, DiscoveryRequest, Machine, Path, Timestamp, Transmit,
};

/// What a [`NodeHandle`](super::NodeHandle) asks of its node.
pub(crate) enum Command {
    /// An overlay command, with a signal once what it sent has gone to the transport.
    Node(NodeCommand, Option<oneshot::Sender<()>>),
    /// A DHT command, answered with its query id.
    Dht(DhtCommand, oneshot::Sender<QueryId>),
}

pub(crate) struct Front {
    node: Node,
    /// Signals waiting for the transmits in flight to be handed to the transport.
    flushed: Vec<oneshot::Sender<()>>,
}

impl Front {
    pub(crate) fn new(node: Node) -> Self {
        Front { node, flushed: Vec::new() }
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }
}

impl Machine for Front {
    type Event = NodeEvent;
    type Command = Command;

    fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        self.node.handle_datagram(now, src, datagram);
    }
    fn handle_datagram_on(&mut self, now: Timestamp, src: SocketAddr, path: Path, datagram: &[u8]) {
        self.node.handle_datagram_on(now, src, path, datagram);
    }
    fn handle_command(&mut self, now: Timestamp, command: Command) {
        match command {
            Command::Node(command, flushed) => {
                self.node.handle_command(now, command);
                self.flushed.extend(flushed);
            }
            Command::Dht(command, reply) => {
                let _ = reply.send(self.node.dht_command(now, command));
            }
        }
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        self.node.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        let next = self.node.poll_transmit();
        if next.is_none() {
            // The driver drains every transmit right after each input: all are out now.
            for signal in self.flushed.drain(..) {
                let _ = signal.send(());
            }
        }
        next
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        self.node.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.node.poll_event()
    }
    fn poll_discovery(&mut self) -> Option<DiscoveryRequest> {
        Machine::poll_discovery(&mut self.node)
    }
    fn handle_candidates(&mut self, now: Timestamp, candidates: Vec<Candidate>) {
        self.node.handle_candidates(now, candidates);
    }
    fn poll_store(&mut self) -> Option<StoreOp> {
        self.node.poll_store()
    }
    fn refused(&self) -> crate::Refused {
        Machine::refused(&self.node)
    }
}
