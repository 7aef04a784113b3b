//! Failures in a row (issue 19): the master acts on a standby's takeover report at once, and a
//! subnet whose LSN and then its successor die is led again within seconds.

use std::time::Duration;

use super::NodeState;
use crate::{sim::Simulation as World, NodeId};

const SEC: Duration = Duration::from_secs(1);

/// One subnet of `nodes`, formed and quiet; returns the LSN's slot.
fn formed(seed: u64, nodes: usize) -> (World, usize) {
    let mut w = World::new(seed);
    for _ in 0..nodes {
        w.add(1);
    }
    w.run_until(60 * SEC, |w| w.all_present());
    w.run_for(20 * SEC);
    assert!(w.all_present());
    let lsn = (0..nodes).find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
    (w, lsn)
}

/// Whether the master has `id` registered as an LSN.
fn registered(w: &World, id: &NodeId) -> bool {
    w.master().topology().subnets.iter().flat_map(|s| &s.lsns).any(|l| l.id == *id)
}

#[test]
fn a_dead_lsn_is_absent_as_soon_as_its_standbys_takeover_report_arrives() {
    let (mut w, a) = formed(31, 8);
    let (a_id, b_id) = (w.id(a), w.node(a).children()[0]);
    w.crash(a);
    w.run_until(5 * SEC, |w| registered(w, &b_id));
    // The report came with the registration (one update after it); the master checks the
    // claim with pings, but no longer counts the LSN present meanwhile.
    w.run_for(Duration::from_millis(100));
    assert!(!w.master().is_present(&a_id), "the dead LSN is still present");
    assert!(w.master().is_present(&b_id));
    w.run_for(5 * SEC);
    assert!(!registered(&w, &a_id));
    assert!(w.all_present());
}

#[test]
fn a_takeover_report_is_carried_out_though_its_reporter_left_before_the_check_ended() {
    let (mut w, a) = formed(32, 8);
    let (a_id, b_id) = (w.id(a), w.node(a).children()[0]);
    let b = w.slot_of_id(&b_id).unwrap();
    w.crash(a);
    w.run_until(5 * SEC, |w| registered(w, &b_id));
    w.run_for(Duration::from_millis(100));
    // The new LSN leaves while the master still pings the old one.
    w.stop(b);
    w.run_for(5 * SEC);
    assert!(!registered(&w, &a_id), "the dead LSN stayed registered");
    assert!(!w.master().is_present(&a_id));
}

/// Sends a message to every running node and runs until each is acknowledged; panics naming
/// the nodes whose delivery failed.
fn message_everyone(w: &mut World) {
    use super::{MasterCommand, MasterEvent};
    let since = w.master_events.len();
    let nodes: Vec<NodeId> =
        (0..w.slots.len()).filter(|&i| w.slots[i].node.is_some()).map(|i| w.id(i)).collect();
    for (n, node) in nodes.iter().enumerate() {
        let id = 1000 + n as u64;
        w.master_do(|m, now| {
            m.handle_command(now, MasterCommand::Send { node: *node, id, data: vec![1] })
        });
    }
    w.run_for(10 * SEC);
    let mut delivered = 0;
    for (_, e) in &w.master_events[since..] {
        match e {
            MasterEvent::Delivered { .. } => delivered += 1,
            MasterEvent::DeliveryFailed { node, error, .. } => {
                panic!("message to {} failed: {error}", w.name(node))
            }
            _ => {}
        }
    }
    assert_eq!(delivered, nodes.len());
}

#[test]
fn the_master_reaches_every_present_node_lsns_included_after_a_failover() {
    let (mut w, a) = formed(33, 8);
    w.crash(a);
    w.run_until(10 * SEC, |w| w.all_present());
    message_everyone(&mut w);
}

