//! The simulated master's store: what the daemon keeps in its database (certificates, the
//! node registry, the LSNs, the outbox, open fleet requests), kept across
//! [`crash_master`](super::Simulation::crash_master) when
//! [`durable_master`](super::Simulation::durable_master) is on, so a restarted master restores
//! it and wakes the LSNs of before as the daemon's does.

use std::collections::BTreeMap;

use crate::{
    dht::StoreOp,
    overlay::{
        master::{CERTS_TABLE, LSNS_TABLE, NODES_TABLE, REVOCATIONS_TABLE},
        Master, MasterSaved, FLEET_TABLE, OUTBOX_TABLE,
    },
    Timestamp,
};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

/// The tables, by name.
#[derive(Default)]
pub(super) struct MasterStore {
    tables: BTreeMap<&'static str, Table>,
}

impl MasterStore {
    /// Carries out the master's pending writes.
    pub(super) fn save(&mut self, master: &mut Master) {
        while let Some(op) = master.poll_store() {
            match op {
                StoreOp::Put { table, key, value } => {
                    self.tables.entry(table).or_default().insert(key, value);
                }
                StoreOp::Remove { table, key } => {
                    if let Some(t) = self.tables.get_mut(table) {
                        t.remove(&key);
                    }
                }
            }
        }
    }

    fn scan(&self, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.tables
            .get(table)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Restores a (re)started master from the tables, as the daemon does at start-up; from
    /// then on it writes to the store.
    pub(super) fn restore(&self, master: &mut Master, now: Timestamp) {
        let saved = MasterSaved::from_tables(
            &self.scan(CERTS_TABLE),
            &self.scan(NODES_TABLE),
            &self.scan(REVOCATIONS_TABLE),
            &self.scan(LSNS_TABLE),
        );
        master.restore(saved);
        master.restore_outbox(&self.scan(OUTBOX_TABLE));
        master.restore_fleet(now, &self.scan(FLEET_TABLE));
    }
}
