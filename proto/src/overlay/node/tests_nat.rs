//! Who checks its NAT (`nat.rs`): an LSN checks, its children take its class over the LAN,
//! and an LSN that inherited a class tests only what may differ per host.

use std::time::Duration;

use super::NodeState;
use crate::{
    overlay::OverlayConfig,
    sim::{NatKind, Simulation},
    wire::Mapping,
};

/// A public helper in subnet 2, then three nodes behind a port-restricted NAT in subnet 1,
/// all checked and shared: (world, helper, the three).
fn world(seed: u64) -> (Simulation, usize, Vec<usize>) {
    let mut w = Simulation::new(seed);
    w.keep_events = false;
    // No DHT: the master is its bootstrap node, and its sessions would hide ours.
    w.tune = |c| OverlayConfig { dht: c.dht.enabled(false), ..c };
    w.master_cfg.dht = w.master_cfg.dht.clone().enabled(false);
    w.set_nat(1, NatKind::PortRestricted);
    w.set_nat(2, NatKind::None);
    let helper = w.add(2);
    w.run_until(Duration::from_secs(30), |s| s.all_present() && s.node(helper).nat_checked());
    let nodes: Vec<usize> = (0..3).map(|_| w.add(1)).collect();
    // Children get the class with a ping (every 45 s).
    w.run_until(Duration::from_secs(120), |s| {
        s.all_present() && nodes.iter().all(|&i| s.node(i).nat_checked())
    });
    (w, helper, nodes)
}

fn lsn_of(w: &Simulation, nodes: &[usize]) -> usize {
    nodes.iter().copied().find(|&i| w.node(i).state() == NodeState::IsLsn).expect("an LSN")
}

#[test]
fn children_take_their_lsns_class_over_the_lan_and_open_no_session_with_the_master() {
    let (w, _, nodes) = world(81);
    let lsn = lsn_of(&w, &nodes);
    let class = w.node(lsn).nat_class();
    assert!(w.node(lsn).nat_tested_here());
    assert_eq!((class.mapping, class.inbound), (Mapping::EndpointIndependent, Some(false)));
    // One probe asked of the helper: for the LSN's check, none for the children.
    assert_eq!(w.master().introducer_stats().probes, 1);
    for &c in nodes.iter().filter(|&&i| i != lsn) {
        let n = w.node(c);
        assert!(n.nat_checked(), "child {c} knows its class");
        assert!(!n.nat_tested_here(), "child {c} did not test it");
        assert_eq!(n.nat_class(), class, "child {c} has its LSN's class");
        assert_eq!(n.observed_addr(), None);
        assert_eq!(w.master().nat_class(&w.id(c)), None, "nothing reported for {c}");
    }
}

#[test]
fn an_lsn_with_its_old_lsns_class_tests_only_its_own_inbound() {
    let (mut w, helper, nodes) = world(82);
    let old = lsn_of(&w, &nodes);
    let helper_id = w.id(helper);
    w.crash(old);
    let rest: Vec<usize> = nodes.into_iter().filter(|&i| i != old).collect();
    w.run_until(Duration::from_secs(90), |s| {
        rest.iter().any(|&i| s.node(i).state() == NodeState::IsLsn && s.node(i).nat_tested_here())
    });
    w.run_for(Duration::from_secs(1)); // Its report on the way.
    let new = lsn_of(&w, &rest);
    let n = w.node(new);
    assert!(n.nat_tested_here(), "the new LSN tested its own host");
    let class = n.nat_class();
    assert_eq!((class.mapping, class.inbound), (Mapping::EndpointIndependent, Some(false)));
    // The mapping came from the old LSN: no session with the helper to ask it.
    assert!(!n.endpoint().is_connected(&helper_id), "asked the helper");
    assert_eq!(w.master().nat_class(&w.id(new)).map(|(c, _)| c), Some(class));
}

