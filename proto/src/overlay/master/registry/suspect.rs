//! A standby's takeover report at the master: the LSN it names is absent at once while the
//! master checks the claim with pings (`Master::suspect`), present again if it answers, gone
//! when it does not, whoever reported it.

use super::Registry;
use crate::{
    overlay::{master::PresenceEvent, MasterConfig},
    wire::PartReason,
    NodeId, Timestamp,
};

impl Registry {
    /// A standby reported `lsn` dead and the master is checking (`Master::suspect`): the LSN is
    /// absent at once (no message goes to it, `is_present` is false), but keeps its role and
    /// its children until the check ends; the ones its successor claims move meanwhile.
    /// Returns whether it was a present LSN.
    pub(in crate::overlay::master) fn suspect_lsn(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        cfg: &MasterConfig,
    ) -> bool {
        if !self.lsns.contains_key(lsn) || !self.is_present(lsn) {
            return false;
        }
        self.set_pending(lsn, PartReason::Lost, now + cfg.grace);
        true
    }

    /// The suspected `lsn` answered: present again, as before.
    pub(in crate::overlay::master) fn clear_suspicion(&mut self, lsn: &NodeId) {
        let Some(rec) = self.nodes.get_mut(lsn) else { return };
        if rec.lsn != *lsn || !self.lsns.contains_key(lsn) {
            return;
        }
        if let Some((_, until)) = rec.pending.take() {
            self.pending.remove(&(until, *lsn));
            self.present += 1;
        }
    }

    /// The check of a suspected LSN failed: it is gone, whoever reported it (the reporter may
    /// have died or left meanwhile, as in a cascade of failures).
    pub(in crate::overlay::master) fn suspect_confirmed(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        cfg: &MasterConfig,
    ) -> Vec<PresenceEvent> {
        if !self.lsns.contains_key(lsn) {
            return Vec::new();
        }
        self.lsn_gone(now, lsn, PartReason::Lost, cfg)
    }
}
