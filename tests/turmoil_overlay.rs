//! Whole-network overlay tests: the scenarios of the core's virtual-time overlay tests
//! (`src/overlay/tests.rs`), run by real nodes and a real master under the real driver, over
//! the real UDP transport, inside turmoil with fixed seeds. LAN links have 1 ms of latency,
//! WAN links (between subnets, to the master) 20 ms; every timer has its default value.

use std::{collections::BTreeSet, time::Duration};

use fleetmesh::{
    overlay::{
        DeliveryError, MasterCommand, MasterConfig, MasterEvent, NodeCommand, NodeEvent,
        PresenceEvent,
    },
    wire::PartReason,
    NodeId,
};
use fleetmesh_testkit::{OverlayFleet, MASTER_HOST};

const SEC: Duration = Duration::from_secs(1);

/// `subnets` subnets of `per` nodes each, all starting at once.
fn fleet(seed: u64, subnets: u8, per: usize) -> OverlayFleet<'static> {
    let mut fleet = OverlayFleet::builder(seed).build();
    for subnet in 1..=subnets {
        fleet.add_subnet(subnet, per);
    }
    fleet
}

/// The children of `lsn` at the master, by host name.
fn children_at_master(fleet: &OverlayFleet, lsn: &str) -> BTreeSet<String> {
    let id = fleet.node_id(lsn);
    let topology = fleet.topology().expect("the master is up");
    topology
        .subnets
        .iter()
        .flat_map(|s| &s.lsns)
        .filter(|l| l.id == id)
        .flat_map(|l| &l.children)
        .map(|c| fleet.name(&c.id))
        .collect()
}

/// Runs until everything is present; returns how long that took.
fn converge(fleet: &mut OverlayFleet, max: Duration) -> Duration {
    fleet.run_until(max, |f| f.all_present()).unwrap_or_else(|e| panic!("{e}"))
}

/// One run of the 3 × 8 scenario: the rendered topology, and the time it took to converge.
fn three_by_eight(seed: u64) -> (String, Duration) {
    let mut fleet = fleet(seed, 3, 8);
    let took = converge(&mut fleet, 30 * SEC);
    fleet.run_for(5 * SEC).unwrap();
    assert!(fleet.all_present(), "{}", fleet.render_topology());
    let topology = fleet.topology().unwrap();
    assert_eq!(topology.subnets.len(), 3, "{}", fleet.render_topology());
    assert_eq!(topology.present(), 24);
    assert!(topology.pending.is_empty());
    for subnet in 1..=3 {
        let lsns = fleet.lsns_in(subnet);
        assert_eq!(lsns.len(), 1, "subnet {subnet}: {lsns:?}");
        let lsn = &lsns[0];
        let others: BTreeSet<String> =
            fleet.hosts_in(subnet).into_iter().filter(|h| h != lsn).collect();
        assert_eq!(others.len(), 7);
        assert_eq!(children_at_master(&fleet, lsn), others, "subnet {subnet}");
        assert_eq!(fleet.ranked_children(lsn).into_iter().collect::<BTreeSet<_>>(), others);
    }
    (fleet.render_topology(), took)
}

#[test]
fn three_subnets_of_eight_are_all_present_under_one_lsn_each() {
    let (dump, took) = three_by_eight(1);
    eprintln!("3 x 8 nodes converged in {took:?} of simulated time");
    assert!(took < 10 * SEC, "took {took:?}");
    // The same seed gives the same overlay.
    let (again, took_again) = three_by_eight(1);
    assert_eq!(dump, again);
    assert_eq!(took, took_again);
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("overlay_topology_3x8", dump);
    });
}

