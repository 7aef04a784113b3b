//! The certificates the master keeps to seal messages to nodes, and when it forgets them.

use std::time::Duration;

use super::Registry;
use crate::{NodeId, Timestamp};

impl Registry {
    /// Forgets every certificate that expired more than `grace` before `now`, except the one
    /// with the highest serial (a restarted master numbers new certificates after the highest
    /// it finds, so that one stays to keep serials from repeating). Returns the nodes
    /// forgotten, in order. An expired certificate opens no session: its node enrolls again
    /// and the new certificate takes its place.
    pub(in crate::overlay::master) fn forget_expired_certificates(
        &mut self,
        now: Timestamp,
        grace: Duration,
    ) -> Vec<NodeId> {
        let cut = now.as_secs().saturating_sub(grace.as_secs());
        let newest = self.certs.values().map(|c| c.body.serial).max();
        let mut gone: Vec<NodeId> = self
            .certs
            .iter()
            .filter(|(_, c)| c.body.expires_at < cut && Some(c.body.serial) != newest)
            .map(|(id, _)| *id)
            .collect();
        gone.sort_unstable();
        for id in &gone {
            self.certs.remove(id);
        }
        // What can go next: the earliest expiry among those not forgettable yet.
        self.earliest_expiry =
            self.certs.values().map(|c| c.body.expires_at).filter(|&e| e >= cut).min();
        if self.certs.capacity() > 64 && self.certs.len() < self.certs.capacity() / 4 {
            self.certs.shrink_to(self.certs.len() * 2);
        }
        gone
    }

    /// When the next certificate expires (UNIX seconds), of those not forgettable already.
    pub(in crate::overlay::master) fn earliest_expiry(&self) -> Option<u64> {
        self.earliest_expiry
    }

    /// Certificates kept.
    pub(in crate::overlay::master) fn certificate_count(&self) -> usize {
        self.certs.len()
    }

    /// Test hook: as if `node`'s certificate had never reached us.
    #[cfg(test)]
    pub(in crate::overlay::master) fn forget_certificate(&mut self, node: &NodeId) {
        self.certs.remove(node);
    }
}
