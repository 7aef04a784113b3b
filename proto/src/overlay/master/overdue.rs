//! An LSN late with its keepalive is asked whether it is alive (issue 19): a vanished LSN, or a
//! subnet that went dark, is absent within a minute instead of at
//! [`MasterConfig::lsn_timeout`](super::MasterConfig::lsn_timeout) (150 s).
//!
//! Every LSN sends the master something at least every keepalive period it announced. Once
//! [`SLACK`] past that with nothing heard, the master pings it [`PINGS`] times [`PING_GAP`]
//! apart; anything from the LSN ends the check, and if nothing comes it is lost, as at its
//! timeout (its children wait out their grace for another LSN). With the default longest
//! period (45 s) an LSN is absent at most 45 + 2 + 8 = 55 s after the last thing it sent. The
//! pings cost nothing while keepalives arrive, and a lost keepalive costs a ping and its pong:
//! at 20 % loss each way all eight round trips fail about once in 3,600 checks, and an LSN
//! wrongly dropped registers again at its next keepalive.
//!
//! Silence proves something about the LSN only if the master hears others: the verdict needs
//! a message from another LSN since the check began (a second LSN is pinged with the late one
//! as a control when none came). A master cut off from everyone thus keeps its LSNs (and says
//! it is isolated, `isolation.rs`) instead of losing the fleet one LSN at a time; with a
//! single LSN there is no control, and silence decides.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use super::Master;
use crate::{
    wire::{Message, PartReason, Ping},
    NodeId, Timestamp,
};

/// How far past its keepalive period an LSN may be before it is pinged: WAN jitter, and a
/// keepalive queued behind a burst.
pub(super) const SLACK: Duration = Duration::from_secs(2);
/// Unanswered pings before a late LSN is lost.
pub(super) const PINGS: u32 = 8;
/// Time between them.
pub(super) const PING_GAP: Duration = Duration::from_secs(1);

/// Time between pings once they went unanswered and no other LSN was heard from meanwhile.
pub(super) const DOUBT_GAP: Duration = Duration::from_secs(10);

/// One registered LSN's schedule.
struct Watch {
    /// Its announced keepalive period.
    period: Duration,
    /// When it is late (last heard + period + slack), the key in `due` while not checking.
    late_at: Timestamp,
    /// Pings sent in the current check, if one runs.
    pings: u32,
    /// When the current check began.
    since: Timestamp,
}

/// The LSNs watched, and when each needs attention. Holds only registered LSNs (an entry is
/// dropped at its first deadline after the LSN is gone), so it is bounded as the registry is.
#[derive(Default)]
pub(super) struct Overdue {
    watch: HashMap<NodeId, Watch>,
    due: BTreeSet<(Timestamp, NodeId)>,
}

impl Overdue {
    pub(super) fn next_deadline(&self) -> Option<Timestamp> {
        self.due.first().map(|(t, _)| *t)
    }

    /// `lsn` was heard from: its check, if any, ends; it is late a period from now.
    fn heard(&mut self, now: Timestamp, lsn: NodeId, default_period: Duration) {
        let w = self.watch.entry(lsn).or_insert(Watch {
            period: default_period,
            late_at: now,
            pings: 0,
            since: now,
        });
        self.due.remove(&(w.late_at, lsn));
        w.late_at = now + w.period + SLACK;
        w.pings = 0;
        self.due.insert((w.late_at, lsn));
    }

    /// `lsn` announced its keepalive period.
    fn period(&mut self, now: Timestamp, lsn: NodeId, period: Duration) {
        if let Some(w) = self.watch.get_mut(&lsn) {
            w.period = period;
        }
        self.heard(now, lsn, period);
    }
}

impl Master {
    /// Anything from LSN `peer` restarts its schedule.
    pub(super) fn overdue_heard(&mut self, now: Timestamp, peer: NodeId) {
        self.overdue.heard(now, peer, self.cfg.lsn_keepalive_max);
    }

    /// LSN `peer` keeps alive every `period`.
    pub(super) fn overdue_period(&mut self, now: Timestamp, peer: NodeId, period: Duration) {
        self.overdue.period(now, peer, period);
    }

    /// Pings the LSNs that are late, and declares lost those that never answered while
    /// another LSN did.
    pub(super) fn overdue_timers(&mut self, now: Timestamp) {
        while let Some(&(at, lsn)) = self.overdue.due.first() {
            if now < at {
                break;
            }
            self.overdue.due.pop_first();
            let Some(addr) = self.reg.lsn_addr(&lsn) else {
                self.overdue.watch.remove(&lsn);
                continue;
            };
            let others_heard = self.last_heard_from_any_lsn();
            let Some(w) = self.overdue.watch.get_mut(&lsn) else { continue };
            if w.pings == 0 {
                w.since = now;
            }
            let control = others_heard.is_some_and(|t| t > w.since) || self.reg.lsn_count() < 2;
            if w.pings >= PINGS && control {
                self.overdue.watch.remove(&lsn);
                tracing::info!(?lsn, "LSN late with its keepalive and not answering: lost");
                let events = self.reg.lsn_parted(now, &lsn, PartReason::Lost, &self.cfg);
                self.presence(events);
                continue;
            }
            // No other LSN answered either: the master may be the one cut off. It keeps
            // asking, slowly, and a control LSN with it.
            let doubt = w.pings >= PINGS;
            w.pings = (w.pings + 1).min(PINGS);
            w.late_at = now + if doubt { DOUBT_GAP } else { PING_GAP };
            self.overdue.due.insert((w.late_at, lsn));
            let seq = self.next_seq();
            self.send(now, addr, Message::Ping(Ping { seq }));
            if !control {
                let other = self.reg.latest_lsns(2).into_iter().find(|(id, _)| *id != lsn);
                if let Some((_, addr)) = other {
                    let seq = self.next_seq();
                    self.send(now, addr, Message::Ping(Ping { seq }));
                }
            }
        }
    }
}
