//! Fleets the unit tests start from.

use std::time::Duration;

use super::Simulation;
use crate::overlay::NodeState;

impl Simulation {
    /// A test fleet of `nodes` nodes in subnet 1, run until all are present (at most 30 s),
    /// then `settle` longer; returned with the slot of its LSN.
    pub(crate) fn settled_subnet(seed_n: u64, nodes: usize, settle: Duration) -> (Self, usize) {
        let mut w = Simulation::new(seed_n);
        for _ in 0..nodes {
            w.add(1);
        }
        w.run_until(Duration::from_secs(30), |w| w.all_present());
        w.run_for(settle);
        let lsn = (0..nodes).find(|&i| w.node(i).state() == NodeState::IsLsn).expect("an LSN");
        (w, lsn)
    }

    /// The NAT in front of subnet `id` drops its mappings (a router reboot): its hosts'
    /// sessions across it reappear at new public ports once they send again.
    pub(crate) fn rebind_nat(&mut self, id: u16) {
        self.subnet_mut(id).nat.rebind();
    }
}
