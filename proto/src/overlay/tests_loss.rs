//! Failover and presence under heavy loss (issue 19): a standby must not take a live LSN's
//! role for a run of lost datagrams, a mistaken takeover is undone without parting anyone,
//! and a lost Join does not make its sender lead a second LSN.

use std::time::Duration;

use super::{MasterEvent, NodeEvent, NodeState, PresenceEvent};
use crate::sim::Simulation as World;

const SEC: Duration = Duration::from_secs(1);
/// Second LSNs led in the join sweep below (60 seeds), at most. Measured 6: once DHT client
/// mode removed the DHT's early sessions with the LSN, 13 (as with the DHT off), until a
/// Join's resend also sends the unfinished handshake again (`find.rs`). Earlier: 4 with the
/// NAT check on (2 with it off: its traffic only moves which seeds lose a Join); with one
/// Join per candidate it was 9 in the first 20 seeds alone. The bound had been the exact figure of
/// one RNG sequence over 20 seeds, so any change in traffic broke it.
const LED_AT_MOST: usize = 6;

fn subnet(seed: u64, per: usize) -> World {
    let mut w = World::new(seed);
    for _ in 0..per {
        w.add(1);
    }
    w
}

fn lsns(w: &World) -> Vec<usize> {
    (0..w.slots.len())
        .filter(|&i| w.slots[i].node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn))
        .collect()
}

/// Takeovers by any node since `from`.
fn takeovers(w: &World, from: Duration) -> usize {
    let from = crate::Timestamp::ZERO + from;
    let took = |(t, e): &&(crate::Timestamp, NodeEvent)| {
        *t >= from && matches!(e, NodeEvent::BecameLsn { takeover_from: Some(_) })
    };
    w.slots.iter().map(|s| s.events.iter().filter(took).count()).sum()
}

/// The master's Parted events so far.
fn parted(w: &World) -> usize {
    let is = |(_, e): &&(crate::Timestamp, MasterEvent)| {
        matches!(e, MasterEvent::Presence(PresenceEvent::Parted { .. }))
    };
    w.master_events.iter().filter(is).count()
}

#[test]
fn twenty_percent_loss_never_makes_a_standby_take_over_from_a_live_lsn() {
    // Every lost heartbeat starts a confirmation; with four pings, all four round trips
    // failed 1.7 % of the time and the standby took over from a live LSN every few minutes.
    let mut w = subnet(61, 8);
    w.net.loss = 0.2;
    w.run_until(120 * SEC, |w| w.all_present());
    w.run_until(120 * SEC, |w| lsns(w).len() == 1);
    w.run_for(30 * SEC);
    let from = w.now.saturating_since(crate::Timestamp::ZERO);
    let lsn = lsns(&w);
    w.run_for(600 * SEC);
    assert_eq!(takeovers(&w, from), 0, "a standby took over from a live LSN");
    assert_eq!(lsns(&w), lsn);
}

/// A subnet of `per` with its LSN and hot standby, settled; the link between the two is cut
/// for 3 s, so the standby takes over from the live LSN (nothing else is lost).
fn mistaken_takeover(seed: u64, per: usize, master_down: bool) -> (World, usize, usize) {
    let mut w = subnet(seed, per);
    w.run_until(30 * SEC, |w| w.all_present());
    w.run_for(10 * SEC);
    let lsn = lsns(&w)[0];
    let standby = w.slot_of_id(&w.node(lsn).children()[0]).expect("a standby");
    if master_down {
        w.crash_master();
    }
    w.partition(lsn, &[standby], false);
    w.run_for(3 * SEC);
    assert_eq!(w.node(standby).state(), NodeState::IsLsn, "the cut makes the standby take over");
    w.partition(lsn, &[standby], true);
    (w, lsn, standby)
}

