//! Telling duplicate LSNs about each other until they settle (issue 19). When a second LSN
//! registers in a subnet, the master sends every LSN of it the subnet's list, senior first
//! (`node/rival.rs` settles it from there). One lost list used to leave the pair until the
//! next liveness check of either (a minute): the lists now go again every [`GAP`], up to
//! [`ROUNDS`] times, while the subnet still has more than one LSN.
//!
//! Live rivals settle within a round or two. A pair that outlasts [`CHECK_AFTER`] rounds may
//! be a live LSN beside a dead one that nobody reported (`suspects.rs`): the LSNs silent
//! since the pair began are then checked.
//!
//! A rival can stop being an LSN here without knowing it: the senior still counted it among
//! its children (it was one, moments before it registered as LSN) and reported it so, and
//! the first list was lost on its way to it. The subnet then has one LSN here and the rounds
//! used to stop, leaving the node leading nobody until its next liveness check (34 s in one
//! 20 %-loss run). So a rival no longer an LSN gets the list (which names the LSN that stays,
//! senior to it) for [`DEMOTED_ROUNDS`] more rounds.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use super::{Master, SubnetKey};
use crate::{
    wire::{Message, NodeList},
    NodeId, Timestamp,
};

/// Time between two rounds of lists to a subnet's LSNs.
const GAP: Duration = Duration::from_secs(2);
/// Rounds, the first included.
const ROUNDS: u32 = 15;
/// Rounds after which the LSNs that stayed silent are checked (6 s after the pair began).
const CHECK_AFTER: u32 = 3;
/// Rounds a rival that is no LSN here any more still gets the list.
const DEMOTED_ROUNDS: u32 = 3;
/// Rivals remembered per subnet (a subnet has one LSN, rarely two or three).
const MAX_MEMBERS: usize = 8;
/// Most subnets with duplicate LSNs followed at once (beyond it the oldest is dropped: its
/// LSNs still hear the list with their next liveness check).
const MAX_SUBNETS: usize = 1024;

/// A subnet with more than one LSN.
struct Round {
    /// The next round.
    at: Timestamp,
    /// Rounds left.
    left: u32,
    /// Every LSN it had since the first round, and where it registered from.
    members: Vec<(NodeId, SocketAddr)>,
}

/// Subnets with more than one LSN.
#[derive(Default)]
pub(super) struct Duplicates(BTreeMap<SubnetKey, Round>);

impl Duplicates {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.0.values().map(|r| r.at).min()
    }
}

impl Master {
    /// Tells each LSN of `subnet` about the others, now and in the rounds to come, if it has
    /// more than one.
    pub(super) fn tell_rivals(&mut self, now: Timestamp, subnet: SubnetKey) {
        let mut members = self.duplicates.0.remove(&subnet).map(|r| r.members).unwrap_or_default();
        if self.send_rival_lists(now, &subnet, &mut members).is_none() {
            return;
        }
        if self.duplicates.0.len() >= MAX_SUBNETS {
            let oldest = self.duplicates.0.iter().min_by_key(|(_, r)| r.at).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.duplicates.0.remove(&k);
            }
        }
        self.duplicates.0.insert(subnet, Round { at: now + GAP, left: ROUNDS - 1, members });
    }

    pub(super) fn rival_timers(&mut self, now: Timestamp) {
        let due: Vec<SubnetKey> =
            self.duplicates.0.iter().filter(|(_, r)| now >= r.at).map(|(k, _)| *k).collect();
        for subnet in due {
            let Some(mut round) = self.duplicates.0.remove(&subnet) else { continue };
            let Some(lsns) = self.send_rival_lists(now, &subnet, &mut round.members) else {
                continue;
            };
            if round.left > 1 {
                // Down to one LSN: only the demoted rivals are still told, a few times.
                let left = if lsns < 2 { round.left.min(DEMOTED_ROUNDS + 1) } else { round.left };
                let next = Round { at: now + GAP, left: left - 1, members: round.members };
                self.duplicates.0.insert(subnet, next);
            }
            if round.left == ROUNDS - CHECK_AFTER && lsns >= 2 {
                self.check_silent_rivals(now, &subnet, GAP * CHECK_AFTER);
            }
        }
    }

    /// Sends the subnet's LSN list to each of its LSNs, and to the `members` of earlier
    /// rounds that are no LSN here any more; remembers the LSNs in `members`. Returns how many
    /// LSNs the subnet has, or `None` if there was nobody to tell: one LSN, and no earlier
    /// rival.
    fn send_rival_lists(
        &mut self,
        now: Timestamp,
        subnet: &SubnetKey,
        members: &mut Vec<(NodeId, SocketAddr)>,
    ) -> Option<usize> {
        let lsns = self.reg.subnet_lsns(subnet);
        let mut to = self.reg.subnet_lsn_addrs(subnet);
        if lsns.len() < 2 && members.is_empty() {
            return None;
        }
        for &(id, at) in &to {
            if !members.iter().any(|(m, _)| *m == id) && members.len() < MAX_MEMBERS {
                members.push((id, at));
            }
        }
        // A demoted rival that has not gone (parted or lost) may still think it leads.
        let demoted = members
            .iter()
            .filter(|(id, _)| !lsns.iter().any(|c| c.id == *id) && self.reg.is_present(id));
        to.extend(demoted.copied());
        if lsns.len() < 2 && to.len() == lsns.len() {
            return None;
        }
        for (_, at) in to {
            let nodes = lsns.clone();
            self.send(now, at, Message::NodeList(NodeList { seq: 0, nodes }));
        }
        Some(lsns.len())
    }
}