#[test]
fn a_nat_class_from_anyone_but_our_lsn_is_refused() {
    let (mut w, _, nodes) = world(83);
    let lsn = lsn_of(&w, &nodes);
    let child = nodes.iter().copied().find(|&i| i != lsn).expect("a child");
    let before = (w.node(child).nat_class(), w.node(child).refusals().answer);
    let forged = crate::wire::NatReport {
        class: crate::wire::NatClass { mapping: Mapping::Public, inbound: Some(true) },
        observed: crate::wire::WireAddr("192.0.2.9:4000".parse().unwrap()),
        gsn: true,
    };
    let other = nodes.iter().copied().find(|&i| i != lsn && i != child).expect("a sibling");
    // A sibling on the same LAN: it shares the NAT, but only the LSN speaks for it.
    super::tests::forge(&mut w, other, child, crate::wire::Message::NatReport(forged));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(child).nat_class(), before.0, "the class stands");
    assert_eq!(w.node(child).refusals().answer, before.1 + 1);
}

#[test]
fn an_introduction_asked_again_is_sent_again_not_refused() {
    // The asker asks again when a datagram of the introduction was lost (`INTRO_RETRY`): the
    // master sends the pending introduction again, and the repeats cost nothing of its
    // bounds (four pending per asker used to refuse the fifth ask).
    let (mut w, helper, nodes) = world(83);
    let asker = lsn_of(&w, &nodes);
    let target = w.id(helper);
    let master = crate::sim::master_addr();
    w.node_do(asker, |n, now| {
        for _ in 0..6 {
            let ask = crate::wire::Introduce { seq: 1, target, predict: true };
            n.send(now, master, crate::wire::Message::Introduce(ask));
        }
    });
    w.run_for(Duration::from_secs(1));
    let stats = w.master().introducer_stats();
    assert_eq!((stats.asked, stats.refused), (6, 0), "{stats:?}");
    assert_eq!(w.node(helper).intro_stats().introduced, 6, "each ask reached the target");
    // The target checked in six times for the one introduction: the repeats are recognised.
    assert_eq!(w.master().refusals().introduction, 0, "no check-in counted as refused");
    assert!(w.node(asker).endpoint().is_connected(&target), "and the pair has its session");
}

#[test]
fn a_dht_request_spends_no_port_prediction_and_an_applications_dial_does() {
    // The asker behind a port-restricted NAT, the peer behind a symmetric one: the pair the
    // master predicts ports for. Prediction sends up to 256 copies of message 1 (540 bytes
    // each before session 51), most of a node's WAN bytes in the simulated day when every DHT
    // request spent it.
    for app in [false, true] {
        let mut w = Simulation::new(97);
        w.keep_events = false;
        w.tune = |c| OverlayConfig { dht: c.dht.enabled(false), ..c };
        w.master_cfg.dht = w.master_cfg.dht.clone().enabled(false);
        w.set_nat(1, NatKind::PortRestricted);
        w.set_nat(2, NatKind::Symmetric);
        w.set_nat(3, NatKind::None);
        let helper = w.add(3);
        w.run_until(Duration::from_secs(30), |s| s.all_present() && s.node(helper).nat_checked());
        let (asker, peer) = (w.add(1), w.add(2));
        w.run_until(Duration::from_secs(60), |s| {
            s.all_present() && s.node(asker).nat_checked() && s.node(peer).nat_checked()
        });
        let target = w.id(peer);
        let addr = w.node(peer).observed_addr().expect("observed");
        w.node_do(asker, |n, now| {
            // As `dht_flush` dials for a request, or `open_to` for an application.
            n.dial_peer(now, target, addr, app);
            n.ep.connect(now, addr, Some(target));
        });
        w.run_for(Duration::from_secs(6));
        let asked = w.node(asker).intro_stats();
        assert_eq!(asked.asked, 1, "app {app}: {asked:?}");
        if app {
            assert!(asked.predicted > 0, "an application's dial predicts: {asked:?}");
        } else {
            assert_eq!(asked.predicted, 0, "a DHT request's dial does not: {asked:?}");
        }
    }
}
