//! Protocol time: the only notion of "now" the sans-IO core knows.
//!
//! The core never reads a clock. Drivers and simulators pass a [`Timestamp`] into every
//! `handle_*` call; the async driver derives it from `tokio::time::Instant` (so turmoil's
//! simulated clock drives it) plus a wall-clock origin taken once at start.

use std::{fmt, ops::Add, ops::Sub, time::Duration};

use serde::{Deserialize, Serialize};

/// Microseconds since the UNIX epoch.
///
/// One type serves both purposes the protocol has for time: deadlines (differences between
/// timestamps) and certificate validity (absolute wall-clock seconds).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The UNIX epoch.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp from microseconds since the UNIX epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Timestamp(micros)
    }

    /// A timestamp from whole seconds since the UNIX epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the UNIX epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole seconds since the UNIX epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(micros))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!((t + Duration::from_millis(1500)).as_micros(), 11_500_000);
        assert_eq!(t - Duration::from_secs(20), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_micros(u64::MAX - 1) + Duration::from_secs(1),
            Timestamp::from_micros(u64::MAX)
        );
        assert_eq!(t.saturating_since(t + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!((t + Duration::from_secs(2)).saturating_since(t), Duration::from_secs(2));
    }
}
