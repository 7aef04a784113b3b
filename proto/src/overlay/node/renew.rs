//! A node's certificate renewal and its part in spreading revocation lists.
//!
//! Renewal: when [`Endpoint::renewal_due`](crate::Endpoint::renewal_due) says so, the node
//! sends the master a renewal request (opening a session if it has none), and asks again every
//! [`RENEW_RETRY`] until a new certificate arrives; the endpoint adopts it.
//!
//! Revocation: the master sends each new list to its LSNs; an LSN passes a list it adopted on
//! to its children, and gives every child that joins the list it holds. The lists are signed
//! by the master and versioned, so a relaying LSN can neither forge nor roll one back.

use std::{net::SocketAddr, time::Duration};

use super::{Node, NodeState};
use crate::{trust::RevocationList, wire::Message, NodeId, Timestamp};

/// How long a node waits for its renewed certificate before asking again.
pub(super) const RENEW_RETRY: Duration = Duration::from_secs(3600);

impl Node {
    pub(super) fn renew_deadline(&self) -> Option<Timestamp> {
        self.ep.renewal_due().map(|due| due.max(self.renew_retry))
    }

    pub(super) fn renew_timers(&mut self, now: Timestamp) {
        if self.renew_deadline().is_some_and(|t| now >= t) {
            self.renew_retry = now + RENEW_RETRY;
            let request = self.ep.renewal_request();
            self.send(now, self.cfg.master, request);
        }
    }

    /// A revocation list arrived (the endpoint has already adopted it if it was newer).
    pub(super) fn on_revocations(&mut self, now: Timestamp, peer: NodeId, list: &RevocationList) {
        let from_master = peer == self.ep.trust().network().master_id();
        if !from_master || list.verify(self.ep.trust().network()).is_err() {
            return;
        }
        let me = self.node_id();
        if list.contains(&me) {
            // Revoked: hand the children the list and leave (they move to the standby); a
            // revoked node has nothing left to join.
            tracing::warn!(version = list.version, "this node's certificate was revoked");
            self.pass_on(now, list);
            self.leave(now);
            return;
        }
        if self.ep.revocations().is_some_and(|held| held == list) && self.state == NodeState::IsLsn
        {
            self.pass_on(now, list);
        }
    }

    fn pass_on(&mut self, now: Timestamp, list: &RevocationList) {
        let children: Vec<SocketAddr> = self
            .role
            .as_ref()
            .map(|r| r.children.values().map(|c| c.addr).collect())
            .unwrap_or_default();
        for addr in children {
            self.send(now, addr, Message::Revocations(Box::new(list.clone())));
        }
    }

    /// Gives a newly joined child the revocation list held, if the master ever revoked anyone.
    pub(super) fn send_revocations(&mut self, now: Timestamp, addr: SocketAddr) {
        if let Some(list) = self.ep.revocations().filter(|l| l.version > 0).cloned() {
            self.send(now, addr, Message::Revocations(Box::new(list)));
        }
    }
}
