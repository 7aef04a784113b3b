//! The master appoints Global Super Nodes (thesis 4.1; issue 16, phase 2) and names one in
//! each introduction, for the relay if the hole punch fails (`node/gsn.rs` is the GSN's and
//! the members' side).
//!
//! * **Eligibility.** A node is a GSN while its config allows it (its [`NatReport`] says so;
//!   default allowed) and it takes unsolicited inbound: the same evidence that makes it a
//!   NAT-classification helper (`introduce.rs`): a helper's probe, sent from an address the
//!   node never sent to, reached it (or it is public and was the first to ask). The master
//!   tells it with [`GsnGrant`] (and withdraws the grant when a later report loses the
//!   evidence or the permission).
//! * **Naming.** Each introduction names one present GSN, not one of the pair, taken in turn
//!   (`pick_gsn`). There is no master-signed GSN record in the DHT yet: only the master
//!   names GSNs, in the introductions it sends.
//!
//! Bound: [`MAX_GSNS`] appointed at once; later candidates wait for a free place (their next
//! report).
//!
//! [`NatReport`]: crate::wire::NatReport

use std::net::SocketAddr;

use super::Master;
use crate::{
    wire::{Contact, GsnGrant, Message, WireAddr},
    NodeId, Timestamp,
};

/// GSNs appointed at once.
pub const MAX_GSNS: usize = 64;

impl Master {
    /// The appointed GSNs.
    pub fn gsns(&self) -> Vec<NodeId> {
        self.intro.gsns.keys().copied().collect()
    }

    /// A node reported its class: appoint it, or withdraw its appointment.
    pub(super) fn appoint_gsn(&mut self, now: Timestamp, node: NodeId, addr: SocketAddr, ok: bool) {
        let i = &mut self.intro;
        let was = i.gsns.contains_key(&node);
        if ok && (was || i.gsns.len() < MAX_GSNS) {
            i.gsns.insert(node, addr);
        } else if !ok && was {
            i.gsns.remove(&node);
        }
        let is = self.intro.gsns.contains_key(&node);
        if is || was {
            // Also on a repeated report: the node may have restarted and forgotten.
            self.send(now, addr, Message::GsnGrant(GsnGrant { active: is }));
        }
    }

    /// A present GSN other than `a` and `b`, taken in turn.
    pub(super) fn pick_gsn(&mut self, a: NodeId, b: NodeId) -> Option<Contact> {
        let n = self.intro.gsns.len();
        for k in 0..n {
            let idx = (self.intro.next_gsn + k) % n;
            let Some((&id, &at)) = self.intro.gsns.iter().nth(idx) else { break };
            if id != a && id != b && self.holds_mapping(&id) {
                self.intro.next_gsn = idx + 1;
                return Some(Contact { id, addr: WireAddr(at) });
            }
        }
        None
    }
}
