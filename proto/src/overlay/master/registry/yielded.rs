//! An LSN that yields to a rival of its subnet (`node/rival.rs`) joins that rival at once, so
//! the master files it there on its word instead of holding it absent until the rival reports
//! it: under 20 % loss that report could take seconds (a lost update waits for its resend),
//! and every such yield after a mistaken takeover cost the yielder a few presence checks.
//!
//! The word is checked against what the master knows (the rival is a present LSN of the same
//! subnet), and it is provisional: until the grace period ends, a resync answer of the rival
//! that does not list the yielder yet (its Join still on the way) leaves it pending rather
//! than parting it.

use super::{Registry, MAX_GONE};
use crate::{
    overlay::{master::PresenceEvent, MasterConfig},
    wire::PartReason,
    NodeId, Timestamp,
};

impl Registry {
    /// `lsn` parted yielding to `better`: files it as `better`'s child. `None` (nothing done)
    /// unless both are registered LSNs of one subnet and `better` is present; the part is
    /// then an ordinary one.
    pub(in crate::overlay::master) fn yielded(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        better: &NodeId,
        cfg: &MasterConfig,
    ) -> Option<Vec<PresenceEvent>> {
        let subnet = self.subnet_of(lsn)?;
        if better == lsn || self.subnet_of(better) != Some(subnet) || !self.is_present(better) {
            return None;
        }
        let addr = self.lsns.get(lsn)?.contact.addr.0;
        self.drop_lsn(now, lsn, cfg);
        let event = self.place(now, *lsn, *better, addr, vec![*lsn, *better]);
        self.yielded.retain(|_, until| *until > now);
        if self.yielded.len() >= MAX_GONE {
            self.yielded.pop_first();
        }
        self.yielded.insert(*lsn, now + cfg.grace);
        Some(event.into_iter().collect())
    }

    /// Whether `node` was filed under its LSN on its own word (a yield) within the grace
    /// period, so that its LSN's list may not name it yet.
    fn on_its_word(&self, now: Timestamp, node: &NodeId) -> bool {
        self.yielded.get(node).is_some_and(|until| now < *until)
    }

    /// A child `lsn`'s resync answer did not list: parted, unless it is there on its word
    /// (then pending, as any node whose LSN has not reported it yet).
    pub(super) fn unlisted(
        &mut self,
        now: Timestamp,
        child: &NodeId,
        cfg: &MasterConfig,
    ) -> Option<PresenceEvent> {
        if self.on_its_word(now, child) {
            self.set_pending(child, PartReason::Yield, now + cfg.grace);
            return None;
        }
        self.remove(child, PartReason::Lost)
    }

    /// The children still filed under `yielder` and waiting (pending) for an LSN to report
    /// them: those neither its rival nor anyone else has claimed.
    pub(in crate::overlay::master) fn unclaimed_under(
        &self,
        yielder: &NodeId,
    ) -> Vec<crate::wire::Contact> {
        self.contacts_under(yielder, |id, r| id != yielder && r.pending.is_some())
    }
}
