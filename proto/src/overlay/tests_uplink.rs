//! A new LSN's uplink under loss (issue 19): its Join and its first update reach the master
//! though some copies are lost, without dropping the session to start afresh.

use std::time::Duration;

use super::{NodeEvent, NodeState};
use crate::{sim::Simulation as World, NodeId};

const SEC: Duration = Duration::from_secs(1);

/// The LSN of a settled subnet of 6 crashes while its standby is cut off from the master,
/// until `cut_for` after the standby became the LSN. Returns the world, the standby's slot and
/// when it became the LSN.
fn takeover_cut_from_master(cut_for: Duration) -> (World, usize, crate::Timestamp) {
    let (mut w, old) = World::settled_subnet(31, 6, 3 * SEC);
    let standby = w.slot_of_id(&w.node(old).children()[0]).expect("the standby's slot");
    let (s, m) = (w.slots[standby].addr, crate::sim::master_addr());
    w.cut.extend([(s, m), (m, s)]);
    w.crash(old);
    w.run_until(10 * SEC, |w| w.node(standby).state() == NodeState::IsLsn);
    let became = w.now;
    w.run_for(cut_for);
    w.cut.clear();
    (w, standby, became)
}

/// Runs until the master has `slot` registered as an LSN; returns whether its node gave up on
/// the master meanwhile (closing the session to start afresh).
fn registers_without_giving_up(w: &mut World, slot: usize, max: Duration) -> bool {
    let id = w.id(slot);
    w.run_until(max, |w| w.master().topology().lsn_of(&id) == Some(id));
    !w.slots[slot].events.iter().any(|(_, e)| *e == NodeEvent::MasterUnreachable)
}

/// A new LSN's Join (or its Ack) lost: the Join goes again over the same session a second
/// later. With one Join and a 4 s deadline, the LSN declared the master unreachable, closed
/// the session and registered about 5 s late, its subnet shown under the dead LSN meanwhile.
#[test]
fn a_standby_whose_first_join_is_lost_registers_at_the_next_try() {
    let (mut w, standby, became) = takeover_cut_from_master(Duration::from_millis(200));
    assert!(registers_without_giving_up(&mut w, standby, 30 * SEC), "the LSN gave up");
    let took = w.now.saturating_since(became);
    println!("join lost: registered {:.2} s after becoming LSN", took.as_secs_f64());
    assert!(took <= 2 * SEC, "registered only after {took:?}");
}

#[test]
fn a_new_lsn_cut_from_the_master_for_its_first_three_joins_registers_at_a_later_one() {
    // Three Joins 1 s apart used to be all: past them the LSN dropped its session with the
    // master and started afresh, registering some 5 s later (4.7 % of takeovers at 20 % loss).
    let (mut w, standby, _) = takeover_cut_from_master(Duration::from_millis(3500));
    assert!(registers_without_giving_up(&mut w, standby, 3 * SEC), "the LSN gave up");
}

#[test]
fn an_update_the_master_did_not_get_goes_again_after_half_a_second() {
    // The new LSN's first update, listing the children it adopted, is lost: they show under
    // it at the master once it goes again, after 500 ms (2 s, then 1 s before; four checks
    // of a lossy run's children were spent waiting).
    let (mut w, old) = World::settled_subnet(32, 6, 3 * SEC);
    let standby = w.slot_of_id(&w.node(old).children()[0]).expect("the standby's slot");
    w.crash(old);
    let standby_id = w.id(standby);
    w.run_until(10 * SEC, |w| w.master().topology().lsn_of(&standby_id) == Some(standby_id));
    let (s, m) = (w.slots[standby].addr, crate::sim::master_addr());
    w.cut.insert((s, m));
    let registered = w.now;
    w.run_for(Duration::from_millis(300));
    w.cut.clear();
    let others: Vec<usize> = (0..6).filter(|&i| i != old && i != standby).collect();
    let ids: Vec<NodeId> = others.iter().map(|&i| w.id(i)).collect();
    w.run_until(10 * SEC, |w| {
        ids.iter().all(|id| w.master().topology().lsn_of(id) == Some(standby_id))
    });
    let took = w.now.saturating_since(registered);
    println!(
        "update lost: children under the new LSN {:.2} s after it registered",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_millis(900), "only after {took:?}");
}
