//! Node behaviour that needs a look inside the state machine.

use std::time::Duration;

use crate::{
    overlay::NodeState,
    sim::Simulation,
    wire::{Contact, WireAddr},
};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_standby_whose_ranking_push_was_lost_still_takes_over_at_once() {
    // The push that names the standby goes out once, unacknowledged. Lost, the LSN heartbeats
    // a child that does not know it is the standby, and nobody watches the LSN closely: a
    // crash was then noticed only by the children's silence timer (90 s and more).
    let (mut w, old) = Simulation::settled_subnet(31, 8, 3 * SEC);
    let ranked = w.node(old).children();
    let standby = w.slot_of_id(&ranked[0]).expect("the standby's slot");
    // The list it holds instead names the next child first, as one from before a re-ranking.
    let stale: Vec<Contact> = ranked[1..]
        .iter()
        .filter_map(|id| {
            w.slot_of_id(id).map(|j| Contact { id: *id, addr: WireAddr(w.slots[j].addr) })
        })
        .collect();
    w.slots[standby].node.as_mut().expect("running").lose_standby_list(stale);
    // Heartbeats keep coming (the LSN believes the push arrived).
    w.run_for(3 * SEC);
    let old_id = w.id(old);
    w.crash(old);
    let took = w.run_until(120 * SEC, |w| {
        let m = w.master();
        let topo = m.topology();
        (0..8)
            .filter(|&i| i != old)
            .all(|i| m.is_present(&w.id(i)) && topo.lsn_of(&w.id(i)).is_some_and(|l| l != old_id))
    });
    assert!(took <= 2 * SEC, "recovery took {took:?}");
    assert_eq!(w.node(standby).state(), NodeState::IsLsn);
}
