//! Who may tell us that another node now leads our subnet (`Takeover`).
//!
//! A new LSN (the standby after a death or a hand-over, or an LSN the master told to adopt
//! children its list missed) announces itself to each child of the LSN it replaced. Any
//! certified node can send the message, and a child that followed a forged one would leave a
//! live LSN for the sender. So a child accepts it only when
//! * the sender names itself as the new LSN,
//! * it comes from an address on our own local network (an LSN leads its LAN; a node of
//!   another subnet cannot lead ours), and
//! * it does not name itself as the one replaced;
//!
//! and then, if we have an LSN,
//! * at once when the sender is one of the hot standbys our LSN ranked first (`STANDBYS`,
//!   two), whom it watched and heartbeat, and it names as the one replaced our LSN, a child
//!   our LSN ranked in its list to us (which took over and died in turn: the sender replaces
//!   it), or the dead LSN ours replaced moments ago (ours died in the middle of that
//!   takeover: the sender finishes it), or
//! * otherwise, whatever it names, only after our LSN fails a probe, sent at once: the claim
//!   is checked against the LSN itself, and while it answers nothing changes;
//!
//! and if we have none (between LSNs), at once when it names the LSN we had last or one of
//! the children that LSN ranked.
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

/// A claim is checked with the LSN-silence probe's tries, this many times closer together
/// (`probe_timeout` / 4: 250 ms by default, 1.25 s in all): a live LSN on our LAN answers within
/// milliseconds, and every second the check takes, a child of a dead one stays unreachable.
/// At 20 % loss each way all five round trips fail 0.6 % of the time (the child then follows the
/// claimant, and the two LSNs settle as rivals do).
pub(crate) const VERIFY_SPEEDUP: u32 = 4;

/// Why a `Takeover` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TakeoverRefused {
    /// The sender named another node as the new LSN.
    #[error("the sender does not name itself")]
    NotSelf,
    /// It came from outside our local network.
    #[error("sent from outside our network")]
    OffSubnet,
    /// It names the sender itself as the one replaced, or (between LSNs) one that was
    /// neither our last LSN nor ranked by it.
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
        if t.old == *peer {
            return Err(TakeoverRefused::NotOurLsn);
        }
        match &self.lsn {
            Some(link) if link.is_successor(peer) && link.may_be_replaced_as(&t.old) => {
                Ok(TakeoverVerdict::Follow)
            }
            // Whatever it names: a claim is only a reason to probe our LSN, which anyone on our
            // network could make us do by naming it. A new LSN may name one we never heard of:
            // in a cascade, the one it replaced took over from ours after our list was sent.
            Some(_) => Ok(TakeoverVerdict::Verify),
            None if self.last_lsn == Some(t.old) => Ok(TakeoverVerdict::Follow),
            None if self
                .finder
                .replacing
                .as_ref()
                .is_some_and(|(_, ranked)| ranked.iter().any(|c| c.id == t.old)) =>
            {
                Ok(TakeoverVerdict::Follow)
            }
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
            TakeoverVerdict::Follow => match self.lsn.take() {
                Some(old) => {
                    self.ep.close(&old.id);
                    self.events.push_back(super::NodeEvent::LsnLost { lsn: old.id });
                    self.follow_claimant(now, old, claimant);
                }
                None => {
                    // Between LSNs: the successors we were about to try, or are trying (the
                    // wait for the announcement may have just run out), stay the fallback, so
                    // that if the claimant dies before answering our Join, the next successor
                    // (perhaps ourselves) takes over instead of everyone waiting out a timer.
                    let replacing = self.finder.replacing.take();
                    let waiting = self.finder.takeover.take().map(|(_, l)| l).unwrap_or_default();
                    let mut rest: Vec<(SocketAddr, Option<NodeId>)> =
                        self.finder.candidates.drain(..).collect();
                    rest.extend(waiting.into_iter().map(|c| (c.addr.0, Some(c.id))));
                    self.join_now(now, claimant);
                    self.finder.replacing = replacing;
                    for (addr, id) in rest {
                        let known =
                            self.finder.candidates.iter().any(|c| c.1 == id && id.is_some());
                        if id != Some(claimant.id) && !known {
                            self.finder.candidates.push_back((addr, id));
                        }
                    }
                }
            },
            TakeoverVerdict::Verify => self.verify_takeover(now, claimant),
        }
    }

    /// Probes our LSN at once (quickly: [`VERIFY_SPEEDUP`]); `lsn_dead` follows the claimant
    /// if the probe fails, and any
    /// word from the LSN drops the claim (`heard_from_lsn`).
    fn verify_takeover(&mut self, now: Timestamp, claimant: Contact) {
        let seq = self.next_seq();
        let deadline = now + self.cfg.probe_timeout / VERIFY_SPEEDUP;
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
