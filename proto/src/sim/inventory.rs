//! Inventories in the simulation (issue 17): with [`Simulation::inventory`] on, every node
//! reports a synthetic inventory when it starts, keeps the version the master acknowledged
//! across restarts (as the daemon's store would), and the master keeps its inventories
//! across its own restart (as its store would). [`Simulation::change_inventories`] is the
//! day's small change.
//!
//! The documents are modelled on a fleet installed from a few images: ~90 % of the packages
//! are shared by every host, at mostly equal versions; a host has its own names, serials,
//! addresses, install times (its image's, or its own for a third of the packages) and a few
//! extra packages. They are smaller than the thesis' ~2 MB scans
//! (Table 2) so that 30,000 of them fit in memory; [`sample_ratio`] measures what zstd makes
//! of a batch of them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Simulation;
use crate::{
    codec::cbor,
    overlay::inventory::{pack, sign_change, InventoryDocument},
    Identity,
};

/// The inventory model of a run.
#[derive(Clone, Debug)]
pub struct InventoryModel {
    /// Packages in the fleet's catalogue; each host has most of them.
    pub packages: usize,
    /// Packages whose version changes on a host in one daily change (about).
    pub changes_per_day: usize,
}

impl Default for InventoryModel {
    fn default() -> Self {
        InventoryModel { packages: 200, changes_per_day: 3 }
    }
}

/// The simulation's inventory state: the model, the master's saved inventories while it is
/// down, and the counts of the baseline (a whole document per start).
#[derive(Default)]
pub struct SimInventory {
    /// The model.
    pub model: InventoryModel,
    /// The master's store while it is down.
    pub(crate) master_saved: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes the master received in batches before its restarts (its own count restarts).
    pub(crate) batch_bytes_before: u64,
    /// Batches likewise.
    pub(crate) batches_before: u64,
    /// Whole documents nodes had at their starts: what full uploads would have cost.
    pub full_upload_bytes: u64,
    /// Starts that reported an inventory.
    pub starts: u64,
}

/// Node `slot`'s document after `rev` daily changes.
pub fn synthetic(seed: u64, slot: usize, rev: u32, model: &InventoryModel) -> InventoryDocument {
    let mut host = ChaCha8Rng::seed_from_u64(seed ^ (slot as u64) << 8 ^ 0x1a7e);
    let mut doc = InventoryDocument::new();
    let image = host.gen_range(0..3u32);
    let os = ["Debian GNU/Linux 12 (bookworm)", "Ubuntu 22.04.4 LTS", "Windows 10 Pro 22H2"];
    doc.insert("os/name".into(), os[image as usize].into());
    doc.insert("os/kernel".into(), format!("6.1.0-{}-amd64", 18 + image));
    doc.insert("host/name".into(), format!("ws-{slot:05}"));
    doc.insert("host/serial".into(), format!("{:012X}", host.gen::<u64>() >> 16));
    doc.insert("host/uuid".into(), format!("{:032x}", host.gen::<u128>()));
    let cpus = [
        "Intel(R) Core(TM) i5-8500 CPU @ 3.00GHz",
        "AMD Ryzen 5 PRO 4650G",
        "Intel(R) Xeon(R) E-2224",
    ];
    doc.insert("hardware/cpu".into(), cpus[host.gen_range(0..3)].into());
    doc.insert(
        "hardware/memory_mb".into(),
        ["8192", "16384", "32768"][host.gen_range(0..3)].into(),
    );
    doc.insert(
        "hardware/disk/sda/size".into(),
        ["256060514304", "512110190592"][host.gen_range(0..2)].into(),
    );
    for n in 0..2 {
        doc.insert(format!("network/eth{n}/mac"), format!("{:012x}", host.gen::<u64>() >> 16));
        doc.insert(
            format!("network/eth{n}/ipv4"),
            format!("10.{}.{}.{}", n, slot / 250, slot % 250),
        );
    }
    let deployed: u64 = 1_600_000_000 + host.gen_range(0..60_000_000);
    for p in 0..model.packages {
        // Every host of an image has the base set; a host adds ~10 % of the rest.
        if p >= model.packages * 9 / 10 && !host.gen_bool(0.1) {
            continue;
        }
        let lag = u32::from(host.gen_bool(0.05));
        let minor = (p as u32 * 7) % 13;
        // Installed with the host's image, or updated on a day of its own since.
        let installed =
            if host.gen_bool(0.7) { deployed } else { deployed + host.gen_range(0..30_000_000) };
        doc.insert(
            format!("packages/pkg-{image}-{p:04}"),
            format!(
                "{}.{minor}.{}-1+deb12u{} amd64 installed {installed}",
                1 + p % 5,
                p % 9,
                1 + image - lag.min(image)
            ),
        );
    }
    // The daily changes: a few upgrades each day, and the uptime.
    let mut day = ChaCha8Rng::seed_from_u64(seed ^ (slot as u64) << 8 ^ 0xd0c5);
    for r in 1..=rev {
        for _ in 0..model.changes_per_day {
            let p = day.gen_range(0..model.packages * 9 / 10);
            let key = format!("packages/pkg-{image}-{p:04}");
            if let Some(v) = doc.get_mut(&key) {
                *v = format!("{v}+r{r}");
            }
        }
    }
    doc.insert("host/uptime_days".into(), rev.to_string());
    doc
}

