//! GSNs and the relay (`gsn.rs`, `master/gsn.rs`): who is appointed, that forged relay
//! messages are refused, that a relayed session stands and that circuits are rate-bounded.

use std::time::Duration;

use super::{tests::forge, NodeState};
use crate::{
    overlay::OverlayConfig,
    sim::{NatKind, Simulation},
    wire::{GsnGrant, Message, RelayData, Relayed},
};

/// Two subnets behind symmetric NATs (two nodes each) and a public helper: (world, helper,
/// [LSN, child] of subnet 1, [LSN, child] of subnet 2).
pub(super) fn world(seed: u64) -> (Simulation, usize, [usize; 2], [usize; 2]) {
    let mut w = Simulation::new(seed);
    w.keep_events = false;
    // Children check their own NAT: the tests dial a child at the address the master saw.
    w.tune = |c| OverlayConfig { dht: c.dht.enabled(false), nat_check_as_child: true, ..c };
    w.master_cfg.dht = w.master_cfg.dht.clone().enabled(false);
    // As the front door runs nodes: a session whose UDP goes silent is noticed (`path.rs`).
    w.tcp_fallback = Some(Duration::from_secs(3));
    w.set_nat(1, NatKind::Symmetric);
    w.set_nat(2, NatKind::Symmetric);
    w.set_nat(3, NatKind::None);
    let helper = w.add(3);
    w.run_until(Duration::from_secs(30), |s| s.all_present());
    let nodes: Vec<usize> = [1, 1, 2, 2].into_iter().map(|s| w.add(s)).collect();
    w.run_until(Duration::from_secs(60), |s| {
        s.all_present() && nodes.iter().chain([&helper]).all(|&i| s.node(i).nat_checked())
    });
    w.run_for(Duration::from_secs(1));
    let pair = |w: &Simulation, p: &[usize]| {
        let lsn = p.iter().copied().find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
        let child = p.iter().copied().find(|&i| i != lsn).unwrap();
        [lsn, child]
    };
    let (a, b) = (pair(&w, &nodes[..2]), pair(&w, &nodes[2..]));
    (w, helper, a, b)
}

