//! Where a node is ([`NodeState`]), what it reports ([`NodeEvent`]) and what an application
//! can ask of it ([`NodeCommand`]).

use super::ReportError;
use crate::{endpoint::Event, wire::PartReason, NodeId};

/// Where a node is in its life (thesis figure 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NodeState {
    /// Not part of the overlay (starting, enrolling, or left).
    NoConnection,
    /// Asking the LAN, the cache and the master for the subnet's LSN.
    LookingForLsn,
    /// Joining an LSN.
    Joining,
    /// A child of an LSN.
    HasLsn,
    /// The subnet's LSN.
    IsLsn,
}

/// What a [`Node`](super::Node) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The state changed.
    State {
        /// Before.
        from: NodeState,
        /// After.
        to: NodeState,
    },
    /// Joined an LSN.
    JoinedLsn {
        /// The LSN.
        lsn: NodeId,
    },
    /// Became the subnet's LSN; `takeover_from` names the dead LSN a standby replaced.
    BecameLsn {
        /// The LSN replaced, if this was a takeover.
        takeover_from: Option<NodeId>,
    },
    /// The LSN stopped answering (or yielded).
    LsnLost {
        /// The LSN.
        lsn: NodeId,
    },
    /// (LSN) A child joined.
    ChildJoined {
        /// The child.
        node: NodeId,
    },
    /// (LSN) A child left or was lost.
    ChildParted {
        /// The child.
        node: NodeId,
        /// Why.
        reason: PartReason,
    },
    /// An application message from the master arrived (authenticated end to end).
    Message {
        /// The master's message id.
        id: u64,
        /// The payload.
        data: Vec<u8>,
    },
    /// A request from the master, to be answered with [`Node::respond`](super::Node::respond).
    /// Each id comes at most once, even across restarts (`requests.rs`).
    Request {
        /// The master's id for it.
        id: u64,
        /// Which handler should answer it.
        kind: String,
        /// Its input.
        body: Vec<u8>,
    },
    /// The master acknowledged a report ([`Node::report`](super::Node::report)).
    ReportDelivered {
        /// The report's id.
        id: u64,
    },
    /// A report did not reach the master.
    ReportFailed {
        /// The report's id.
        id: u64,
        /// Why.
        error: ReportError,
    },
    /// The master did not answer (the node keeps retrying with backoff).
    MasterUnreachable,
    /// A node we asked to be our LSN refused (it is not an LSN, or not admitting us); the node
    /// tries the next candidate.
    JoinRefused {
        /// The node that refused.
        peer: NodeId,
        /// What it said.
        detail: String,
    },
    /// A session with `peer` came up on a relay path, or a direct session replaced a relayed
    /// one (after a GSN relayed them because hole punching failed, `gsn.rs`).
    PeerPath {
        /// The peer.
        peer: NodeId,
        /// The GSN the session runs through; `None` for a direct path.
        via: Option<NodeId>,
    },
    /// A link-layer event: sessions, refusals, rejected packets, enrollment.
    Link(Event),
    /// A DHT query finished.
    Dht(crate::dht::DhtEvent),
    /// A peer's bulk transfer ([`Node::send_bulk`](super::Node::send_bulk)) arrived whole.
    BulkReceived {
        /// The sender.
        peer: NodeId,
        /// The sender's id for the transfer.
        id: u64,
        /// The payload.
        data: Vec<u8>,
    },
    /// Every chunk of our bulk transfer `id` reached `peer`.
    BulkSent {
        /// The receiver.
        peer: NodeId,
        /// The transfer.
        id: u64,
    },
    /// Our bulk transfer `id` to `peer` failed.
    BulkFailed {
        /// The receiver.
        peer: NodeId,
        /// The transfer.
        id: u64,
        /// Why.
        error: super::BulkError,
    },
}

/// What an application can ask of a running [`Node`](super::Node).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeCommand {
    /// The node moved to another network: part from the old LSN (reason `Moved`) and find the
    /// new subnet's LSN, keeping id and certificate.
    Move(crate::overlay::LocalNetwork),
    /// Leave the overlay with an announced part (reason `Shutdown`).
    Leave,
    /// A DHT query; its result comes back as [`NodeEvent::Dht`].
    Dht(crate::dht::DhtCommand),
    /// [`Node::respond`](super::Node::respond): answers a [`NodeEvent::Request`].
    Respond {
        /// The request's id.
        id: u64,
        /// How it went.
        status: crate::wire::ResponseStatus,
        /// The output.
        body: Vec<u8>,
    },
    /// [`Node::report`](super::Node::report): a message for the master. A report that cannot
    /// be queued fails at once with [`NodeEvent::ReportFailed`].
    Report {
        /// The application's id for it.
        id: u64,
        /// The payload.
        data: Vec<u8>,
    },
    /// [`Node::send_bulk_as`](super::Node::send_bulk_as): a bulk transfer to a peer under
    /// the caller's id; a transfer that cannot start fails at once with
    /// [`NodeEvent::BulkFailed`].
    SendBulk {
        /// The transfer's id: pick it at random (the peer takes a chunk of an id it finished
        /// lately as part of that transfer).
        id: u64,
        /// The receiver.
        peer: crate::NodeId,
        /// Where to reach it if no session stands.
        addr: std::net::SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
}
