//! Checking a standby's takeover report (issue 19): the LSN it names is absent at once
//! (`Registry::suspect_lsn`) and pinged; it is present again as soon as the master hears from
//! it, and dropped when five pings go unanswered, whoever reported it.
//!
//! Unanswered pings prove nothing when they went where the subnet's own evidence says
//! datagrams get lost: the reporter reached us over TCP while our session with the LSN is
//! still on UDP (the subnet lost UDP: the standby heard no pings for the same reason), or an
//! LSN of the subnet has since yielded to it (it reached the LSN over the LAN). The master
//! cannot move that session itself (the LSN dialed it: `endpoint/path.rs`); the LSN moves it
//! to TCP at its next liveness check. Such an LSN stays absent and is pinged every
//! [`RECHECK`] until it answers; if it never does, its grace (`MasterConfig::grace`) runs out
//! and it is dropped then (`Registry::expire`).
//!
//! A second LSN registering in a subnet is weaker evidence: most often the two settle as
//! rivals, but a node that found no live LSN (the LSN and its successors died before any
//! takeover reached the master) registers beside a dead one, which the master would keep,
//! with every child it had, until its LSN timeout (cascade sweep, seed 229: children absent
//! for good). So when two LSNs outlast a few rounds of rival lists (`rivals.rs`), those
//! silent since are checked *softly* ([`Master::check_silent_rivals`]): pinged the same way
//! but left present meanwhile; one that stays silent is dropped and a live rival adopts its
//! children.

use std::{collections::BTreeMap, time::Duration};

use super::{Master, SubnetKey};
use crate::{
    wire::{Adopt, Message, Part, PartReason, Ping},
    NodeId, Path, Timestamp,
};

/// How long the master waits for an LSN a standby reported dead to answer a ping, and how many
/// pings it sends before believing the report (five: at 10 % loss each way all fail 0.02 % of
/// the time, and a live LSN wrongly dropped is absent until its next keepalive).
const SUSPECT_PING_TIMEOUT: Duration = Duration::from_millis(500);
const SUSPECT_PINGS: u32 = 5;
/// How often an LSN whose check could not conclude is pinged again (the path may heal).
const RECHECK: Duration = Duration::from_secs(5);

/// One LSN being checked.
struct Suspect {
    seq: u32,
    /// When the last ping is given up.
    due: Timestamp,
    sent: u32,
    reporter: NodeId,
    /// An LSN of its subnet yielded to it since the report.
    vouched: bool,
    /// Checked because `reporter` registered beside it, not reported dead: present until
    /// the check ends, and its children go to `reporter` if it fails.
    soft: bool,
}

/// LSNs a standby reported dead, being checked before the master believes it.
#[derive(Default)]
pub(super) struct Suspects(BTreeMap<NodeId, Suspect>);

impl Suspects {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.0.values().map(|s| s.due).min()
    }

    /// Ends the check of `lsn` (it answered); returns whether it was reported dead (a soft
    /// check left it present).
    pub(super) fn remove(&mut self, lsn: &NodeId) -> bool {
        self.0.remove(lsn).is_some_and(|s| !s.soft)
    }
}

impl Master {
    /// Pings an LSN a standby reported dead; it is absent from now on unless it answers
    /// (`Registry::suspect_lsn`).
    pub(super) fn suspect(&mut self, now: Timestamp, lsn: NodeId, reporter: NodeId) {
        self.start_check(now, lsn, reporter, false);
    }

    /// `subnet` has had more than one LSN for a while: checks softly those not heard from
    /// within `quiet` (module docs); the junior one heard from inherits the children of any
    /// that turns out dead.
    pub(super) fn check_silent_rivals(
        &mut self,
        now: Timestamp,
        subnet: &SubnetKey,
        quiet: Duration,
    ) {
        let lsns = self.reg.subnet_lsns(subnet);
        let heard = |m: &Self, id: &NodeId| m.ep.last_heard(id).is_some_and(|t| now < t + quiet);
        let Some(heir) = lsns.iter().rev().find(|c| heard(self, &c.id)).map(|c| c.id) else {
            return;
        };
        let silent: Vec<NodeId> =
            lsns.iter().filter(|c| !heard(self, &c.id)).map(|c| c.id).collect();
        for lsn in silent {
            self.start_check(now, lsn, heir, true);
        }
    }

