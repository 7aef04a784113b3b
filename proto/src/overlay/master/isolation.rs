//! Whether the master itself is cut off (issue 19): a partition of the master must be
//! visible as such, not as a fleet that looks present until its LSNs time out (150 s) and
//! then as every subnet lost at once.
//!
//! Every LSN sends the master something at least every keepalive period (at most
//! [`MasterConfig::lsn_keepalive_max`](super::MasterConfig::lsn_keepalive_max)). With `n`
//! LSNs whose keepalives fall at independent moments, a given stretch of `w` seconds has
//! nothing from any of them with probability about `(1 − w/P)^n`, and such stretches begin
//! about `n/P` times a second (at each message). The master waits out the stretch that
//! chance produces about once an hour ([`window`], never below [`MIN_WINDOW`]) before it
//! pings a few LSNs ([`PROBES`], [`PROBE_ROUNDS`] rounds [`PROBE_GAP`] apart): every such
//! ping and its pong crosses the WAN, and a window sized for 1 % per stretch (as first
//! written) fired about 30 times an hour with 20 LSNs, some 20 bytes per node-hour on the
//! standard day. Keepalives that happen to fall together still make quiet stretches, so only
//! the unanswered pings call it isolation: at 20 % loss each way all nine round trips fail
//! about once in 10,000. With one LSN, silence says nothing about the master, so it needs two
//! or more.
//!
//! Isolation is reported ([`MasterEvent::Isolated`]) and ends with the first message from an
//! LSN ([`MasterEvent::Reconnected`]). It changes no presence: LSNs still time out as before.

use std::time::Duration;

use super::{Master, MasterEvent};
use crate::{
    wire::{Message, Ping},
    NodeId, Timestamp,
};

/// The shortest quiet stretch that starts the pings, however many LSNs there are.
pub(super) const MIN_WINDOW: Duration = Duration::from_secs(10);
/// LSNs pinged per round: the most recently heard from.
pub(super) const PROBES: usize = 3;
/// Rounds of pings before the master calls itself isolated.
pub(super) const PROBE_ROUNDS: u32 = 3;
/// Time between rounds.
pub(super) const PROBE_GAP: Duration = Duration::from_secs(2);

/// The master's view of its own reach.
#[derive(Default)]
pub(super) struct Isolation {
    /// When an LSN was last heard from.
    last_heard: Option<Timestamp>,
    /// Ping rounds sent in the current quiet stretch, and when the next is due.
    probing: Option<(u32, Timestamp)>,
    /// Since when no LSN was heard from, once the pings went unanswered.
    since: Option<Timestamp>,
}

/// How often chance may start the pings in a healthy fleet: once per this much time.
const FALSE_ALARM_EVERY: Duration = Duration::from_secs(3_600);

/// The silence that `lsns` LSNs, each sending at least every `period` at independent moments,
/// keep by chance about once per [`FALSE_ALARM_EVERY`]: quiet stretches start `n/P` times a
/// second and last `w` with probability `(1 − w/P)^n`, so `w = P × (1 − (P / (n × T))^(1/n))`,
/// at least [`MIN_WINDOW`]. `None` below two LSNs.
pub(super) fn window(lsns: usize, period: Duration) -> Option<Duration> {
    if lsns < 2 {
        return None;
    }
    let n = lsns as f64;
    let rate = period.as_secs_f64() / (n * FALSE_ALARM_EVERY.as_secs_f64());
    let quiet = 1.0 - rate.min(1.0).powf(1.0 / n);
    Some(period.mul_f64(quiet).max(MIN_WINDOW))
}

impl Master {
    /// Since when the master has heard from none of its LSNs, once pings to them went
    /// unanswered (see the module docs): the master is probably cut off from the fleet, and
    /// its presence view is stale.
    pub fn isolated_since(&self) -> Option<Timestamp> {
        self.isolation.since
    }

    /// When any LSN was last heard from.
    pub(super) fn last_heard_from_any_lsn(&self) -> Option<Timestamp> {
        self.isolation.last_heard
    }

    /// A message from an LSN arrived.
    pub(super) fn heard_from_lsn(&mut self, now: Timestamp) {
        let i = &mut self.isolation;
        i.last_heard = Some(now);
        i.probing = None;
        if let Some(since) = i.since.take() {
            let isolated_for = now.saturating_since(since);
            tracing::warn!(?isolated_for, "the master hears from its LSNs again");
            self.events.push_back(MasterEvent::Reconnected { isolated_for });
        }
    }

    pub(super) fn isolation_deadline(&self) -> Option<Timestamp> {
        let i = &self.isolation;
        if i.since.is_some() {
            return None;
        }
        if let Some((_, due)) = i.probing {
            return Some(due);
        }
        Some(i.last_heard? + window(self.reg.lsn_count(), self.cfg.lsn_keepalive_max)?)
    }

    pub(super) fn isolation_timers(&mut self, now: Timestamp) {
        if self.isolation_deadline().is_none_or(|due| now < due) {
            return;
        }
        let rounds = self.isolation.probing.map_or(0, |(r, _)| r);
        if rounds >= PROBE_ROUNDS {
            let since = self.isolation.last_heard.unwrap_or(now);
            self.isolation.probing = None;
            self.isolation.since = Some(since);
            let lsns = self.reg.lsn_count();
            tracing::warn!(lsns, "no LSN answers: the master is probably cut off from the fleet");
            self.events.push_back(MasterEvent::Isolated { since, lsns });
            return;
        }
        self.isolation.probing = Some((rounds + 1, now + PROBE_GAP));
        let to: Vec<(NodeId, std::net::SocketAddr)> = self.reg.latest_lsns(PROBES);
        for (_, addr) in to {
            let seq = self.next_seq();
            self.send(now, addr, Message::Ping(Ping { seq }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_shrinks_with_more_lsns_and_never_below_the_floor() {
        let p = Duration::from_secs(60);
        assert_eq!(window(3, p).map(|w| w.as_secs()), Some(49));
        assert_eq!(window(0, p), None);
        assert_eq!(window(1, p), None);
        let two = window(2, p).unwrap();
        let ten = window(10, p).unwrap();
        assert!(two > ten, "{two:?} {ten:?}");
        assert!(two < p);
        assert_eq!(window(1000, p), Some(MIN_WINDOW));
    }

    #[test]
    fn chance_starts_the_pings_about_once_an_hour_whatever_the_fleet() {
        let p = Duration::from_secs(45);
        for n in 2..300 {
            let w = window(n, p).unwrap();
            // Quiet stretches of at least `w` per hour: n/P starts a second, each lasting
            // `w` with probability (1 − w/P)^n.
            let starts = n as f64 / p.as_secs_f64() * 3_600.0;
            let per_hour = starts * (1.0 - w.as_secs_f64() / p.as_secs_f64()).powi(n as i32);
            assert!(per_hour <= 1.001, "{n} LSNs: window {w:?} fires {per_hour:.2} times an hour");
            if w > MIN_WINDOW {
                assert!(per_hour > 0.99, "{n} LSNs: window {w:?} longer than needed");
            }
        }
    }
}