#[test]
fn a_standby_that_took_over_from_a_live_lsn_hands_the_role_back_when_it_hears_it() {
    // With the master down nobody names the two LSNs to each other: the old LSN's heartbeat,
    // which still comes to its standby, is the evidence. (Before, the standby led a second
    // LSN until the master was back and listed them.)
    let (mut w, lsn, standby) = mistaken_takeover(62, 8, true);
    let took = w.run_until(30 * SEC, |w| lsns(w) == [lsn]);
    assert!(took <= 5 * SEC, "handed back after {took:?}; LSNs {:?}", lsns(&w));
    let lsn_id = w.id(lsn);
    w.run_until(10 * SEC, |w| w.node(standby).lsn() == Some(lsn_id));
}

#[test]
fn after_a_mistaken_takeover_every_node_stays_present_at_the_master() {
    // The standby's report moved the LSN's children to it at the master; when it handed
    // back, those that never left the LSN waited for the LSN to report them, which it did
    // only when a digest happened to differ, and a lost Resync was never asked again: at
    // 20 % loss they parted and stayed absent while attached. Twenty nodes: the standby
    // announces its takeover 400 ms apart and hands back before the last.
    for seed in [63, 67, 68, 69] {
        let (mut w, lsn, _) = mistaken_takeover(seed, 20, false);
        w.net.loss = 0.2;
        w.run_for(150 * SEC);
        w.net.loss = 0.0;
        w.run_for(5 * SEC);
        let topo = w.master().topology();
        assert_eq!(lsns(&w), [lsn], "seed {seed}");
        assert!(w.all_present(), "seed {seed}: {}", topo.render(|id| w.name(id)));
        let log: Vec<String> = w
            .master_events
            .iter()
            .filter_map(|(t, e)| match e {
                MasterEvent::Presence(p) => Some(format!("{t:?} {p:?}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            parted(&w),
            0,
            "seed {seed}: {}\n{}",
            topo.render(|id| w.name(id)),
            log.join("\n")
        );
    }
}

#[test]
fn nodes_joining_at_twenty_percent_loss_rarely_lead_a_second_lsn() {
    // A Join lost (or its Ack) sent the node to the master, which names no LSN to a querier
    // asking again within a minute: it led a second LSN of its own.
    let mut extra = Vec::new();
    for seed in 60..120 {
        let mut w = subnet(seed, 10);
        w.net.loss = 0.2;
        w.run_for(60 * SEC);
        let led = |(_, e): &&(crate::Timestamp, NodeEvent)| {
            matches!(e, NodeEvent::BecameLsn { takeover_from: None })
        };
        let leaders: usize = w.slots.iter().map(|s| s.events.iter().filter(led).count()).sum();
        extra.push(leaders.saturating_sub(1));
    }
    let total: usize = extra.iter().sum();
    println!("second LSNs led, by seed: {extra:?} ({total} in all)");
    assert!(total <= LED_AT_MOST, "{extra:?}");
}

#[test]
fn a_live_child_its_lsn_reported_lost_is_present_again() {
    // Reported lost after its answers were lost, the child still believed it was the LSN's:
    // nothing pinged it, our Pong satisfied its probe, and it stayed absent while attached.
    // `cut`: how long the LSN's words to the child are lost after the report.
    for cut in [None, Some(SEC), Some(15 * SEC)] {
        let mut w = subnet(70, 6);
        w.run_until(30 * SEC, |w| w.all_present());
        w.run_for(5 * SEC);
        let lsn = lsns(&w)[0];
        // The last-ranked child: no standby, which would take over while cut off.
        let id = *w.node(lsn).children().last().expect("a child");
        let child = w.slot_of_id(&id).expect("its slot");
        if cut.is_some() {
            w.partition(lsn, &[child], false);
        }
        w.node_do(lsn, |n, now| n.lose_child(now, id));
        w.run_for(cut.unwrap_or(SEC));
        let lost = |(_, e): &(crate::Timestamp, MasterEvent)| matches!(e, MasterEvent::Presence(PresenceEvent::Parted { node, .. }) if *node == id);
        // Told at once, it rejoins before the report leaves: the master never parts it.
        assert_eq!(w.master_events.iter().any(lost), cut.is_some());
        w.partition(lsn, &[child], true);
        let silence = w.node(child).config().lsn_silence;
        let took = w.run_until(silence + 70 * SEC, |w| w.master().is_present(&id));
        assert_eq!(w.node(child).lsn(), Some(w.id(lsn)));
        match cut {
            None => assert!(took <= SEC, "present again after {took:?}"),
            // The LSN tells it again every 2 s: the first tell after the cut brings it back.
            Some(c) if c == SEC => assert!(took <= 3 * SEC, "present again after {took:?}"),
            // Past the tells, the child's own probe after its `lsn_silence` does.
            Some(_) => assert!(took > 30 * SEC, "back after {took:?}, before any probe"),
        }
    }
}

/// Issue 19's loss scenario, swept over 20 seeds in the simulator: 40 nodes in 4 subnets, 20 %
/// loss on every datagram, checked each second for 3 minutes once every node has joined.
/// Targets: every node present at ≥ 99 % of the checks, no Parted (nothing crashes), no
/// subnet led by two LSNs for more than 10 s. (The turmoil version, on real sockets' driver,
/// is `tests/turmoil_presence.rs`.) `FLEETMESH_LOSS_MINUTES` runs it longer (the issue's
/// target is stated for 10 minutes; 3 keep CI short).
#[test]
fn twenty_percent_loss_for_three_minutes_keeps_every_node_present_over_twenty_seeds() {
    let minutes: u32 = std::env::var("FLEETMESH_LOSS_MINUTES")
        .map_or(3, |m| m.parse().expect("FLEETMESH_LOSS_MINUTES: whole minutes"));
    let mut rows = Vec::new();
    for seed in 300..320 {
        let mut w = World::new(seed);
        for s in 1..=4 {
            for _ in 0..10 {
                w.add(s);
            }
        }
        w.net.loss = 0.2;
        w.run_until(120 * SEC, |w| w.all_present());
        let parted_before = parted(&w);
        let (mut present, mut dup_for, mut longest_dup) = (0u32, [0u32; 5], 0u32);
        for _ in 0..60 * minutes {
            w.run_for(SEC);
            present += u32::from(w.all_present());
            let mut per_subnet = [0u32; 5];
            for i in lsns(&w) {
                per_subnet[usize::from(w.slots[i].subnet())] += 1;
            }
            for s in 1..=4 {
                dup_for[s] = if per_subnet[s] > 1 { dup_for[s] + 1 } else { 0 };
                longest_dup = longest_dup.max(dup_for[s]);
            }
        }
        let pct = f64::from(present) * 100.0 / f64::from(60 * minutes);
        rows.push((seed, pct, parted(&w) - parted_before, longest_dup));
    }
    for (seed, pct, parted, dup) in &rows {
        println!("seed {seed}: every node present at {pct:.1} % of checks, Parted {parted}, longest duplicate LSN {dup} s");
    }
    let missed: Vec<_> = rows.iter().filter(|r| r.1 < 99.0 || r.2 > 0 || r.3 > 10).collect();
    assert!(missed.is_empty(), "off target: {missed:?}");
}

/// Seed 338 of the 10-minute sweep: a standby took its live LSN for dead at 20 % loss, adopted
/// its children and reported them; the children, checking the claim, stayed, and the rival
/// yielded back. The master handed the LSN the children it still filed under the rival, but
/// the LSN skipped every child it already had, so six stayed absent at the master for good.
/// Now an LSN reports again the children an Adopt names that it already has.
#[test]
fn children_the_master_hands_back_to_the_lsn_they_never_left_are_present_again() {
    let mut w = World::new(338);
    for s in 1..=4 {
        for _ in 0..10 {
            w.add(s);
        }
    }
    w.net.loss = 0.2;
    let took = w.run_until(120 * SEC, |w| w.all_present());
    assert!(took <= 60 * SEC, "every node present only after {took:?}");
}
