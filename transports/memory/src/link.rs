//! The behaviour of one directed link between two addresses.

use std::time::Duration;

/// Latency and loss of a directed link (`src` to `dst`).
///
/// The default is a perfect link: no latency, no loss.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct LinkConfig {
    /// How long each datagram takes to arrive.
    pub latency: Duration,
    /// The probability that a datagram is lost, from 0.0 (never) to 1.0 (always). Values above
    /// 1.0 behave as 1.0; values below 0.0 and NaN behave as 0.0.
    pub loss: f64,
}

impl LinkConfig {
    /// A link with the given latency and loss probability.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use fleetmesh_memory::LinkConfig;
    ///
    /// let lossy = LinkConfig::new(Duration::from_millis(20), 0.1);
    /// assert_eq!(lossy.latency, Duration::from_millis(20));
    /// ```
    pub fn new(latency: Duration, loss: f64) -> Self {
        Self { latency, loss }
    }

    /// Whether a uniform sample in `[0, 1)` means the datagram is lost.
    ///
    /// Written as `sample < loss` so that NaN and negative losses never drop and losses of 1.0
    /// or more always drop, without validating the public field.
    pub(crate) fn drops(&self, sample: f64) -> bool {
        sample < self.loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_losses_are_clamped_by_comparison() {
        let link = |loss| LinkConfig::new(Duration::ZERO, loss);
        assert!(!link(f64::NAN).drops(0.0));
        assert!(!link(-1.0).drops(0.0));
        assert!(!link(0.0).drops(0.0));
        assert!(link(1.0).drops(0.999_999));
        assert!(link(7.0).drops(0.5));
    }
}
