//! Rejected datagrams and refused handshakes, counted by reason.
//!
//! Junk costs an attacker nothing to send, so it must cost the receiver no more than a counter:
//! no event per datagram (a flood would become a flood of events in the application's
//! channel) and no log line above DEBUG. The driver reads these counters and logs a WARN
//! summary at most once per interval (`fleetmesh_driver::driver::REPORT_INTERVAL`).

use std::fmt;

use crate::secure::PacketError;

/// Rejected datagrams and refused handshakes by reason, counted since the endpoint started.
/// Read from [`Stats::rejected`](super::Stats::rejected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejections {
    /// Shorter than its header, or of an unknown packet type ([`PacketError::Malformed`]).
    pub malformed: u64,
    /// Naming a session we do not have ([`PacketError::UnknownSession`]): junk, or a peer
    /// still using a session we dropped (e.g. after a restart).
    pub unknown_session: u64,
    /// Failing authentication: forged, tampered or truncated ([`PacketError::Decrypt`]).
    pub decrypt: u64,
    /// Replayed or too old ([`PacketError::Replay`]).
    pub replay: u64,
    /// Authenticated, with an undecodable frame inside ([`PacketError::Frame`]).
    pub frame: u64,
    /// A handshake packet that fits no handshake in progress, or one over `max_accepting`
    /// ([`PacketError::UnexpectedHandshake`]).
    pub unexpected_handshake: u64,
    /// A message 1 too short to answer without amplification ([`PacketError::ShortHandshake`]).
    pub short_handshake: u64,
    /// A message 1 over its source's or prefix's rate limit ([`PacketError::RateLimited`]).
    pub rate_limited: u64,
    /// A completed handshake refused: bad certificate, revoked, wrong network
    /// ([`Event::HandshakeRejected`](super::Event::HandshakeRejected), which is still
    /// reported: the peer proved its address and is held to the handshake rate limits).
    pub handshake_refused: u64,
    /// Any other reason.
    pub other: u64,
}

impl Rejections {
    /// Counts one rejected datagram.
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
            // TooLarge is a send-side error; counted here only if a new reason appears.
            _ => &mut self.other,
        };
        *slot += 1;
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(_, n)| n).sum()
    }

    /// Each reason's name (as in [`Display`](fmt::Display)) and count.
    pub fn reasons(&self) -> [(&'static str, u64); 10] {
        [
            ("malformed", self.malformed),
            ("unknown_session", self.unknown_session),
            ("decrypt", self.decrypt),
            ("replay", self.replay),
            ("frame", self.frame),
            ("unexpected_handshake", self.unexpected_handshake),
            ("short_handshake", self.short_handshake),
            ("rate_limited", self.rate_limited),
            ("handshake_refused", self.handshake_refused),
            ("other", self.other),
        ]
    }

    /// What was counted after `earlier` (a snapshot of the same counters), reason by reason.
    pub fn since(&self, earlier: &Rejections) -> Rejections {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        Rejections {
            malformed: d(self.malformed, earlier.malformed),
            unknown_session: d(self.unknown_session, earlier.unknown_session),
            decrypt: d(self.decrypt, earlier.decrypt),
            replay: d(self.replay, earlier.replay),
            frame: d(self.frame, earlier.frame),
            unexpected_handshake: d(self.unexpected_handshake, earlier.unexpected_handshake),
            short_handshake: d(self.short_handshake, earlier.short_handshake),
            rate_limited: d(self.rate_limited, earlier.rate_limited),
            handshake_refused: d(self.handshake_refused, earlier.handshake_refused),
            other: d(self.other, earlier.other),
        }
    }
}

/// `12000 decrypt, 345 rate_limited`: the reasons that occurred, or `none`.
impl fmt::Display for Rejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in self.reasons().into_iter().filter(|(_, n)| *n > 0) {
            write!(f, "{}{n} {name}", if first { "" } else { ", " })?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secure::ReplayError;

    #[test]
    fn each_error_is_counted_under_its_reason() {
        let mut r = Rejections::default();
        for _ in 0..3 {
            r.count(&PacketError::Decrypt);
        }
        r.count(&PacketError::RateLimited);
        r.count(&PacketError::UnknownSession(7));
        r.count(&PacketError::Replay(ReplayError::Duplicate(1)));
        r.count(&PacketError::ShortHandshake(37));
        assert_eq!(r.decrypt, 3);
        assert_eq!(r.rate_limited, 1);
        assert_eq!(r.unknown_session, 1);
        assert_eq!(r.replay, 1);
        assert_eq!(r.short_handshake, 1);
        assert_eq!(r.total(), 7);
        assert_eq!(
            r.to_string(),
            "1 unknown_session, 3 decrypt, 1 replay, 1 short_handshake, 1 rate_limited"
        );
    }

    #[test]
    fn since_gives_what_was_counted_after_a_snapshot() {
        let mut r = Rejections::default();
        r.count(&PacketError::Decrypt);
        let before = r;
        for _ in 0..5 {
            r.count(&PacketError::Malformed);
        }
        r.count(&PacketError::Decrypt);
        let new = r.since(&before);
        assert_eq!(new.to_string(), "5 malformed, 1 decrypt");
        assert_eq!(new.total(), 6);
        assert_eq!(Rejections::default().to_string(), "none");
    }
}
