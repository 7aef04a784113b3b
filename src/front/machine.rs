//! The node as the front door runs it: the overlay [`Node`] plus answers to the handle (the id
//! of a DHT query, the moment a Part has gone out), and the node's acknowledged inventory
//! kept in its store ([`OWN_INVENTORY_TABLE`]) so that a restarted node sends only a diff.

use std::net::SocketAddr;

use tokio::sync::oneshot;

use crate::{
    dht::{DhtCommand, QueryId, StoreOp},
    overlay::{
        inventory::{self, InventoryDiff, InventoryDocument},
        BulkError, Node, NodeCommand, NodeEvent,
    },
    Candidate, DiscoveryRequest, Machine, Path, Timestamp, Transmit,
};

/// What a [`NodeHandle`](super::NodeHandle) asks of its node.
pub(crate) enum Command {
    /// An overlay command, with a signal once what it sent has gone to the transport.
    Node(NodeCommand, Option<oneshot::Sender<()>>),
    /// A DHT command, answered with its query id.
    Dht(DhtCommand, oneshot::Sender<QueryId>),
    /// A new inventory document for the master.
    SetInventory(InventoryDocument),
    /// A bulk transfer to a peer, answered with its id or why it cannot start.
    Bulk {
        peer: crate::NodeId,
        addr: SocketAddr,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<u64, BulkError>>,
    },
}

/// The node store's table holding the inventory the master acknowledged last (one entry,
/// [`OWN_INVENTORY_KEY`]): its version (8 bytes, big-endian), then the document as an
/// encoded [`InventoryDiff`] from the empty document.
pub(crate) const OWN_INVENTORY_TABLE: &str = "own_inventory";
/// The one key of [`OWN_INVENTORY_TABLE`].
pub(crate) const OWN_INVENTORY_KEY: &[u8] = b"acked";

/// The stored form of an acknowledged inventory (see [`OWN_INVENTORY_TABLE`]).
pub(crate) fn encode_acked(version: u64, doc: &InventoryDocument) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    out.extend(inventory::diff(&InventoryDocument::new(), doc).encode());
    out
}

/// Reads what [`encode_acked`] wrote; `None` when it is not that.
pub(crate) fn decode_acked(bytes: &[u8]) -> Option<(u64, InventoryDocument)> {
    let (version, diff) = bytes.split_first_chunk::<8>()?;
    let diff = InventoryDiff::decode(diff).ok()?;
    let mut doc = InventoryDocument::new();
    diff.apply_to(&mut doc);
    Some((u64::from_be_bytes(*version), doc))
}

pub(crate) struct Front {
    node: Node,
    /// Signals waiting for the transmits in flight to be handed to the transport.
    flushed: Vec<oneshot::Sender<()>>,
    /// The version of the acknowledged inventory last written to the store.
    saved_inventory: Option<u64>,
}

impl Front {
    pub(crate) fn new(node: Node) -> Self {
        let saved_inventory = node.inventory_acked().map(|(v, _)| v);
        Front { node, flushed: Vec::new(), saved_inventory }
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
            Command::SetInventory(document) => self.node.set_inventory(now, document),
            Command::Bulk { peer, addr, data, reply } => {
                let _ = reply.send(self.node.send_bulk(now, peer, addr, data));
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
        if let Some(op) = self.node.poll_store() {
            return Some(op);
        }
        let (version, doc) = self.node.inventory_acked()?;
        if self.saved_inventory == Some(version) {
            return None;
        }
        self.saved_inventory = Some(version);
        let value = encode_acked(version, doc);
        Some(StoreOp::Put { table: OWN_INVENTORY_TABLE, key: OWN_INVENTORY_KEY.to_vec(), value })
    }
    fn refused(&self) -> crate::Refused {
        Machine::refused(&self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_acknowledged_inventory_reads_back_as_written() {
        let doc: InventoryDocument = [("os/name", "Debian"), ("pkg/zstd", "1.5.4")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert_eq!(decode_acked(&encode_acked(42, &doc)), Some((42, doc)));
        assert_eq!(decode_acked(&encode_acked(7, &InventoryDocument::new())).unwrap().0, 7);
        assert_eq!(decode_acked(b"short"), None);
        assert_eq!(decode_acked(b"12345678\xff\x00junk"), None);
    }
}
