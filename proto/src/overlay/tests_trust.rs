//! Certificates renew themselves within a run, and a revocation reaches every node, on the
//! virtual-time world.

use std::time::Duration;

use crate::sim::{Simulation as World, START};
use crate::NodeId;

const SEC: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

fn fleet(seed: u64, subnets: u16, per: usize, validity: Duration) -> World {
    let mut w = World::new(seed);
    w.cert_validity = validity;
    for s in 1..=subnets {
        for _ in 0..per {
            w.add(s);
        }
    }
    w.run_until(30 * SEC, |w| w.all_present());
    w
}

fn expiry(w: &World, i: usize) -> u64 {
    w.node(i).endpoint().certificate().expect("certified").body.expires_at
}

#[test]
fn certificates_renew_before_they_expire_and_the_fleet_stays_present() {
    let mut w = fleet(21, 2, 6, 3 * HOUR);
    let first = START.as_secs() + 3 * 3600;
    assert!((0..w.slots.len()).all(|i| expiry(&w, i) == first));

    // Renewal is due at two thirds (2 h); by 2.5 h every node holds a longer certificate.
    w.run_for(2 * HOUR + HOUR / 2);
    for i in 0..w.slots.len() {
        assert!(expiry(&w, i) > first, "node {i} not renewed");
    }
    // Past the first certificates' expiry the fleet is whole.
    w.run_for(HOUR);
    assert!(w.all_present(), "present {} of {}", w.master().present_count(), w.running());
    // And the renewed ones renew again (due at 2 h + 2 h).
    w.run_for(HOUR);
    assert!((0..w.slots.len()).all(|i| expiry(&w, i) > first + 3600));
    assert!(w.all_present());
}

/// When every running node but `revoked` holds revocation list `version`.
fn all_hold(w: &World, version: u64, revoked: &NodeId) -> bool {
    w.slots.iter().filter(|s| s.node.is_some() && s.id() != *revoked).all(|s| {
        let n = s.node.as_ref().unwrap();
        n.endpoint().trust().revocation_version() >= version
    })
}

#[test]
fn a_revocation_reaches_every_node_and_the_revoked_node_stays_out() {
    let mut w = fleet(22, 4, 8, 30 * 24 * HOUR);
    // A child, not an LSN: it is known only through its LSN.
    let i = (0..w.slots.len())
        .find(|&i| w.node(i).children().is_empty() && w.node(i).lsn().is_some())
        .unwrap();
    let revoked = w.id(i);
    let version = w.master_do(|m, now| m.revoke(now, &[revoked])).expect("the master revokes");
    assert_eq!(version, 1);

    let reached = w.run_until(30 * SEC, |w| all_hold(w, version, &revoked));
    assert!(reached <= 10 * SEC, "revocation took {reached:?}");
    // Its LSN dropped it, and the master no longer counts it; it cannot get back in.
    w.run_until(3 * 60 * SEC, |w| !w.master().is_present(&revoked));
    w.run_for(5 * 60 * SEC);
    assert!(!w.master().is_present(&revoked));
    assert_eq!(w.master().present_count(), w.running() - 1);

    // A node that starts (or restarts) later gets the list from its LSN when it joins.
    let late = w.add(2);
    w.run_until(30 * SEC, |w| w.master().is_present(&w.id(late)));
    w.run_for(2 * SEC);
    assert_eq!(w.node(late).endpoint().trust().revocation_version(), version);
}

#[test]
fn a_revoked_lsn_hands_its_subnet_over_and_stays_out() {
    let mut w = fleet(23, 3, 8, 30 * 24 * HOUR);
    let lsn = (0..w.slots.len()).find(|&i| !w.node(i).children().is_empty()).unwrap();
    let revoked = w.id(lsn);
    let version = w.master_do(|m, now| m.revoke(now, &[revoked])).unwrap();
    // Every other node holds the list, and the subnet is present again under another LSN.
    let took = w.run_until(60 * SEC, |w| {
        all_hold(w, version, &revoked)
            && !w.master().is_present(&revoked)
            && w.master().present_count() == w.running() - 1
    });
    assert!(took <= 30 * SEC, "took {took:?}");
    w.run_for(5 * 60 * SEC);
    assert!(!w.master().is_present(&revoked));
    assert_eq!(w.master().present_count(), w.running() - 1);
}
