//! What tests and reports read of the world: who runs, whether everyone is present, names.

use super::Simulation;
use crate::NodeId;

impl Simulation {
    /// Nodes running now.
    pub fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.node.is_some()).count()
    }

    /// Whether every running node is present at the master.
    pub fn all_present(&self) -> bool {
        let Some(m) = &self.master else { return false };
        self.slots.iter().filter(|s| s.node.is_some()).all(|s| m.is_present(&s.identity.node_id()))
            && m.present_count() == self.running()
    }

    /// Names nodes "s<subnet>n<i>" for readable, stable dumps.
    pub fn name(&self, id: &NodeId) -> String {
        match self.slot_of_id(id) {
            Some(i) => {
                let s = &self.slots[i];
                let host = s.addr.ip().to_string();
                format!("s{}n{}", s.subnet, host.rsplit('.').next().unwrap_or("?"))
            }
            None => format!("{id:?}"),
        }
    }
}