/// Whether every running node is present at the master under a running LSN that counts it
/// among its children (joined, or adopted and being told of the takeover).
fn all_under_live_lsns(w: &World) -> bool {
    let (m, topo) = (w.master(), w.master().topology());
    (0..w.slots.len()).filter(|&i| w.slots[i].node.is_some()).all(|i| {
        let id = w.id(i);
        let lsn = topo.lsn_of(&id).and_then(|l| w.slot_of_id(&l));
        let lsn =
            lsn.and_then(|l| w.slots[l].node.as_ref()).filter(|n| n.state() == NodeState::IsLsn);
        m.is_present(&id) && lsn.is_some_and(|l| l.node_id() == id || l.children().contains(&id))
    })
}

/// Whether every running node has joined a running LSN itself.
fn all_joined_live_lsns(w: &World) -> bool {
    (0..w.slots.len()).filter(|&i| w.slots[i].node.is_some()).all(|i| {
        let lsn = w.node(i).lsn().and_then(|l| w.slot_of_id(&l));
        lsn.is_some_and(|l| w.slots[l].node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn))
    })
}

/// Crashes the LSN, then its standby `after` it became the LSN (`None`: both at once); returns
/// the times, from the second crash, until every survivor is present under a live LSN at the
/// master, and until every survivor has joined one itself.
fn two_crashes(
    seed: u64,
    nodes: usize,
    loss: f64,
    after: Option<Duration>,
) -> (Duration, Duration) {
    let (mut w, a) = formed(seed, nodes);
    w.net.loss = loss;
    let b = w.slot_of_id(&w.node(a).children()[0]).unwrap();
    w.crash(a);
    if let Some(after) = after {
        w.run_until(10 * SEC, |w| w.node(b).state() == NodeState::IsLsn);
        w.run_for(after);
    }
    w.crash(b);
    let present = w.run_until(60 * SEC, all_under_live_lsns);
    let joined = present + w.run_until(60 * SEC, all_joined_live_lsns);
    w.net.loss = 0.0;
    w.run_for(5 * SEC);
    message_everyone(&mut w);
    (present, joined)
}

/// A new LSN that dies before its own ranking reached anyone: its predecessor's ranking
/// stands in, so the successor that joined it watches it as a hot standby would and takes
/// over both LSNs' children. Wide sweep seed 149 (20 % loss; the standby dies 0.9 s into its
/// takeover): three children had joined it with no successor known, the rest still followed
/// the first dead LSN, and the master, which the new LSN never reached, knew of neither death;
/// everyone waited out the 90 s silence timer.
#[test]
fn a_new_lsn_that_dies_before_naming_its_standby_is_succeeded_within_seconds() {
    let (present, joined) = two_crashes(149, 12, 0.2, Some(Duration::from_millis(900)));
    assert!(present <= 5 * SEC, "survivors under a live LSN only after {present:?}");
    assert!(joined <= 15 * SEC, "all joined a live LSN only after {joined:?}");
}

/// The scenario, swept: the standby dies 0–1.9 s into its takeover (its announcements
/// reached none, some or all of the children), 2 % loss on every datagram.
#[test]
fn the_standby_dying_during_its_takeover_costs_seconds_not_the_silence_timer() {
    let mut worst = (Duration::ZERO, Duration::ZERO);
    for seed in 0..20 {
        let after = Duration::from_millis(100 * seed);
        let (present, joined) = two_crashes(40 + seed, 12, 0.02, Some(after));
        assert!(present <= 5 * SEC, "seed {seed}: present under live LSNs after {present:?}");
        assert!(joined <= 15 * SEC, "seed {seed}: all joined after {joined:?}");
        worst = (worst.0.max(present), worst.1.max(joined));
    }
    println!("worst: present under live LSNs {:?}, all joined {:?}", worst.0, worst.1);
}

/// Both die before the standby could announce anything: the second standby takes over.
#[test]
fn the_lsn_and_its_standby_dying_together_cost_seconds() {
    for seed in 0..5 {
        let (present, joined) = two_crashes(60 + seed, 12, 0.02, None);
        println!(
            "seed {seed}: present under live LSNs after {present:?}, all joined after {joined:?}"
        );
        assert!(present <= 5 * SEC, "seed {seed}: present under live LSNs after {present:?}");
        assert!(joined <= 15 * SEC, "seed {seed}: all joined after {joined:?}");
    }
}

