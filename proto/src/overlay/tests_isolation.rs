//! A master cut off from its fleet says so (issue 19, `master/isolation.rs`), and a healthy
//! fleet at 10 % loss never makes it say so; an LSN that vanishes is absent within a minute
//! (`master/overdue.rs`), and a lost keepalive costs nothing.

use std::time::Duration;

use super::{MasterEvent, PresenceEvent};
use crate::sim::{master_addr, Simulation as World};

const SEC: Duration = Duration::from_secs(1);

fn fleet(seed: u64) -> World {
    let mut w = World::new(seed);
    for s in 1..=3 {
        for _ in 0..4 {
            w.add(s);
        }
    }
    w
}

/// Cuts (or with `heal`, restores) every link between the master and the nodes.
fn cut_master(w: &mut World, heal: bool) {
    let addrs: Vec<_> = w.slots.iter().map(|s| s.addr).collect();
    for a in addrs {
        for pair in [(a, master_addr()), (master_addr(), a)] {
            if heal {
                w.cut.remove(&pair);
            } else {
                w.cut.insert(pair);
            }
        }
    }
}

fn isolation_events(w: &World) -> Vec<MasterEvent> {
    let ours = |e: &&MasterEvent| {
        matches!(e, MasterEvent::Isolated { .. } | MasterEvent::Reconnected { .. })
    };
    w.master_events.iter().map(|(_, e)| e).filter(ours).cloned().collect()
}

#[test]
fn a_master_cut_off_for_a_minute_says_so_and_when_it_ends() {
    let mut w = fleet(90);
    w.run_until(60 * SEC, |w| w.all_present());
    w.run_for(300 * SEC); // Keepalives at their long period.
    let cut_at = w.now;
    cut_master(&mut w, false);
    w.run_for(60 * SEC);
    let since = w.master().isolated_since().expect("isolated within the minute");
    assert!(since <= cut_at, "since the last LSN message before the cut");
    assert!(w.all_present(), "isolation changes no presence");
    cut_master(&mut w, true);
    w.run_for(70 * SEC); // Every LSN's next keepalive.
    assert_eq!(w.master().isolated_since(), None);
    match isolation_events(&w).as_slice() {
        [MasterEvent::Isolated { lsns: 3, .. }, MasterEvent::Reconnected { isolated_for }] => {
            assert!(*isolated_for >= 60 * SEC, "{isolated_for:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_healthy_fleet_at_ten_percent_loss_never_looks_isolated() {
    // Keepalives of LSNs started together fall together: quiet stretches longer than the
    // window are common, and only the unanswered pings may call it isolation.
    for seed in [91, 92, 93, 94] {
        let mut w = fleet(seed);
        w.net.loss = 0.1;
        w.run_for(1800 * SEC);
        assert_eq!(isolation_events(&w), [], "seed {seed}");
        let parted = w
            .master_events
            .iter()
            .filter(|(_, e)| matches!(e, MasterEvent::Presence(PresenceEvent::Parted { .. })))
            .count();
        assert_eq!(parted, 0, "seed {seed}: lost keepalives cost no LSN its presence");
    }
}

#[test]
fn an_lsn_alone_in_its_subnet_that_vanishes_is_absent_within_a_minute() {
    for seed in [95, 96, 97] {
        let mut w = fleet(seed);
        let lone = w.add(4);
        w.run_until(60 * SEC, |w| w.all_present());
        w.run_for(300 * SEC); // Keepalives at their long period (45 s).
        let id = w.id(lone);
        w.crash(lone);
        let crashed = w.now;
        w.run_until(150 * SEC, |w| !w.master().is_present(&id));
        let took = w.now.saturating_since(crashed);
        // At most a keepalive period, the slack and eight pings; at least the pings.
        assert!(took <= 55 * SEC && took >= 8 * SEC, "seed {seed}: {took:?}");
        assert_eq!(w.master().present_count(), 12, "seed {seed}: the others stay");
    }
}
