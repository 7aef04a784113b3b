use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::Timestamp;

/// Maps the runtime's monotonic clock to protocol [`Timestamp`]s: wall-clock time at an origin,
/// plus monotonic time elapsed since. Reading the wall clock once means a clock step on the host
/// cannot make protocol time jump backwards.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    origin_time: Timestamp,
}

impl Clock {
    /// A clock whose origin is the system's wall-clock time now.
    pub fn system() -> Self {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self::starting_at(Timestamp::from_micros(since_epoch.as_micros() as u64))
    }

    /// A clock that reads `start` now. Simulations use a fixed start so runs repeat exactly.
    pub fn starting_at(start: Timestamp) -> Self {
        Clock { origin: Instant::now(), origin_time: start }
    }

    /// Protocol time now.
    pub fn now(&self) -> Timestamp {
        self.origin_time + self.origin.elapsed()
    }

    /// The runtime instant of a protocol time (times before the origin map to the origin).
    pub fn instant(&self, t: Timestamp) -> Instant {
        self.origin + t.saturating_since(self.origin_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_runtime_clock() {
        let start = Timestamp::from_secs(1_000);
        let clock = Clock::starting_at(start);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(clock.now(), start + Duration::from_secs(5));
        assert_eq!(
            clock.instant(start + Duration::from_secs(7)),
            clock.origin + Duration::from_secs(7)
        );
        assert_eq!(clock.instant(Timestamp::ZERO), clock.origin);
    }
}