#[test]
fn lsn_crash_the_hot_standby_takes_over() {
    let mut fleet = fleet(2, 1, 8);
    converge(&mut fleet, 30 * SEC);
    fleet.run_for(3 * SEC).unwrap();
    let old = fleet.lsns_in(1).pop().expect("subnet 1 has an LSN");
    let old_id = fleet.node_id(&old);
    let standby = fleet.ranked_children(&old)[0].clone();
    let survivors: Vec<String> = fleet.hosts_in(1).into_iter().filter(|h| *h != old).collect();
    fleet.crash(&old);
    // Every child is present again under the new LSN...
    let rerouted = fleet
        .run_until(10 * SEC, |f| {
            survivors.iter().all(|h| f.with_master(|m| m.is_present(&f.node_id(h))) == Some(true))
                && survivors.iter().all(|h| f.lsn_of(h).is_some_and(|l| l != old))
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // ...and the master, having checked that the old LSN is silent, shows only the new one.
    let confirmed = rerouted
        + fleet
            .run_until(10 * SEC, |f| {
                f.topology().is_some_and(|t| t.lsn_count() == 1 && t.lsn_of(&old_id).is_none())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "LSN failover (simulated time after the crash): children present under the new LSN \
         after {rerouted:?}, old LSN gone from the master's topology after {confirmed:?}"
    );
    assert!(rerouted < 5 * SEC, "recovery took {rerouted:?}");
    assert!(confirmed < 5 * SEC, "the master took {confirmed:?}");
    // The top-ranked child took over, and every other child followed it.
    assert_eq!(fleet.lsns_in(1), vec![standby.clone()]);
    let others: BTreeSet<String> = survivors.iter().filter(|h| **h != standby).cloned().collect();
    assert_eq!(children_at_master(&fleet, &standby), others, "{}", fleet.render_topology());
    assert!(fleet
        .node_events(&standby)
        .contains(&NodeEvent::BecameLsn { takeover_from: Some(old_id) }));
    assert!(
        fleet
            .presence()
            .contains(&PresenceEvent::Parted { node: old_id, reason: PartReason::Lost }),
        "{:?}",
        fleet.presence()
    );
}

/// A subnet of six whose LSN has served 30 s, split in two: the LSN and its lowest-ranked child
/// on one side, the other four (the hot standby among them) on the other. Both halves still
/// reach the master. Runs until the standby has taken over its half and registered; returns
/// (LSN, kept child, the four others, the rival LSN).
fn split_subnet(fleet: &mut OverlayFleet) -> (String, String, Vec<String>, String) {
    converge(fleet, 30 * SEC);
    // Let the LSN serve a while, so uptime (not the id tie-break) decides.
    fleet.run_for(30 * SEC).unwrap();
    let lsn = fleet.lsns_in(1).pop().expect("subnet 1 has an LSN");
    let kept = fleet.ranked_children(&lsn).pop().expect("the LSN has children");
    let others: Vec<String> =
        fleet.hosts_in(1).into_iter().filter(|h| *h != lsn && *h != kept).collect();
    let far: Vec<&str> = others.iter().map(String::as_str).collect();
    fleet.partition(&[&lsn, &kept], &far);
    fleet
        .run_until(120 * SEC, |f| {
            f.lsns_in(1).len() == 2 && f.topology().is_some_and(|t| t.lsn_count() == 2)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let rival = fleet.lsns_in(1).into_iter().find(|h| *h != lsn).unwrap();
    assert!(others.contains(&rival));
    (lsn, kept, others, rival)
}

#[test]
fn two_lsns_in_one_subnet_settle_on_one_after_a_partition_heals() {
    let mut fleet = fleet(7, 1, 6);
    let (lsn, kept, others, rival) = split_subnet(&mut fleet);
    // Both halves run with their own LSN for a while.
    fleet.run_for(5 * SEC).unwrap();
    assert_eq!(fleet.lsns_in(1).len(), 2);
    let far: Vec<&str> = others.iter().map(String::as_str).collect();
    fleet.repair(&[&lsn, &kept], &far);
    let took = fleet
        .run_until(120 * SEC, |f| {
            f.lsns_in(1).len() == 1
                && f.topology().is_some_and(|t| t.lsn_count() == 1)
                && f.all_present()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("two LSNs settled {took:?} after the partition healed");
    // The longer-serving LSN stayed; the other yielded, and its children moved over.
    assert_eq!(fleet.lsns_in(1), vec![lsn.clone()]);
    let all_but_lsn: BTreeSet<String> =
        fleet.hosts_in(1).into_iter().filter(|h| *h != lsn).collect();
    assert_eq!(children_at_master(&fleet, &lsn), all_but_lsn, "{}", fleet.render_topology());
    let rival_id = fleet.node_id(&rival);
    assert!(fleet
        .presence()
        .iter()
        .any(|p| matches!(p, PresenceEvent::Rerouted { node, .. } if *node == rival_id)));
}

/// A LAN split that leaves the hot standby apart from its LSN: the standby takes over and
/// reports the LSN it replaced as dead, but the master still reaches that LSN, so it keeps it
/// and its remaining children present (once, it reported the live LSN `Parted { Lost }` and
/// held its children pending until the LSN's next keepalive re-registered it).
#[test]
fn a_lan_split_keeps_the_live_lsn_and_its_children_present() {
    let mut fleet = fleet(7, 1, 6);
    let (lsn, kept, _, _) = split_subnet(&mut fleet);
    fleet.run_for(5 * SEC).unwrap();
    let (lsn_id, kept_id) = (fleet.node_id(&lsn), fleet.node_id(&kept));
    assert!(
        !fleet
            .presence()
            .iter()
            .any(|p| matches!(p, PresenceEvent::Parted { node, .. } if *node == lsn_id)),
        "{:?}",
        fleet.presence()
    );
    assert_eq!(fleet.topology().unwrap().lsn_count(), 2, "{}", fleet.render_topology());
    assert_eq!(fleet.with_master(|m| m.is_present(&kept_id)), Some(true));
}

#[test]
fn announced_part_and_unannounced_loss_are_reported_with_their_reason() {
    let mut fleet = fleet(3, 1, 4);
    converge(&mut fleet, 30 * SEC);
    let lsn = fleet.lsns_in(1).pop().expect("subnet 1 has an LSN");
    let kids: Vec<String> = fleet.hosts_in(1).into_iter().filter(|h| *h != lsn).collect();
    let (leaver, victim) = (kids[0].clone(), kids[1].clone());
    let (leaver_id, victim_id) = (fleet.node_id(&leaver), fleet.node_id(&victim));
    fleet.command(&leaver, NodeCommand::Leave).unwrap();
    // Let the leaver's part go out before it stops.
    fleet.run_for(SEC).unwrap();
    fleet.crash(&leaver);
    fleet.crash(&victim);
    let shutdown = PresenceEvent::Parted { node: leaver_id, reason: PartReason::Shutdown };
    let lost = PresenceEvent::Parted { node: victim_id, reason: PartReason::Lost };
    let took = fleet
        .run_until(60 * SEC, |f| {
            let p = f.presence();
            p.contains(&shutdown) && p.contains(&lost)
        })
        .unwrap_or_else(|e| panic!("{e}\n{:?}", fleet.presence()));
    eprintln!("unannounced loss reported after {took:?}");
    fleet.run_for(5 * SEC).unwrap();
    assert!(fleet.all_present(), "{}", fleet.render_topology());
    assert_eq!(fleet.topology().unwrap().present(), 2);
    // Each is reported once, and only with its own reason.
    let parted: Vec<PresenceEvent> = fleet
        .presence()
        .into_iter()
        .filter(|p| matches!(p, PresenceEvent::Parted { .. }))
        .collect();
    assert_eq!(parted, vec![shutdown, lost]);
}

#[test]
fn a_node_moving_to_another_subnet_is_reported_moved() {
    let mut fleet = fleet(4, 2, 3);
    converge(&mut fleet, 30 * SEC);
    let old_lsn = fleet.lsns_in(1).pop().expect("subnet 1 has an LSN");
    let target = fleet.lsns_in(2).pop().expect("subnet 2 has an LSN");
    let mover = fleet.hosts_in(1).into_iter().find(|h| *h != old_lsn).unwrap();
    let mover_id = fleet.node_id(&mover);
    assert_eq!(fleet.lsn_of(&mover), Some(old_lsn.clone()));
    // The device now sits in subnet 2: its LAN (discovery) and local network are subnet 2's.
    let local = fleet.set_subnet(&mover, 2);
    fleet.command(&mover, NodeCommand::Move(local)).unwrap();
    let took = fleet
        .run_until(10 * SEC, |f| f.lsn_of(&mover).as_ref() == Some(&target))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("move reported after {took:?}");
    assert!(took < 5 * SEC, "move took {took:?}");
    let moved = PresenceEvent::Moved {
        node: mover_id,
        from: fleet.node_id(&old_lsn),
        to: fleet.node_id(&target),
    };
    assert!(fleet.presence().contains(&moved), "{:?}", fleet.presence());
    // Past the master's grace period, the mover is still present and was never parted.
    fleet.run_for(MasterConfig::default().grace + 10 * SEC).unwrap();
    assert!(!fleet
        .presence()
        .iter()
        .any(|p| matches!(p, PresenceEvent::Parted { node, .. } if *node == mover_id)));
    assert!(fleet.all_present(), "{}", fleet.render_topology());
    assert!(children_at_master(&fleet, &target).contains(&mover));
    assert!(!children_at_master(&fleet, &old_lsn).contains(&mover));
}

#[test]
fn ten_percent_loss_converges_and_stays_present() {
    let mut fleet = fleet(5, 3, 8);
    // Burst loss (turmoil's fail rate): a lost datagram takes everything in flight on its
    // link with it. Independent loss is in `turmoil_presence.rs`.
    fleet.set_burst_loss(0.10);
    let took = converge(&mut fleet, 120 * SEC);
    eprintln!("3 x 8 nodes converged through 10 % loss in {took:?}");
    // Stays present over three minutes of keepalives and pings through the lossy links.
    for round in 0..18 {
        fleet.run_for(10 * SEC).unwrap();
        assert!(
            fleet.all_present(),
            "round {round}: {}\n{:?}",
            fleet.render_topology(),
            fleet.presence().iter().rev().take(6).collect::<Vec<_>>()
        );
    }
    for subnet in 1..=3 {
        assert_eq!(fleet.lsns_in(subnet).len(), 1, "subnet {subnet}");
    }
}

#[test]
fn master_restart_rebuilds_full_presence() {
    let mut fleet = fleet(6, 3, 5);
    converge(&mut fleet, 30 * SEC);
    fleet.crash(MASTER_HOST);
    fleet.run_for(5 * SEC).unwrap();
    fleet.bounce(MASTER_HOST);
    // This master keeps nothing, so it cannot wake its LSNs (a durable one does, at once):
    // they notice at their next liveness check (`master_check`, 120 s, at the first keepalive
    // after it: ≤ 165 s), then five unanswered Pings (10 s) and the registration.
    let took = converge(&mut fleet, 300 * SEC);
    eprintln!("restarted master rebuilt full presence in {took:?}");
    assert!(took < 200 * SEC, "rebuild took {took:?}");
    let topology = fleet.topology().unwrap();
    assert_eq!(topology.subnets.len(), 3);
    assert_eq!(topology.lsn_count(), 3);
    assert_eq!(topology.present(), 15);
}

#[test]
fn a_master_message_reaches_a_node_through_its_lsn_which_cannot_read_it() {
    let mut fleet = fleet(8, 2, 4);
    converge(&mut fleet, 30 * SEC);
    let lsn = fleet.lsns_in(2).pop().expect("subnet 2 has an LSN");
    let target = fleet.hosts_in(2).into_iter().find(|h| *h != lsn).unwrap();
    let node = fleet.node_id(&target);
    let payload = b"firmware 7.3.1: reboot at 03:00 UTC".to_vec();
    let tap = fleet.tap(&lsn);
    tap.start();
    fleet.master_command(MasterCommand::Send { node, id: 42, data: payload.clone() }).unwrap();
    let message = NodeEvent::Message { id: 42, data: payload.clone() };
    let took = fleet
        .run_until(5 * SEC, |f| {
            f.node_events(&target).contains(&message)
                && f.master_log().any(|r| {
                    matches!(r.event, MasterEvent::Delivered { id: 42, node: n, .. } if n == node)
                })
        })
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("message delivered and acknowledged in {took:?}");
    tap.stop();
    // The LSN carried it (it received datagrams from the master meanwhile) but the payload
    // never appeared in anything it received, and it reported no message of its own.
    let master = OverlayFleet::addr(MASTER_HOST);
    assert!(tap.received().iter().any(|(src, _)| *src == master));
    assert!(!tap.saw_bytes(&payload));
    assert!(!fleet.node_events(&lsn).iter().any(|e| matches!(e, NodeEvent::Message { .. })));
    // A message to a node the master does not know fails visibly.
    fleet
        .master_command(MasterCommand::Send { node: NodeId::ZERO, id: 43, data: b"x".to_vec() })
        .unwrap();
    fleet.run_for(SEC).unwrap();
    assert!(fleet.master_log().any(|r| matches!(
        &r.event,
        MasterEvent::DeliveryFailed { id: 43, error: DeliveryError::NotPresent, .. }
    )));
}
