//! What a node can tell about itself: its place in the overlay, the path each of its two
//! links takes (to its LSN, and as an LSN to the master) and their round-trip times.
//!
//! Round trips are those of requests the node makes anyway (its Join to the LSN, its query or
//! registration at the master), so they cost nothing; each is the latest such exchange.

use std::time::Duration;

use super::{Node, NodeState};
use crate::{NodeId, Path, Timestamp};

/// A node's place in the overlay and the state of its links; from [`Node::status`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStatus {
    /// Where the node is in the overlay.
    pub state: NodeState,
    /// Its LSN: itself when it is one.
    pub lsn: Option<NodeId>,
    /// The path to its LSN (none when it is the LSN, or has no session).
    pub lsn_path: Option<Path>,
    /// The round trip of its last Join to the LSN.
    pub lsn_rtt: Option<Duration>,
    /// The path to the master, when it has a session there (an LSN always does).
    pub master_path: Option<Path>,
    /// The round trip of its last request to the master (LSN query or registration).
    pub master_rtt: Option<Duration>,
}

/// The round trips last measured.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rtts {
    lsn: Option<Duration>,
    master: Option<Duration>,
}

impl Node {
    /// The node's place in the overlay, the paths of its links and their round-trip times.
    pub fn status(&self) -> NodeStatus {
        let me = self.node_id();
        let lsn = match self.state {
            NodeState::IsLsn => Some(me),
            _ => self.lsn.as_ref().map(|l| l.id),
        };
        let master = self.master_id();
        NodeStatus {
            state: self.state,
            lsn,
            lsn_path: lsn.filter(|l| *l != me).and_then(|l| self.ep.peer_path(&l)),
            lsn_rtt: self.rtts.lsn.filter(|_| lsn.is_some_and(|l| l != me)),
            master_path: self.ep.peer_path(&master),
            master_rtt: self.rtts.master,
        }
    }

    /// Our Join, sent at `sent`, was answered now.
    pub(super) fn lsn_answered(&mut self, now: Timestamp, sent: Timestamp) {
        self.rtts.lsn = Some(now.saturating_since(sent));
    }

    /// A request to the master, sent at `sent`, was answered now.
    pub(super) fn master_answered(&mut self, now: Timestamp, sent: Timestamp) {
        self.rtts.master = Some(now.saturating_since(sent));
    }
}
