//! Telling duplicate LSNs about each other until they settle (issue 19). When a second LSN
//! registers in a subnet, the master sends every LSN of it the subnet's list, senior first
//! (`node/rival.rs` settles it from there). One lost list used to leave the pair until the
//! next liveness check of either (a minute): the lists now go again every [`GAP`], up to
//! [`ROUNDS`] times, while the subnet still has more than one LSN.
//!
//! Live rivals settle within a round or two. A pair that outlasts [`CHECK_AFTER`] rounds may
//! be a live LSN beside a dead one that nobody reported (`suspects.rs`): the LSNs silent
//! since the pair began are then checked.

use std::{collections::BTreeMap, time::Duration};

use super::{Master, SubnetKey};
use crate::{
    wire::{Message, NodeList},
    Timestamp,
};

/// Time between two rounds of lists to a subnet's LSNs.
const GAP: Duration = Duration::from_secs(2);
/// Rounds, the first included.
const ROUNDS: u32 = 15;
/// Rounds after which the LSNs that stayed silent are checked (6 s after the pair began).
const CHECK_AFTER: u32 = 3;
/// Most subnets with duplicate LSNs followed at once (beyond it the oldest is dropped: its
/// LSNs still hear the list with their next liveness check).
const MAX_SUBNETS: usize = 1024;

/// Subnets with more than one LSN: the next round, and the rounds left.
#[derive(Default)]
pub(super) struct Duplicates(BTreeMap<SubnetKey, (Timestamp, u32)>);

impl Duplicates {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.0.values().map(|(t, _)| *t).min()
    }
}

impl Master {
    /// Tells each LSN of `subnet` about the others, now and in the rounds to come, if it has
    /// more than one.
    pub(super) fn tell_rivals(&mut self, now: Timestamp, subnet: SubnetKey) {
        if !self.send_rival_lists(now, &subnet) {
            return;
        }
        if self.duplicates.0.len() >= MAX_SUBNETS && !self.duplicates.0.contains_key(&subnet) {
            let oldest = self.duplicates.0.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.duplicates.0.remove(&k);
            }
        }
        self.duplicates.0.insert(subnet, (now + GAP, ROUNDS - 1));
    }

    pub(super) fn rival_timers(&mut self, now: Timestamp) {
        let due: Vec<(SubnetKey, u32)> = self
            .duplicates
            .0
            .iter()
            .filter(|(_, (t, _))| now >= *t)
            .map(|(k, (_, left))| (*k, *left))
            .collect();
        for (subnet, left) in due {
            self.duplicates.0.remove(&subnet);
            if self.send_rival_lists(now, &subnet) && left > 1 {
                self.duplicates.0.insert(subnet, (now + GAP, left - 1));
            }
            if left == ROUNDS - CHECK_AFTER {
                self.check_silent_rivals(now, &subnet, GAP * CHECK_AFTER);
            }
        }
    }

    /// Sends the subnet's LSN list to each of its LSNs; false if it has only one.
    fn send_rival_lists(&mut self, now: Timestamp, subnet: &SubnetKey) -> bool {
        let lsns = self.reg.subnet_lsns(subnet);
        if lsns.len() < 2 {
            return false;
        }
        for (_, at) in self.reg.subnet_lsn_addrs(subnet) {
            let nodes = lsns.clone();
            self.send(now, at, Message::NodeList(NodeList { seq: 0, nodes }));
        }
        true
    }
}