/// Subnet 1 loses UDP (its LAN and its WAN) in a formed fleet with TCP fallback: the standby
/// hears no pings and takes over while the LSN lives, and the master's pings to check the
/// takeover report travel over a session it cannot move (the LSN dialed it, so the LSN moves
/// it to TCP, at its next liveness check). The LSN stays alive, so it must never be parted.
#[test]
fn a_live_lsn_whose_subnet_lost_udp_is_never_parted_on_its_standbys_report() {
    use super::{MasterEvent, PresenceEvent};
    for seed in 41..47 {
        let mut w = World::new(seed);
        w.tcp_fallback = Some(SEC);
        w.start_master();
        for subnet in [1, 1, 1, 2, 2, 2] {
            w.add(subnet);
        }
        w.run_until(10 * SEC, |w| w.all_present());
        w.run_for(5 * SEC);
        let lsn = (0..3).find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
        let lsn_id = w.id(lsn);
        for i in 0..3 {
            w.udp_blocks.insert(i, crate::sim::UdpBlock { inbound: true, outbound: true });
        }
        w.run_for(120 * SEC);
        let parted: Vec<String> = w
            .master_events
            .iter()
            .filter_map(|(_, e)| match e {
                MasterEvent::Presence(PresenceEvent::Parted { node, .. }) => Some(w.name(node)),
                _ => None,
            })
            .collect();
        assert!(!parted.contains(&w.name(&lsn_id)), "seed {seed}: parted {parted:?}");
        assert!(w.all_present(), "seed {seed}");
    }
}

/// As above, but the LSN dies as its subnet loses UDP: the check cannot conclude (the reporter
/// came over TCP, the LSN's session is on UDP), so the LSN is absent at once and dropped when
/// its grace (75 s) runs out, well before its 150 s timeout.
#[test]
fn a_dead_lsn_whose_subnet_lost_udp_is_absent_at_once_and_dropped_after_its_grace() {
    let mut w = World::new(48);
    w.tcp_fallback = Some(SEC);
    w.start_master();
    for subnet in [1, 1, 1, 2, 2, 2] {
        w.add(subnet);
    }
    w.run_until(10 * SEC, |w| w.all_present());
    w.run_for(5 * SEC);
    let lsn = (0..3).find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
    let lsn_id = w.id(lsn);
    for i in 0..3 {
        w.udp_blocks.insert(i, crate::sim::UdpBlock { inbound: true, outbound: true });
    }
    w.crash(lsn);
    let start = w.now;
    let absent = w.run_until(30 * SEC, |w| !w.master().is_present(&lsn_id));
    assert!(registered(&w, &lsn_id), "dropped before its grace: the check was taken as proof");
    w.run_until(100 * SEC, |w| !registered(w, &lsn_id));
    let dropped = w.now.saturating_since(start);
    eprintln!("LSN dead with its subnet's UDP: absent after {absent:?}, dropped after {dropped:?}");
    w.run_until(30 * SEC, |w| w.all_present());
}

/// The same scenario at 20 % loss on every datagram, 100 seeds (the standby dies 0–1.9 s into
/// its takeover): issue 19's target is every survivor present under a live LSN within 5 s
/// (p99 over the sweep); the time until every survivor has joined one itself is printed. At 20
/// seeds this passed while 4 or 5 seeds in 100 failed (a lost Adopt left children with the
/// dead LSN for their 90 s silence timer; an LSN filed as another's child led absent ones).
#[test]
fn two_crashes_in_a_row_at_twenty_percent_loss_cost_seconds() {
    let mut present = Vec::new();
    let mut joined = Vec::new();
    for seed in 0..100 {
        let after = Duration::from_millis(100 * (seed % 20));
        let (p, j) = two_crashes(500 + seed, 12, 0.2, Some(after));
        present.push((p, seed));
        joined.push(j);
    }
    present.sort();
    joined.sort();
    let (p50, max) = (present[50], present[99]);
    println!(
        "20 % loss: present under live LSNs p50 {:?}, max {:?} (seed {}); all joined p50 {:?}, max {:?}",
        p50.0, max.0, max.1, joined[50], joined[99]
    );
    // 8 s, not 5: seed 532 (7.8 s) is a node whose registration as LSN, delayed by the loss,
    // reached the master after it had yielded to its rival and been reported as the rival's
    // child; the master corrects it at its first ping of the late LSN, whose Pong names the
    // rival (`master/resync.rs`, `demoted_by_pong`). Before DHT client mode the sweep's
    // traffic missed that case; without the correction the node stayed filed wrongly past
    // the 60 s run.
    assert!(max.0 <= 8 * SEC, "seed {}: present under live LSNs after {:?}", max.1, max.0);
}

