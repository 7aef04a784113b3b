//! The DHT in a simulation: gets and puts started on a node, counted in
//! [`Accounting::dht`](super::Accounting), and the DHT's traffic over the whole run.

use super::Simulation;
use crate::NodeId;

impl Simulation {
    /// Starts a DHT get for `key` on node `i`; its outcome is counted in
    /// [`Accounting::dht`](super::Accounting::dht).
    pub fn dht_get(&mut self, i: usize, key: NodeId) {
        let now = self.now;
        let Some(n) = self.slots[i].node.as_mut() else { return };
        // Registered before the node's output is collected: a local answer comes at once.
        let query = n.dht_get(now, key);
        let nat = self.nat_of(i);
        self.stats.expect_dht(i, query, true, nat);
        self.with_view(|v| v.drain(Some(i)));
    }

    /// Puts `value` under `key` from node `i`; how many nodes hold it afterwards is counted in
    /// [`Accounting::dht`](super::Accounting::dht).
    pub fn dht_put(&mut self, i: usize, key: NodeId, value: Vec<u8>) {
        let now = self.now;
        let Some(n) = self.slots[i].node.as_mut() else { return };
        let query = n.dht_put(now, key, value);
        let nat = self.nat_of(i);
        self.stats.expect_dht(i, query, false, nat);
        self.with_view(|v| v.drain(Some(i)));
    }

    /// DHT traffic of every node and master instance so far, stopped ones included.
    pub fn dht_traffic(&self) -> crate::dht::DhtTraffic {
        let mut total = self.stats.dht_traffic_stopped;
        for n in self.slots.iter().filter_map(|s| s.node.as_ref()) {
            total.add(&n.dht_traffic());
        }
        if let Some(t) = self.master.as_ref().and_then(|m| m.dht()).map(|d| d.traffic()) {
            total.add(&t);
        }
        total
    }
}
