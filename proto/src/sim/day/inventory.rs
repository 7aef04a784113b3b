//! Inventories in the simulated day (issue 17): every node reports a synthetic inventory at
//! each start (whole the first time, then only what changed since the master's last
//! acknowledgement), every node's inventory changes a little once in the day, and the report
//! compares what reached the master with what whole uploads at every start would have cost.
//!
//! The week is not simulated: it is this day's first uploads plus seven daily changes (this
//! day's, measured, and six more like it), against seven days of whole uploads at every start
//! as counted today. The mornings of the six other days cost nothing more: a restarted node
//! whose document did not change since the master acknowledged it sends nothing.

use serde::Serialize;

use crate::sim::{sample_ratio, Simulation, HEADER_BYTES};

/// Hosts in the measured sample batch (thesis Table 6 packed 12).
pub const SAMPLE_HOSTS: usize = 12;

/// The inventory section of a day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InventoryReport {
    /// Node starts that reported an inventory.
    pub starts: u64,
    /// Nodes whose inventory the master holds at the end.
    pub nodes_held: usize,
    /// The mean whole document (CBOR bytes).
    pub document_bytes_mean: u64,
    /// Bytes of inventory batches that reached the master (compressed data plus each
    /// datagram's header and sealing).
    pub bytes_at_master: u64,
    /// Batches that reached it.
    pub batches: u64,
    /// What whole uploads at every start would have cost (no compression).
    pub full_upload_bytes: u64,
    /// `full_upload_bytes / bytes_at_master`.
    pub reduction: f64,
    /// Of `bytes_at_master`, those after the day's change.
    pub change_bytes_at_master: u64,
    /// Over a week: this day's bytes plus six more daily changes.
    pub week_bytes_at_master: u64,
    /// Seven days of whole uploads at every start.
    pub week_full_upload_bytes: u64,
    /// `week_full_upload_bytes / week_bytes_at_master`.
    pub week_reduction: f64,
    /// zstd on a batch of [`SAMPLE_HOSTS`] hosts' whole signed documents: plain / compressed.
    pub sample_zstd_ratio: f64,
    /// The master's busiest second (all traffic).
    pub master_peak_msgs_per_sec: u32,
    /// The same day without inventories (filled by a caller that ran it).
    pub master_peak_msgs_per_sec_without: Option<u32>,
}

/// Bytes a batch costs on the wire beside its data: the datagram header, the session's
/// sealing, and the frame's own few bytes.
fn batch_overhead() -> u64 {
    HEADER_BYTES + crate::secure::DATA_OVERHEAD as u64 + 8
}

/// The bytes the master received so far.
pub(super) fn at_master(sim: &Simulation) -> u64 {
    let (bytes, batches) = sim.inventory_batches();
    bytes + batches * batch_overhead()
}

pub(super) fn report(
    sim: &Simulation,
    seed: u64,
    before_change: Option<u64>,
) -> Option<InventoryReport> {
    let inv = sim.inventory_state()?;
    let (_, batches) = sim.inventory_batches();
    let bytes = at_master(sim);
    let change = before_change.map_or(0, |b| bytes - b);
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let week_bytes = bytes + 6 * change;
    let week_full = 7 * inv.full_upload_bytes;
    let (plain, packed) = sample_ratio(seed, SAMPLE_HOSTS, &inv.model);
    Some(InventoryReport {
        starts: inv.starts,
        nodes_held: sim.master.as_ref().map_or(0, |m| m.inventory_count()),
        document_bytes_mean: inv.full_upload_bytes.checked_div(inv.starts).unwrap_or(0),
        bytes_at_master: bytes,
        batches,
        full_upload_bytes: inv.full_upload_bytes,
        reduction: ratio(inv.full_upload_bytes, bytes),
        change_bytes_at_master: change,
        week_bytes_at_master: week_bytes,
        week_full_upload_bytes: week_full,
        week_reduction: ratio(week_full, week_bytes),
        sample_zstd_ratio: ratio(plain as u64, packed as u64),
        master_peak_msgs_per_sec: sim.stats.master_rate.peak,
        master_peak_msgs_per_sec_without: None,
    })
}
