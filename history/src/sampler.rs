//! Turns a snapshot of host metrics into samples every 10 s.
//!
//! [`Sampler::sample`] takes the time and the metrics as input (no clock, no OS reads), so it
//! is tested deterministically; [`Sampler::run`] is the thin thread loop that reads the clock
//! and a caller-supplied metrics source.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::{Encoding, Point};
use crate::error::StoreError;
use crate::store::Store;

/// Seconds between samples.
pub const SAMPLE_INTERVAL_SECS: i64 = 10;

/// One reading of a host's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// CPU busy, percent of all cores.
    pub cpu_pct: f64,
    /// Memory used, bytes.
    pub mem_used: u64,
    /// Disk space used, bytes.
    pub disk_used: u64,
    /// Cumulative network bytes received (all interfaces but loopback).
    pub net_rx_total: u64,
    /// Cumulative network bytes sent.
    pub net_tx_total: u64,
    /// Application-defined series: name and value.
    pub app: Vec<(String, f64)>,
}

/// The built-in series and their declared precision: CPU to 0.1 %, memory and disk to the
/// megabyte (10^6 B), network as bytes per interval to the kilobyte.
pub const BUILTIN: [(&str, Encoding); 5] = [
    ("cpu", Encoding::Decimals(1)),
    ("mem", Encoding::Decimals(-6)),
    ("disk", Encoding::Decimals(-6)),
    ("net_rx", Encoding::Decimals(-3)),
    ("net_tx", Encoding::Decimals(-3)),
];

/// Writes metrics snapshots into a [`Store`].
#[derive(Debug, Default)]
pub struct Sampler {
    last_net: Option<(u64, u64)>,
}

impl Sampler {
    /// A sampler; declare the built-in series on `store` first with [`Sampler::declare`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the built-in series' encodings on `store`.
    pub fn declare(store: &mut Store) -> Result<(), StoreError> {
        BUILTIN.iter().try_for_each(|(n, e)| store.declare(n, *e))
    }

    /// Records the snapshot `m` taken at `now` (seconds). Network counters become bytes per
    /// interval (the first snapshot gives none; a counter reset gives 0).
    pub fn sample(&mut self, store: &mut Store, now: i64, m: &Metrics) -> Result<(), StoreError> {
        let p = |v: f64| Point { t: now, v };
        store.record("cpu", p(m.cpu_pct))?;
        store.record("mem", p(m.mem_used as f64))?;
        store.record("disk", p(m.disk_used as f64))?;
        if let Some((rx, tx)) = self.last_net {
            store.record("net_rx", p(m.net_rx_total.saturating_sub(rx) as f64))?;
            store.record("net_tx", p(m.net_tx_total.saturating_sub(tx) as f64))?;
        }
        self.last_net = Some((m.net_rx_total, m.net_tx_total));
        for (name, v) in &m.app {
            store.record(name, p(*v))?;
        }
        Ok(())
    }

    /// Samples `read()` every [`SAMPLE_INTERVAL_SECS`] until `read` returns `None` or the
    /// store fails; blocks the calling thread (run it on its own).
    pub fn run(
        mut self,
        store: &mut Store,
        mut read: impl FnMut() -> Option<Metrics>,
    ) -> Result<(), StoreError> {
        while let Some(m) = read() {
            let now =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            self.sample(store, now, &m)?;
            std::thread::sleep(Duration::from_secs(SAMPLE_INTERVAL_SECS as u64));
        }
        store.flush()
    }
}
