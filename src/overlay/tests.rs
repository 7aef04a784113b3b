//! Overlay behaviour on the virtual-time world.

use std::time::Duration;

use super::{world::World, MasterEvent, NodeState, PresenceEvent};
use crate::wire::PartReason;

const SEC: Duration = Duration::from_secs(1);

fn fleet(seed: u64, subnets: u8, per: usize) -> World {
    let mut w = World::new(seed);
    for s in 1..=subnets {
        for _ in 0..per {
            w.add(s);
        }
    }
    w
}

fn lsns(w: &World) -> Vec<usize> {
    (0..w.slots.len())
        .filter(|&i| w.slots[i].node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn))
        .collect()
}

#[test]
fn three_subnets_of_eight_are_all_present_under_one_lsn_each() {
    let mut w = fleet(1, 3, 8);
    let took = w.run_until(30 * SEC, |w| w.all_present());
    w.run_for(5 * SEC);
    assert!(w.all_present());
    let topo = w.master().topology();
    assert_eq!(topo.subnets.len(), 3, "{}", topo.render(|id| w.name(id)));
    assert!(topo.subnets.iter().all(|s| s.lsns.len() == 1 && s.lsns[0].children.len() == 7));
    assert_eq!(lsns(&w).len(), 3);
    assert!(took < 5 * SEC, "took {took:?}");
}

#[test]
fn lsn_crash_hot_standby_takes_over_within_a_second_or_two() {
    let mut w = fleet(2, 1, 8);
    w.run_until(30 * SEC, |w| w.all_present());
    w.run_for(3 * SEC);
    let old = lsns(&w)[0];
    let old_id = w.id(old);
    w.crash(old);
    let took = w.run_until(10 * SEC, |w| {
        let m = w.master();
        (0..w.slots.len()).filter(|&i| i != old).all(|i| m.is_present(&w.id(i)))
            && m.topology().lsn_of(&w.id((old + 1) % 8)).is_some_and(|l| l != old_id)
    });
    assert!(took <= 2 * SEC, "recovery took {took:?}");
    let new = lsns(&w);
    assert_eq!(new.len(), 1);
    let topo = w.master().topology();
    assert_eq!(topo.subnets[0].lsns[0].id, w.id(new[0]));
    assert_eq!(topo.subnets[0].lsns[0].children.len(), 6, "{}", topo.render(|id| w.name(id)));
}