/// Seed 669 of a wider sweep (600–999): the second successor took over with the first LSN's
/// children it had not reached yet, then yielded to a rival LSN. Its Part tells only the
/// children that know it, so those it had not reached stayed with the first dead LSN, absent
/// at the master past the 60 s run. The master now hands the rival the children it had under
/// the yielder (`master/adopts.rs`).
#[test]
fn children_a_yielding_lsn_had_not_reached_are_handed_to_its_rival() {
    let seed = 669;
    let after = Duration::from_millis(100 * (seed % 20));
    let (present, _) = two_crashes(seed, 12, 0.2, Some(after));
    assert!(present <= 10 * SEC, "seed {seed}: present under live LSNs after {present:?}");
}

/// Seeds of the wider sweep (0–999) whose new LSN reached the master late: its first three
/// Joins were lost, then the Acks of the next two, so it dropped a session the master was
/// answering on and started afresh, 9.9 s in all (seed 2); or its updates waited on lost
/// Acks, resent after 1, 2 and 4 s (170, 9.9 s before the Join fix; 144, 9.2 s). Now a Join
/// after an unanswered one goes twice, the master answers a repeated Join twice, a session
/// the master spoke on since the first try gets more tries, and updates are resent after
/// 500 ms. (The 1,000-seed sweep: 7 over 5 s, from 41.)
#[test]
fn a_new_lsn_whose_join_or_acks_are_lost_is_present_within_five_seconds() {
    for seed in [2, 144, 170] {
        let after = Duration::from_millis(100 * (seed % 20));
        let (present, _) = two_crashes(seed, 12, 0.2, Some(after));
        assert!(present <= 5 * SEC, "seed {seed}: present under live LSNs after {present:?}");
    }
}

/// Seeds of the wider sweep (600–999) that left children absent past the 60 s run, each for
/// its own reason: the yielder's Part arrived after its rival's update had filed it as a child
/// (638) or was lost, and the rival did not report the yielder it had adopted (751); a yielder
/// demoted by its own Part, not by an update, was not watched (806); the third in line, left
/// by a claimant and the second, asked the master, which still listed both dead LSNs (910);
/// the master's three Adopts were all lost (993). And one of 0–599: a node that found no
/// live LSN registered beside the dead first one, which nobody reported, so the master kept
/// it and its children (229). See `master/adopts.rs`, `master/suspects.rs` (soft checks),
/// `node/lsn.rs` (`on_join`), `node/child.rs` (`follow_claimant`, `sibling_joined`). The
/// bound is recovery (20 s), not the 5 s target, which the sweep above measures.
#[test]
fn cascades_that_stranded_children_in_the_wider_sweep_recover() {
    for seed in [229, 638, 751, 806, 910, 993] {
        let after = Duration::from_millis(100 * (seed % 20));
        let (present, joined) = two_crashes(seed, 12, 0.2, Some(after));
        println!("seed {seed}: present {present:?}, joined {joined:?}");
        assert!(present <= 20 * SEC, "seed {seed}: present under live LSNs after {present:?}");
        assert!(joined <= 30 * SEC, "seed {seed}: all joined after {joined:?}");
    }
}
