//! Reads this host's metrics with `sysinfo`: the OS-facing half of the sampler, used by the
//! thin loop in [`crate::Sampler::run`]. Nothing else in the crate touches the OS.

use sysinfo::{Disks, Networks, System};

use crate::sampler::Metrics;

/// A reader of CPU, memory, disk and network metrics.
#[derive(Debug)]
pub struct HostReader {
    system: System,
}

impl Default for HostReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HostReader {
    /// A reader; CPU usage is measured between consecutive [`HostReader::read`] calls.
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        Self { system }
    }

    /// Reads a snapshot (application series empty).
    pub fn read(&mut self) -> Metrics {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let disks = Disks::new_with_refreshed_list();
        let disk_used =
            disks.list().iter().map(|d| d.total_space().saturating_sub(d.available_space())).sum();
        let nets = Networks::new_with_refreshed_list();
        let (mut rx, mut tx) = (0u64, 0u64);
        for (name, data) in nets.list() {
            if name != "lo" {
                rx = rx.saturating_add(data.total_received());
                tx = tx.saturating_add(data.total_transmitted());
            }
        }
        Metrics {
            cpu_pct: f64::from(self.system.global_cpu_usage()),
            mem_used: self.system.used_memory(),
            disk_used,
            net_rx_total: rx,
            net_tx_total: tx,
            app: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_plausible_values() {
        let m = super::HostReader::new().read();
        assert!((0.0..=100.0).contains(&m.cpu_pct), "{}", m.cpu_pct);
        assert!(m.mem_used > 0);
    }
}
