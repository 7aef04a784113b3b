//! What the master reports ([`MasterEvent`], [`PresenceEvent`]) and what an application can
//! ask of it ([`MasterCommand`]).

use std::time::Duration;

use super::{DeliveryError, DeliveryId, RequestError, RequestId};
use crate::{endpoint::Event, NodeId, Timestamp};

/// A change in who is present, as the master sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceEvent {
    /// A node became present, under `lsn` (itself for an LSN).
    Joined {
        /// The node.
        node: NodeId,
        /// Its LSN.
        lsn: NodeId,
    },
    /// A node left: announced (`Shutdown`), `Lost` (stopped answering), or `Moved` and not seen
    /// elsewhere within the grace period.
    Parted {
        /// The node.
        node: NodeId,
        /// Why.
        reason: crate::wire::PartReason,
    },
    /// A node moved to another subnet's LSN.
    Moved {
        /// The node.
        node: NodeId,
        /// Its old LSN.
        from: NodeId,
        /// Its new LSN.
        to: NodeId,
    },
    /// A node is now reached through another LSN of the same subnet (failover, yield).
    Rerouted {
        /// The node.
        node: NodeId,
        /// Its old LSN.
        from: NodeId,
        /// Its new LSN.
        to: NodeId,
    },
}

/// What the [`Master`](super::Master) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterEvent {
    /// Presence changed.
    Presence(PresenceEvent),
    /// An application message was delivered (acknowledged by the node, through its LSN).
    Delivered {
        /// The message id.
        id: DeliveryId,
        /// The recipient.
        node: NodeId,
        /// Time from sending to the acknowledgement.
        rtt: Duration,
    },
    /// An application message could not be delivered.
    DeliveryFailed {
        /// The message id.
        id: DeliveryId,
        /// The recipient.
        node: NodeId,
        /// Why.
        error: DeliveryError,
    },
    /// A node's report arrived ([`Node::report`](crate::overlay::Node::report)): sealed
    /// by the node, each seen once.
    Report {
        /// The sender.
        node: NodeId,
        /// The node's id for it.
        id: u64,
        /// The payload.
        data: Vec<u8>,
    },
    /// A node answered a request ([`Master::request`](super::Master::request)); each
    /// request ends once, in this or [`MasterEvent::RequestFailed`].
    Response {
        /// The request's id.
        id: RequestId,
        /// The node.
        node: NodeId,
        /// How it went.
        status: crate::wire::ResponseStatus,
        /// The handler's output.
        body: Vec<u8>,
    },
    /// A request ended without an answer.
    RequestFailed {
        /// The request's id.
        id: RequestId,
        /// The node.
        node: NodeId,
        /// Why.
        error: RequestError,
    },
    /// A fleet request ([`Master::request_fleet`](super::Master::request_fleet)) expired.
    /// Each node's answer came before as a [`MasterEvent::Response`]; each node that took it
    /// and did not answer as a [`MasterEvent::RequestFailed`].
    FleetEnded {
        /// The request's id.
        id: RequestId,
        /// Nodes that answered.
        answered: usize,
        /// Nodes that took it and did not answer.
        unanswered: usize,
        /// Nodes of the audience present at the end that never took it (they came too late
        /// for their LSN to hand it over, or could not be reached).
        unreached: usize,
    },
    /// A node's inventory changed at the master ([`Master::inventory`](super::Master::inventory)
    /// has it): a whole document (`full`) or a diff applied.
    Inventory {
        /// The node.
        node: NodeId,
        /// The version held now.
        version: u64,
        /// Whether the change replaced the whole document.
        full: bool,
    },
    /// An inventory batch or change was refused (docs/AUTHORIZATION.md).
    InventoryRefused {
        /// The LSN (or other peer) that sent it.
        lsn: NodeId,
        /// Why.
        error: crate::overlay::inventory::InventoryError,
    },
    /// A fleet-wide aggregate ([`Master::query_fleet`](super::Master::query_fleet)) ended:
    /// every LSN asked answered, or its time ran out.
    QueryEnded {
        /// The query's id.
        id: RequestId,
        /// The combined answer and who it covers.
        outcome: super::QueryOutcome,
    },
    /// A link-layer event (sessions, refusals, enrollment).
    Link(Event),
    /// No LSN was heard from for longer than chance explains: the master is probably cut
    /// off from the fleet, and what it shows as present is stale
    /// ([`Master::isolated_since`](super::Master::isolated_since)). Presence is not changed.
    Isolated {
        /// When the last LSN was heard from.
        since: Timestamp,
        /// LSNs registered, none of which was heard from.
        lsns: usize,
    },
    /// An LSN was heard from again after [`MasterEvent::Isolated`].
    Reconnected {
        /// How long the master was isolated (from the last message before it).
        isolated_for: Duration,
    },
}

/// What an application can ask of a running [`Master`](super::Master).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterCommand {
    /// [`Master::send_message`](super::Master::send_message).
    Send {
        /// The recipient.
        node: NodeId,
        /// The application's id for the message (0 is reserved for polls).
        id: u64,
        /// The payload.
        data: Vec<u8>,
    },
    /// [`Master::poll_node`](super::Master::poll_node).
    Poll {
        /// The node.
        node: NodeId,
    },
    /// [`Master::revoke`](super::Master::revoke).
    Revoke {
        /// The nodes to revoke.
        nodes: Vec<NodeId>,
    },
    /// Nothing: makes a driver re-read the master's timers after the application changed
    /// the master directly through a shared handle (e.g. queued a
    /// [`Master::request`](super::Master::request)).
    Wake,
}