    fn start_check(&mut self, now: Timestamp, lsn: NodeId, reporter: NodeId, soft: bool) {
        if let Some(s) = self.suspects.0.get_mut(&lsn) {
            if s.soft && !soft {
                // A takeover report after the soft check began: absent from now on.
                (s.soft, s.reporter) = (false, reporter);
                self.reg.suspect_lsn(now, &lsn, &self.cfg);
            }
            return;
        }
        if !soft {
            self.reg.suspect_lsn(now, &lsn, &self.cfg);
        }
        let seq = self.next_seq();
        let due = now + SUSPECT_PING_TIMEOUT;
        let s = Suspect { seq, due, sent: 1, reporter, vouched: false, soft };
        self.suspects.0.insert(lsn, s);
        self.ping_suspect(now, &lsn, seq);
    }

    /// An LSN of the subnet yielding to a suspected LSN reached it: the check's silence is
    /// then no proof of death.
    pub(super) fn vouched(&mut self, peer: &NodeId, part: &Part) {
        let Some(better) = part.better_lsn.filter(|_| part.reason == PartReason::Yield) else {
            return;
        };
        if self.reg.replaced_children(peer, &better.id).is_none() {
            return;
        }
        if let Some(s) = self.suspects.0.get_mut(&better.id) {
            s.vouched = true;
        }
    }

    /// Suspected LSNs that stayed silent are lost, unless the check could not conclude;
    /// others get another ping.
    pub(super) fn check_suspects(&mut self, now: Timestamp) {
        let due: Vec<NodeId> =
            self.suspects.0.iter().filter(|(_, s)| now >= s.due).map(|(id, _)| *id).collect();
        for lsn in due {
            let Some(mut s) = self.suspects.0.remove(&lsn) else { continue };
            if !self.reg.is_lsn(&lsn) {
                // Dropped meanwhile: its grace ran out, or it parted.
                continue;
            }
            let pause = if s.sent < SUSPECT_PINGS {
                SUSPECT_PING_TIMEOUT
            } else if self.inconclusive(&lsn, &s) {
                RECHECK
            } else {
                // Not through the reporter's update: it may have died or left since (a second
                // failure in the subnet), and the LSN must not stay registered until its
                // timeout.
                let theirs = s.soft.then(|| self.reg.replaced_children(&s.reporter, &lsn));
                let events = self.reg.suspect_confirmed(now, &lsn, &self.cfg);
                self.presence(events);
                let heir = self.reg.lsn_addr(&s.reporter);
                if let (Some(Some(children)), Some(addr)) = (theirs, heir) {
                    if !children.is_empty() {
                        let adopt = Adopt { old: lsn, children };
                        self.send_adopt(now, s.reporter, addr, adopt);
                    }
                }
                continue;
            };
            s.sent += 1;
            s.due = now + pause;
            let seq = s.seq;
            self.suspects.0.insert(lsn, s);
            self.ping_suspect(now, &lsn, seq);
        }
    }

    /// Whether unanswered pings say nothing about `lsn` (module docs).
    fn inconclusive(&self, lsn: &NodeId, s: &Suspect) -> bool {
        let udp_lost = self.ep.peer_path(&s.reporter) == Some(Path::Tcp)
            && self.ep.peer_path(lsn) == Some(Path::Udp);
        s.vouched || udp_lost
    }

    fn ping_suspect(&mut self, now: Timestamp, lsn: &NodeId, seq: u32) {
        if let Some(addr) = self.reg.lsn_addr(lsn) {
            self.send(now, addr, Message::Ping(Ping { seq }));
        }
    }
}
