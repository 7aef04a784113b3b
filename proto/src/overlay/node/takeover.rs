//! Who may tell us that another node now leads our subnet (`Takeover`).
//!
//! A new LSN (the standby after a death or a hand-over, or an LSN the master told to adopt
//! children its list missed) announces itself to each child of the LSN it replaced. Any
//! certified node can send the message, and a child that followed a forged one would leave a
//! live LSN for the sender. So a child accepts it only when
//! * the sender names itself as the new LSN,
//! * it comes from an address on our own local network (an LSN leads its LAN; a node of
//!   another subnet cannot lead ours), and
//! * it names the LSN we have (or had last, if we already lost it) as the one replaced;
//!
//! and then, if we still have that LSN,
//! * at once when the sender is the standby our LSN ranked first, whom it watched and
//!   heartbeat, or
//! * otherwise only after our LSN fails a probe, sent at once: the claim is checked against
//!   the LSN itself, and while it answers nothing changes.
//!
//! An LSN that receives a `Takeover` answers with a rival challenge (`rival.rs`), under the
//! same two first rules. Anything else is refused with a [`TakeoverRefused`] and changes
//! nothing.

use std::net::SocketAddr;

use super::{Node, NodeState, Probe};
use crate::{
    wire::{Contact, Message, Ping, Takeover},
    NodeId, Timestamp,
};

/// Why a `Takeover` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TakeoverRefused {
    /// The sender named another node as the new LSN.
    #[error("the sender does not name itself")]
    NotSelf,
    /// It came from outside our local network.
    #[error("sent from outside our network")]
    OffSubnet,
    /// It names an LSN we never had, or not our current one.
    #[error("names an LSN that is not ours")]
    NotOurLsn,
}

/// What to do with a `Takeover` that passed the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TakeoverVerdict {
    /// Join the sender now.
    Follow,
    /// Probe our LSN first; follow only if it does not answer.
    Verify,
    /// We are an LSN: challenge the sender.
    Challenge,
}

impl Node {
    /// Whether a `Takeover` `t` from `peer` at `addr` is authorised, and how to act on it.
    pub(crate) fn takeover_verdict(
        &self,
        peer: &NodeId,
        addr: SocketAddr,
        t: &Takeover,
    ) -> Result<TakeoverVerdict, TakeoverRefused> {
        if t.lsn.id != *peer {
            return Err(TakeoverRefused::NotSelf);
        }
        if !self.cfg.local.contains(addr.ip()) {
            return Err(TakeoverRefused::OffSubnet);
        }
        if self.state == NodeState::IsLsn {
            return Ok(TakeoverVerdict::Challenge);
        }
        match &self.lsn {
            Some(link) if link.id != t.old => Err(TakeoverRefused::NotOurLsn),
            Some(link) if link.ranked_standby() == Some(*peer) => Ok(TakeoverVerdict::Follow),
            Some(_) => Ok(TakeoverVerdict::Verify),
            None if self.last_lsn == Some(t.old) => Ok(TakeoverVerdict::Follow),
            None => Err(TakeoverRefused::NotOurLsn),
        }
    }

    pub(super) fn on_takeover(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        t: Takeover,
    ) {
        let verdict = match self.takeover_verdict(&peer, addr, &t) {
            Ok(v) => v,
            Err(refused) => {
                self.refusals.takeover += 1;
                tracing::debug!(?peer, %addr, %refused, "takeover refused");
                return;
            }
        };
        let claimant = Contact { id: peer, addr: t.lsn.addr };
        match verdict {
            TakeoverVerdict::Challenge => self.challenge(now, claimant),
            TakeoverVerdict::Follow => {
                if let Some(old) = self.lsn.take() {
                    self.ep.close(&old.id);
                    self.events.push_back(super::NodeEvent::LsnLost { lsn: old.id });
                }
                self.join_now(now, claimant);
            }
            TakeoverVerdict::Verify => self.verify_takeover(now, claimant),
        }
    }

    /// Probes our LSN at once; `lsn_dead` follows the claimant if the probe fails, and any
    /// word from the LSN drops the claim (`heard_from_lsn`).
    fn verify_takeover(&mut self, now: Timestamp, claimant: Contact) {
        let seq = self.next_seq();
        let deadline = now + self.cfg.probe_timeout;
        let Some(link) = self.lsn.as_mut() else { return };
        link.claimant = Some(claimant);
        if link.probe.is_some() {
            return;
        }
        link.probe = Some(Probe { seq, deadline, tries: 1 });
        let addr = link.addr;
        self.send(now, addr, Message::Ping(Ping { seq }));
    }
}
