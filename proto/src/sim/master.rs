//! The simulated master: started, crashed, acted on, and its store: what the daemon keeps in
//! its database (certificates, the node registry, the LSNs, the outbox, open fleet requests),
//! kept across [`crash_master`](super::Simulation::crash_master) when
//! [`durable_master`](super::Simulation::durable_master) is on, so a restarted master restores
//! it and wakes the LSNs of before as the daemon's does.

use std::collections::BTreeMap;

use super::{seed, Simulation, START};
use crate::{
    dht::StoreOp,
    overlay::{
        master::{CERTS_TABLE, LSNS_TABLE, NODES_TABLE, REVOCATIONS_TABLE},
        Master, MasterSaved, FLEET_TABLE, OUTBOX_TABLE,
    },
    trust::OpenEnrollment,
    Endpoint, EndpointConfig, Timestamp,
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

impl Simulation {
    /// (Re)starts the master (a restart loses all its state, as a real restart would).
    pub fn start_master(&mut self) {
        let config =
            EndpointConfig::master(self.authority.clone(), OpenEnrollment::default(), START)
                .tcp_fallback(self.tcp_fallback);
        self.master_starts += 1;
        let endpoint = Endpoint::new(config, seed(1 << 40 | self.master_starts));
        let mut master = Master::new(endpoint, self.master_cfg.clone());
        if self.durable_master {
            self.master_store.restore(&mut master, self.now);
        }
        self.master = Some(master);
        self.inventory_master_up();
        self.metrics_master_up();
        self.master_deadline = self.master.as_ref().and_then(|m| m.poll_timeout());
        self.refile(0);
    }

    /// Stops the master at once (its state is lost; [`start_master`](Self::start_master)
    /// brings up a fresh one).
    pub fn crash_master(&mut self) {
        self.save_master();
        if let Some(t) = self.master.as_ref().and_then(|m| m.dht()).map(|d| d.traffic()) {
            self.stats.dht_traffic_stopped.add(&t);
        }
        self.inventory_master_down();
        self.master = None;
        self.master_deadline = None;
        self.refile(0);
        self.stats.master_down();
    }

    /// Carries out the master's writes to its store (with [`durable_master`](Self::durable_master)).
    pub(super) fn save_master(&mut self) {
        // Without it, a test may keep the master's store itself.
        if !self.durable_master {
            return;
        }
        if let Some(m) = self.master.as_mut() {
            self.master_store.save(m);
        }
    }

    /// Acts on the master now, then sends what it produced.
    pub fn master_do<R>(&mut self, f: impl FnOnce(&mut Master, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(self.master.as_mut().expect("master is running"), now);
        self.with_view(|v| v.drain(None));
        r
    }

    /// The master (panics while it is down).
    pub fn master(&self) -> &Master {
        self.master.as_ref().expect("master is running")
    }
}