/// The encoded size of a whole document (what a full upload carries).
pub fn document_bytes(doc: &InventoryDocument) -> usize {
    cbor::to_vec(doc).len()
}

/// What zstd makes of a batch of the first `n` nodes' whole documents, signed as nodes sign
/// them: (plain CBOR bytes, compressed bytes).
pub fn sample_ratio(seed: u64, n: usize, model: &InventoryModel) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let network = crate::trust::Authority::new(Identity::generate(&mut rng)).network_key();
    let changes: Vec<_> = (0..n)
        .map(|i| {
            let id = Identity::generate(&mut rng);
            let doc = synthetic(seed, i, 0, model);
            let diff = crate::overlay::inventory::diff(&InventoryDocument::new(), &doc);
            sign_change(&id, &network, None, 1, diff.encode(), None)
        })
        .collect();
    (cbor::to_vec(&changes).len(), pack(&changes).len())
}

impl Simulation {
    /// Turns inventories on with `model` (before the nodes start).
    pub fn inventory(&mut self, model: InventoryModel) {
        self.inventory = Some(Box::new(SimInventory { model, ..Default::default() }));
    }

    /// The inventory state, when on.
    pub fn inventory_state(&self) -> Option<&SimInventory> {
        self.inventory.as_deref()
    }

    /// Forgets the counts so far (the setup's starts).
    pub fn inventory_reset_counts(&mut self) {
        if let Some(inv) = self.inventory.as_mut() {
            inv.full_upload_bytes = 0;
            inv.starts = 0;
        }
    }

    /// Bytes and batches the master received in inventory batches over the run.
    pub fn inventory_batches(&self) -> (u64, u64) {
        let Some(inv) = self.inventory.as_ref() else { return (0, 0) };
        let now = self.master.as_ref().map(|m| m.inventory_stats());
        (
            inv.batch_bytes_before + now.map_or(0, |s| s.batch_bytes),
            inv.batches_before + now.map_or(0, |s| s.batches),
        )
    }

    /// Every running node's inventory changes a little (the day's upgrades).
    pub fn change_inventories(&mut self) {
        if self.inventory.is_none() {
            return;
        }
        for i in 0..self.slots.len() {
            self.slots[i].inventory_rev += 1;
            if self.slots[i].node.is_some() {
                self.inventory_report(i);
            }
        }
    }

    /// Node `i` (running) reports its current document.
    fn inventory_report(&mut self, i: usize) {
        let Some(inv) = self.inventory.as_ref() else { return };
        let doc = synthetic(self.seed, i, self.slots[i].inventory_rev, &inv.model);
        self.node_do(i, |n, now| n.set_inventory(now, doc));
    }

    /// (At a start) node `i` gets back what the master acknowledged and reports.
    pub(crate) fn inventory_started(&mut self, i: usize) {
        let Some(inv) = self.inventory.as_mut() else { return };
        let doc = synthetic(self.seed, i, self.slots[i].inventory_rev, &inv.model);
        inv.full_upload_bytes += document_bytes(&doc) as u64;
        inv.starts += 1;
        if let Some((version, acked)) = self.slots[i].inventory_acked.take() {
            self.node_do(i, |n, _| n.restore_inventory(version, acked));
        }
        self.node_do(i, |n, now| n.set_inventory(now, doc));
    }

    /// (At a crash) node `i` keeps what the master acknowledged, as its store would.
    pub(crate) fn inventory_stopped(&mut self, i: usize) {
        if self.inventory.is_none() {
            return;
        }
        let slot = &mut self.slots[i];
        if let Some((v, d)) = slot.node.as_ref().and_then(|n| n.inventory_acked()) {
            slot.inventory_acked = Some((v, d.clone()));
        }
    }

    /// (At the master's crash) its inventories stay in its store.
    pub(crate) fn inventory_master_down(&mut self) {
        let (Some(inv), Some(m)) = (self.inventory.as_mut(), self.master.as_ref()) else { return };
        inv.master_saved = m.inventory_entries();
        inv.batch_bytes_before += m.inventory_stats().batch_bytes;
        inv.batches_before += m.inventory_stats().batches;
    }

    /// (At the master's start) it restores them.
    pub(crate) fn inventory_master_up(&mut self) {
        let (Some(inv), Some(m)) = (self.inventory.as_mut(), self.master.as_mut()) else { return };
        m.restore_inventories(&std::mem::take(&mut inv.master_saved));
    }
}
