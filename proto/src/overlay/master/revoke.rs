//! Revoking nodes: the master signs a new revocation list and sends it to every LSN (revoked
//! ones included, so a well-behaved revoked LSN can hand its children over before it leaves),
//! then adopts it, closing the revoked nodes' sessions. LSNs pass the list to their children
//! (`node/renew.rs`); every peer that opens a session with the master later gets it too, so an
//! LSN that missed it (down, or partitioned away) catches up when it reconnects.

use super::Master;
use crate::{
    wire::{Message, PartReason},
    NodeId, Timestamp,
};

impl Master {
    /// Revokes `nodes`: from now on no node of the fleet accepts their certificates. Returns
    /// the new list's version (`None`: this master cannot sign). A revoked LSN's subnet is
    /// reported absent at once; a revoked child drops out when its LSN closes its session.
    pub fn revoke(&mut self, now: Timestamp, nodes: &[NodeId]) -> Option<u64> {
        let list = self.ep.sign_revocations(now, nodes)?;
        let version = list.version;
        let lsns: Vec<NodeId> =
            self.topology().subnets.iter().flat_map(|s| s.lsns.iter().map(|l| l.id)).collect();
        let message = Message::Revocations(Box::new(list.clone()));
        for lsn in &lsns {
            if let Err(error) = self.ep.send(now, lsn, &message) {
                tracing::debug!(%lsn, %error, "revocation list not sent");
            }
        }
        self.save_revocations(&list);
        if let Err(error) = self.ep.update_revocations(list) {
            tracing::warn!(%error, "own revocation list refused");
            return None;
        }
        for lsn in lsns.iter().filter(|l| nodes.contains(l)) {
            let events = self.reg.lsn_parted(now, lsn, PartReason::Shutdown, &self.cfg);
            self.presence(events);
        }
        self.pump(now);
        tracing::info!(version, revoked = nodes.len(), "revocation list issued");
        Some(version)
    }

    /// A session came up: a peer that may have missed the latest list gets it.
    pub(super) fn offer_revocations(&mut self, now: Timestamp, peer: NodeId) {
        let Some(list) = self.ep.revocations().filter(|l| l.version > 0).cloned() else { return };
        if let Err(error) = self.ep.send(now, &peer, &Message::Revocations(Box::new(list))) {
            tracing::debug!(%peer, %error, "revocation list not sent");
        }
    }
}
