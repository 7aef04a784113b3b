//! Rate-limited warnings about what the machine refused from the wire.
//!
//! The core counts junk and refusals by reason and raises no event for them
//! ([`Machine::refused`](crate::Machine::refused)); the driver turns the counters into at most
//! one WARN line per [`REPORT_INTERVAL`], so an attack shows in the default log without a
//! flood of junk becoming a flood of log lines.

use std::time::Duration;

use tokio::time::Instant;

use crate::Refused;

/// The shortest time between two warnings about refused traffic.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// What was refused in one reporting period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Counted in the period, by reason.
    pub(crate) refused: Refused,
    /// How long the period was (at least [`REPORT_INTERVAL`]).
    pub(crate) over: Duration,
}

/// Decides when the counters are summed up in a warning.
#[derive(Debug)]
pub(crate) struct Reporter {
    /// The counters as last reported.
    reported: Refused,
    /// When the period being counted began.
    since: Instant,
}

impl Reporter {
    pub(crate) fn new(now: Instant) -> Self {
        Reporter { reported: Refused::default(), since: now }
    }

    /// The summary due at `now` for the machine's counters `current`: `Some` when something
    /// was refused since the last one and a whole interval has passed.
    pub(crate) fn poll(&mut self, now: Instant, current: Refused) -> Option<Summary> {
        let refused = current.since(&self.reported);
        if refused.total() == 0 || now < self.since + REPORT_INTERVAL {
            return None;
        }
        let over = now - self.since;
        self.reported = current;
        self.since = now;
        Some(Summary { refused, over })
    }

    /// When [`poll`](Self::poll) will have a summary for `current`, so the driver wakes for it
    /// even when no other input comes (the last seconds of a flood are reported too). `None`
    /// when nothing is waiting to be reported. After `poll` at `now` it is later than `now`
    /// (or `None`), so the driver cannot spin on it.
    pub(crate) fn deadline(&self, current: &Refused) -> Option<Instant> {
        (current.since(&self.reported).total() > 0).then_some(self.since + REPORT_INTERVAL)
    }
}

/// Logs `summary` at WARN.
pub(crate) fn warn(summary: &Summary) {
    let Summary { refused, over } = summary;
    tracing::warn!(
        refused = refused.total(),
        seconds = over.as_secs(),
        "refused {} datagrams or messages in the last {} s: {refused}",
        refused.total(),
        over.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use fleetmesh_proto::{endpoint::Rejections, overlay::Refusals};

    use super::*;

    fn counters(decrypt: u64, rate_limited: u64) -> Refused {
        let mut link = Rejections::default();
        link.decrypt = decrypt;
        link.rate_limited = rate_limited;
        Refused::new(link, Refusals::default())
    }

    #[test]
    fn a_flood_is_one_warning_per_interval_with_its_counts_by_reason() {
        let t0 = Instant::now();
        let mut r = Reporter::new(t0);
        // A flood that starts after a quiet first interval is reported at once.
        let at = |s: u64| t0 + Duration::from_secs(s);
        let first = r.poll(at(12), counters(3, 0)).expect("reported");
        assert_eq!(first.refused.total(), 3);
        assert_eq!(first.over, Duration::from_secs(12));
        // Then: one summary per interval, whatever the number of polls in between.
        let mut warnings = Vec::new();
        for ms in 12_001..=32_000u64 {
            let now = t0 + Duration::from_millis(ms);
            let (decrypt, limited) = (3 + ms * 10, ms);
            if let Some(s) = r.poll(now, counters(decrypt, limited)) {
                warnings.push((ms, s));
            }
        }
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0].0, 22_000);
        assert_eq!(warnings[1].0, 32_000);
        let (_, s) = warnings[1];
        assert_eq!(s.over, REPORT_INTERVAL);
        assert_eq!(s.refused.to_string(), "100000 decrypt, 10000 rate_limited");
    }

    #[test]
    fn the_last_of_a_flood_is_reported_when_its_interval_ends_and_quiet_is_not() {
        let t0 = Instant::now();
        let mut r = Reporter::new(t0);
        assert_eq!(r.deadline(&counters(0, 0)), None, "nothing to report, no wake-up");
        assert!(r.poll(t0 + Duration::from_secs(1), counters(5, 0)).is_none(), "too early");
        let due = r.deadline(&counters(5, 0)).expect("a wake-up for the pending count");
        assert_eq!(due, t0 + REPORT_INTERVAL);
        let s = r.poll(due, counters(5, 0)).expect("reported at its deadline");
        assert_eq!(s.refused.to_string(), "5 decrypt");
        assert_eq!(r.deadline(&counters(5, 0)), None, "all reported");
        assert!(r.poll(due + REPORT_INTERVAL * 3, counters(5, 0)).is_none(), "quiet is silent");
        // The first rejection after a quiet spell is reported at once: the last warning was
        // more than an interval ago.
        let later = due + REPORT_INTERVAL * 3;
        let s = r.poll(later, counters(6, 0)).expect("reported at once");
        assert_eq!((s.refused.to_string().as_str(), s.over), ("1 decrypt", REPORT_INTERVAL * 3));
    }
}