#[test]
fn the_master_appoints_the_node_taking_inbound_and_forged_relay_messages_are_refused() {
    let (mut w, helper, [lsn1, child1], [_, child2]) = world(61);
    assert_eq!(w.master().gsns(), vec![w.id(helper)]);
    assert!(w.node(helper).is_gsn());
    for i in [lsn1, child1, child2] {
        assert!(!w.node(i).is_gsn(), "a filtered node is no GSN");
    }
    // The LSN of subnet 1 reaches its child over the LAN: its forgeries arrive.
    let before = w.node(child1).refusals().gsn;
    forge(&mut w, lsn1, child1, Message::GsnGrant(GsnGrant { active: true, ticket: None }));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(child1).refusals().gsn, before + 1, "a grant not from the master");
    assert!(!w.node(child1).is_gsn());
    // A node the master did not appoint forwards nothing.
    let data = RelayData { to: w.id(child2), bytes: vec![1; 64] };
    forge(&mut w, lsn1, child1, Message::RelayData(Box::new(data)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(child1).refusals().gsn, before + 2, "relay data to a non-GSN");
    assert_eq!(w.node(child1).gsn_stats().forwarded, 0);
    // A datagram "relayed" by a node no introduction named as GSN for that peer.
    let relayed = Relayed { from: w.id(child2), bytes: vec![1; 64] };
    forge(&mut w, lsn1, child1, Message::Relayed(Box::new(relayed)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(child1).refusals().gsn, before + 3, "relayed from a GSN not named");
    assert_eq!(w.node(child1).gsn_stats().paths, 0, "no relay path opened");
    // Oversized relay data to the real GSN is refused too.
    let gsn_before = w.node(helper).refusals().gsn;
    let big = RelayData { to: w.id(child2), bytes: vec![0; crate::wire::MAX_RELAY_BYTES + 1] };
    forge(&mut w, child1, helper, Message::RelayData(Box::new(big)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(helper).refusals().gsn, gsn_before + 1, "oversized relay data");
}

#[test]
fn a_relayed_session_stands_and_its_circuit_is_rate_bounded() {
    let (mut w, helper, [_, child1], [_, child2]) = world(62);
    let (target, gsn) = (w.id(child2), w.id(helper));
    let addr = w.node(child2).observed_addr().expect("observed");
    w.node_do(child1, |n, now| n.reach(now, target, addr));
    w.run_for(Duration::from_secs(5));
    assert!(w.node(child1).endpoint().is_connected(&target), "no session");
    assert_eq!(w.node(child1).relayed_via(&target), Some(gsn));
    assert_eq!(w.node(child2).relayed_via(&w.id(child1)), Some(gsn));
    let stats = w.node(helper).gsn_stats();
    assert!(stats.forwarded >= 3, "the handshake went through the GSN: {stats:?}");
    // The DHT's messages for the peer go over the relayed session, not to the address its
    // table holds (a dial there would be dropped, and would hold a Linux NAT shut).
    let relay = super::relay_addr(&target);
    assert_eq!(w.node(child1).dht_route(addr, Some(target)), relay);
    assert_eq!(w.node(child1).dht_route(addr, None), addr);
    // A burst far above the circuit's bucket: most of it is dropped, not queued.
    let size = 30_000;
    for _ in 0..20 {
        let data = RelayData { to: target, bytes: vec![0; size] };
        forge(&mut w, child1, helper, Message::RelayData(Box::new(data)));
    }
    w.run_for(Duration::from_millis(50));
    let after = w.node(helper).gsn_stats();
    let passed = after.forwarded - stats.forwarded;
    let circuit_burst = crate::overlay::RelayLimits::default().circuit_burst;
    let burst = (circuit_burst as usize).div_ceil(size) as u64;
    assert!(passed <= burst + 1, "{passed} of 20 passed, bucket holds {burst}");
    assert!(after.dropped - stats.dropped >= 20 - burst - 1, "{after:?}");
}

/// [`world`], with the two subnets' children in a session through the helper (their NATs
/// are symmetric): (world, helper, child 1, child 2).
pub(super) fn relayed_pair(seed: u64) -> (Simulation, usize, usize, usize) {
    let (mut w, helper, [_, child1], [_, child2]) = world(seed);
    let (id2, gsn) = (w.id(child2), w.id(helper));
    let addr = w.node(child2).observed_addr().expect("observed");
    w.node_do(child1, |n, now| n.reach(now, id2, addr));
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.node(child1).relayed_via(&id2), Some(gsn), "symmetric to symmetric: relayed");
    (w, helper, child1, child2)
}

/// Has `from` ping `to` (which answers) over their session, wherever it runs.
fn ping_over_session(w: &mut Simulation, from: usize, to: usize, rpc: u32) {
    let peer = w.id(to);
    let addr = w.node(from).endpoint().peer_addr(&peer).expect("a session");
    w.node_do(from, |n, now| n.send(now, addr, Message::Ping(crate::wire::Ping { seq: rpc })));
}

#[test]
fn a_relayed_session_moves_to_a_direct_path_once_the_nat_allows_it_and_back_when_it_dies() {
    upgrade_then_fall_back(63, 0);
}

#[test]
fn a_session_falls_back_through_a_new_relayed_handshake_once_the_old_one_idled_out() {
    // The relayed session left behind by the upgrade idles out after 180 s: the fallback
    // opens a new one through the GSN.
    upgrade_then_fall_back(65, 240);
}

/// Relays two symmetric NATs' nodes, lets subnet 1's NAT map endpoint-independently until
/// the session is direct, runs `linger` more seconds on it, then turns the NAT symmetric
/// again: the session must go back to the relay, without closing.
fn upgrade_then_fall_back(seed: u64, linger: u32) {
    let (mut w, helper, child1, child2) = relayed_pair(seed);
    let (id1, id2) = (w.id(child1), w.id(child2));
    // Subnet 1's NAT is replaced by one that maps endpoint-independently (say, the operator
    // forwarded a port): hole punching can work now, and the next try finds it.
    w.set_nat(1, NatKind::EndpointIndependent);
    let mut rpc = 0;
    let relayed_at = w.now;
    for _ in 0..60 {
        rpc += 1;
        ping_over_session(&mut w, child1, child2, rpc);
        w.run_for(Duration::from_secs(1));
        if w.node(child1).relayed_via(&id2).is_none() && w.node(child2).relayed_via(&id1).is_none()
        {
            break;
        }
    }
    eprintln!("direct {:?} after the NAT changed", w.now.saturating_since(relayed_at));
    for (a, b) in [(child1, id2), (child2, id1)] {
        assert!(w.node(a).endpoint().is_connected(&b), "the session dropped");
        assert_eq!(w.node(a).relayed_via(&b), None, "still relayed after a minute");
        assert_eq!(w.node(a).gsn_stats().upgraded, 1, "{:?}", w.node(a).gsn_stats());
    }
    let (low, _) = if id1 < id2 { (child1, child2) } else { (child2, child1) };
    assert_eq!(w.node(low).gsn_stats().upgrade_tries, 1, "the lower id asks, once");
    // Traffic now flows directly: the GSN passes on nothing more.
    let forwarded = w.node(helper).gsn_stats().forwarded;
    let received = w.node(child2).endpoint().stats().datagrams_received;
    for _ in 0..5 {
        rpc += 1;
        ping_over_session(&mut w, child1, child2, rpc);
        w.run_for(Duration::from_secs(1));
    }
    assert!(w.node(child2).endpoint().stats().datagrams_received >= received + 5);
    assert_eq!(w.node(helper).gsn_stats().forwarded, forwarded, "still through the GSN");
    for _ in 0..linger {
        rpc += 1;
        ping_over_session(&mut w, child1, child2, rpc);
        w.run_for(Duration::from_secs(1));
    }
    let relayed_links = |w: &Simulation| {
        (w.node(child1).endpoint().peer_at(super::relay_addr(&id2)).is_some()) as u32
            + (w.node(child2).endpoint().peer_at(super::relay_addr(&id1)).is_some()) as u32
    };
    let lingering = relayed_links(&w);
    assert_eq!(lingering, if linger > 180 { 0 } else { 2 }, "relayed sessions left open");
    // The NAT turns symmetric again and drops its mappings: the direct path dies, and the
    // session goes back to the relay without closing.
    w.set_nat(1, NatKind::Symmetric);
    let mut back = None;
    for s in 0..60 {
        rpc += 1;
        ping_over_session(&mut w, child1, child2, rpc);
        ping_over_session(&mut w, child2, child1, rpc);
        w.run_for(Duration::from_secs(1));
        for (a, b) in [(child1, id2), (child2, id1)] {
            assert!(w.node(a).endpoint().is_connected(&b), "the session dropped at {s} s");
        }
        if w.node(child1).relayed_via(&id2).is_some() && w.node(child2).relayed_via(&id1).is_some()
        {
            back = Some(s);
            break;
        }
    }
    let fallbacks = w.node(child1).gsn_stats().fallbacks + w.node(child2).gsn_stats().fallbacks;
    assert!(back.is_some(), "still direct a minute after the NAT turned; {fallbacks} fallbacks");
    eprintln!("back on the relay after {back:?} s, {fallbacks} fallbacks");
    let forwarded = w.node(helper).gsn_stats().forwarded;
    for _ in 0..5 {
        rpc += 1;
        ping_over_session(&mut w, child1, child2, rpc);
        w.run_for(Duration::from_secs(1));
    }
    assert!(w.node(helper).gsn_stats().forwarded >= forwarded + 5, "not through the GSN");
}

#[test]
fn a_session_that_stays_relayed_tries_a_direct_path_with_backoff_and_keeps_flowing() {
    let (mut w, helper, [_, child1], [_, child2]) = world(64);
    let (id1, id2, gsn) = (w.id(child1), w.id(child2), w.id(helper));
    let addr = w.node(child2).observed_addr().expect("observed");
    w.node_do(child1, |n, now| n.reach(now, id2, addr));
    w.run_for(Duration::from_secs(5));
    assert_eq!(w.node(child1).relayed_via(&id2), Some(gsn));
    // Fifteen minutes of traffic between two symmetric NATs: every try fails, the session
    // stays on the relay throughout, and the tries back off (30, 60, 120, 240, 480 s).
    for rpc in 0..900 {
        ping_over_session(&mut w, child1, child2, rpc);
        w.run_for(Duration::from_secs(1));
        assert_eq!(
            w.node(child1).relayed_via(&id2),
            Some(gsn),
            "left the relay at {rpc} s: {:?} {:?} {:?}",
            w.node(child1).endpoint().peer_addr(&id2),
            w.node(child1).gsn_stats(),
            w.node(helper).gsn_stats()
        );
    }
    let (low, high) = if id1 < id2 { (child1, child2) } else { (child2, child1) };
    let tries = w.node(low).gsn_stats().upgrade_tries;
    assert!((3..=5).contains(&tries), "{tries} tries in 15 minutes");
    assert_eq!(w.node(high).gsn_stats().upgrade_tries, 0, "only the lower id asks");
    assert_eq!(w.node(low).gsn_stats().upgraded, 0);
}

#[test]
fn a_node_behind_a_filtering_nat_asks_its_introduction_at_once() {
    let (mut w, helper, [_, child1], [_, child2]) = world(64);
    assert!(w.node(child1).dial_waits_for_introduction(), "{}", w.node(child1).nat_class());
    assert!(!w.node(helper).dial_waits_for_introduction(), "a public node dials as it is");
    let (target, addr) = (w.id(child2), w.node(child2).observed_addr().expect("observed"));
    let asked = w.node(child1).intro_stats().asked;
    w.node_do(child1, |n, now| n.reach(now, target, addr));
    // Well before `introduce_after` (500 ms), which a dial that may reach the peer waits.
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.node(child1).intro_stats().asked, asked + 1);
    w.run_for(Duration::from_secs(5));
    assert!(w.node(child1).endpoint().is_connected(&target), "no session");
}
