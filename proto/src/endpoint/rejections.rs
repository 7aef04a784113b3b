//! Rejected datagrams: counted by reason, and reported to the application a few at a time,
//! so a flood of junk cannot turn into a flood of events (or of log lines).

use std::{fmt, time::Duration};

use crate::{secure::PacketError, Timestamp};

/// How often the count of unreported rejections is summed up in one event.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Rejections reported one by one ([`Event::PacketRejected`](super::Event::PacketRejected))
/// in each [`REPORT_INTERVAL`]; the rest are summed up in one
/// [`Event::RejectionsSuppressed`](super::Event::RejectionsSuppressed).
pub const REPORTS_PER_INTERVAL: u32 = 8;

/// Rejected datagrams by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Shorter than a header, or of an unknown type.
    pub malformed: u64,
    /// Naming a session we do not have.
    pub unknown_session: u64,
    /// Failing authentication.
    pub decrypt: u64,
    /// Replayed or too old.
    pub replay: u64,
    /// Authenticated, with an undecodable frame inside.
    pub frame: u64,
    /// A handshake packet that fits no handshake in progress (or too many half-open).
    pub unexpected_handshake: u64,
    /// A message 1 too short to answer without amplification.
    pub short_handshake: u64,
    /// A message 1 over its source's rate limit.
    pub rate_limited: u64,
    /// Anything else.
    pub other: u64,
}

impl Rejections {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(_, n)| n).sum()
    }

    pub(crate) fn count(&mut self, error: &PacketError) {
        let slot = match error {
            PacketError::Malformed => &mut self.malformed,
            PacketError::UnknownSession(_) => &mut self.unknown_session,
            PacketError::Decrypt => &mut self.decrypt,
            PacketError::Replay(_) => &mut self.replay,
            PacketError::Frame(_) => &mut self.frame,
            PacketError::UnexpectedHandshake => &mut self.unexpected_handshake,
            PacketError::ShortHandshake(_) => &mut self.short_handshake,
            PacketError::RateLimited => &mut self.rate_limited,
            _ => &mut self.other,
        };
        *slot += 1;
    }

    fn reasons(&self) -> [(&'static str, u64); 9] {
        [
            ("malformed", self.malformed),
            ("unknown_session", self.unknown_session),
            ("decrypt", self.decrypt),
            ("replay", self.replay),
            ("frame", self.frame),
            ("unexpected_handshake", self.unexpected_handshake),
            ("short_handshake", self.short_handshake),
            ("rate_limited", self.rate_limited),
            ("other", self.other),
        ]
    }
}

/// `12000 decrypt, 345 rate_limited`: the reasons that occurred.
impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in self.reasons() {
            if n > 0 {
                write!(f, "{}{n} {name}", if first { "" } else { ", " })?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Decides which rejections become events.
#[derive(Debug, Default)]
pub(crate) struct Reporter {
    window_end: Option<Timestamp>,
    reported: u32,
    suppressed: Rejections,
}

impl Reporter {
    /// Files one rejection at `now`. Returns the previous window's summary if it is due, and
    /// whether this rejection is reported on its own.
    pub(crate) fn on_reject(
        &mut self,
        now: Timestamp,
        error: &PacketError,
    ) -> (Option<Rejections>, bool) {
        let summary = self.flush(now);
        if self.window_end.is_none() {
            self.window_end = Some(now + REPORT_INTERVAL);
            self.reported = 0;
        }
        if self.reported < REPORTS_PER_INTERVAL {
            self.reported += 1;
            (summary, true)
        } else {
            self.suppressed.count(error);
            (summary, false)
        }
    }

    /// Ends the window if it is over, returning its summary when anything was suppressed.
    pub(crate) fn flush(&mut self, now: Timestamp) -> Option<Rejections> {
        if self.window_end.is_some_and(|end| now >= end) {
            self.window_end = None;
            let summary = std::mem::take(&mut self.suppressed);
            return (summary.total() > 0).then_some(summary);
        }
        None
    }

    /// When [`flush`](Self::flush) has a summary to give.
    pub(crate) fn deadline(&self) -> Option<Timestamp> {
        self.window_end.filter(|_| self.suppressed.total() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_becomes_a_few_reports_and_one_summary_per_interval() {
        let mut r = Reporter::default();
        let t0 = Timestamp::from_secs(1_000);
        let reported = (0..10_000)
            .filter(|i| {
                let error =
                    if i % 2 == 0 { PacketError::Decrypt } else { PacketError::RateLimited };
                let (summary, own) = r.on_reject(t0, &error);
                assert!(summary.is_none());
                own
            })
            .count();
        assert_eq!(reported, REPORTS_PER_INTERVAL as usize);
        assert_eq!(r.deadline(), Some(t0 + REPORT_INTERVAL));
        assert_eq!(r.flush(t0 + Duration::from_secs(9)), None);
        let summary = r.flush(t0 + REPORT_INTERVAL).expect("a summary");
        assert_eq!(summary.total(), 10_000 - u64::from(REPORTS_PER_INTERVAL));
        assert_eq!(summary.to_string(), "4996 decrypt, 4996 rate_limited");
        assert_eq!(r.deadline(), None);
        // The next window reports its first rejections again.
        assert_eq!(r.on_reject(t0 + REPORT_INTERVAL, &PacketError::Malformed), (None, true));
    }
}
