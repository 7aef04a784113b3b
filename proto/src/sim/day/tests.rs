//! Days of small fleets: every NAT kind, determinism, failover timing, one thread against
//! two, churn with an outage, the working day.

use super::*;

fn small(seed: u64, hours: f64) -> DayConfig {
    DayConfig {
        nodes: 60,
        subnets: 3,
        hours,
        seed,
        always_on: 1.0,
        lsn_crashes_per_hour: 40.0,
        moves_per_hour: 30.0,
        churn_per_hour: 0.2,
        master_outage: Some((Duration::from_secs(1200), Duration::from_secs(60))),
        dht_records: 10,
        dht_start: Duration::from_secs(600),
        dht_lookups_per_hour: 120.0,
        // Public addresses: the DHT cannot reach nodes behind another subnet's NAT until
        // NAT traversal lands (see `every_nat_kind_reaches_the_master`).
        nat_mix: vec![(NatKind::None, 1.0)],
        ..DayConfig::default()
    }
}

#[test]
fn every_nat_kind_reaches_the_master() {
    let cfg = DayConfig {
        nodes: 50,
        subnets: 5,
        hours: 0.5,
        always_on: 1.0,
        lsn_crashes_per_hour: 20.0,
        master_outage: None,
        dht: false,
        ..DayConfig::default()
    };
    for k in NatKind::ALL {
        let one = DayConfig { nat_mix: vec![(k, 1.0)], ..cfg.clone() };
        let r = run(&one, |_| {});
        assert_eq!(r.present_at_end, r.expected_present_at_end, "{k:?}: {r:#?}");
        assert!(r.expected_present_at_end >= 45, "{k:?}: {r:?}");
        assert!(r.recovery_ms.count > 0 && r.recovery_ms.p50 <= 1000, "{k:?}: {r:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_day() {
    let a = run(&small(3, 0.25), |_| {});
    let b = run(&small(3, 0.25), |_| {});
    assert_eq!(a, b);
    let c = run(&small(4, 0.25), |_| {});
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn a_child_already_down_when_its_lsn_crashes_is_not_waited_for() {
    let sec = Duration::from_secs(1);
    let (mut w, lsn) = Simulation::settled_subnet(12, 6, 3 * sec);
    // The last-ranked child crashes; the LSN pings it only every minute, so it still
    // lists it when it crashes itself.
    let ranked = w.node(lsn).children();
    let gone = ranked.last().and_then(|id| w.slot_of_id(id)).expect("a child");
    w.crash(gone);
    w.run_for(2 * sec);
    assert!(w.node(lsn).children().contains(&w.id(gone)));
    w.crash_timed(lsn);
    w.run_for(30 * sec);
    // Timed over the children still running: the one down rejoins only when it restarts.
    assert_eq!(w.stats.recoveries.len(), 1, "{:?}", w.stats.recoveries);
    assert_eq!(w.stats.rejoins.len(), 1, "{:?}", w.stats.rejoins);
}

#[test]
fn the_day_is_the_same_on_one_thread_and_on_two() {
    // Many small subnets up at once, on two threads that hand each other datagrams.
    let cfg = |threads| DayConfig {
        nodes: 600,
        subnets: 200,
        hours: 0.2,
        seed: 9,
        always_on: 0.0,
        morning: (Duration::ZERO, Duration::from_secs(300)),
        evening: (Duration::from_secs(7200), Duration::from_secs(60)),
        lsn_crashes_per_hour: 60.0,
        churn_per_hour: 0.2,
        master_outage: None,
        dht: false,
        threads,
        ..DayConfig::default()
    };
    let (one, sim) = run_keep(&cfg(1));
    assert_eq!(sim.handed, 0);
    let (two, sim) = run_keep(&cfg(2));
    assert!(sim.handed > 100, "only {} datagrams crossed threads", sim.handed);
    // Under test the split moves after every call (`balance.rs`).
    assert!(sim.balance.moves > 10, "the split moved {} times", sim.balance.moves);
    assert_eq!(one, two);
    assert_eq!(one.present_at_end, one.expected_present_at_end);
}

#[test]
fn an_hour_with_crashes_moves_churn_and_an_outage_ends_with_everyone_present() {
    let r = run(&small(5, 0.75), |_| {});
    assert_eq!(r.present_at_end, r.expected_present_at_end, "{r:#?}");
    assert!(r.expected_present_at_end > 50);
    assert!(r.join_ms.count >= 60, "{:?}", r.join_ms);
    assert!(r.recovery_ms.count >= 5, "{:?}", r.recovery_ms);
    assert!(r.recovery_ms.p50 <= 1000, "{:?}", r.recovery_ms);
    assert!(r.move_ms.count >= 5, "{:?}", r.move_ms);
    assert!(r.wan_bytes_per_node_hour > 0.0 && r.lan_bytes_per_node_hour > 0.0);
    // The WAN breakdown accounts for every WAN byte, and each kind shows up in such a day.
    let w = r.wan_by_kind;
    let sum = w.handshakes + w.master + w.peer_small + w.peer + w.other;
    assert!((sum - r.wan_bytes_per_node_hour).abs() < 1e-6 * sum, "{w:?} {r:#?}");
    assert!(w.handshakes > 0.0 && w.master > 0.0 && w.peer_small > 0.0 && w.peer > 0.0, "{w:?}");
    assert!(r.master.msgs_per_sec_peak > 0);
    // Every put reached several holders. Gets under this much disruption (a fifth of the
    // nodes rebooting per hour, 40 LSN crashes, 30 moves, a master outage, all in 45
    // minutes) still miss: the 0.999 is not met here yet (BENCHMARKS.md).
    assert!(r.dht.put_holders_min >= 5, "{:?}", r.dht);
    assert!(r.dht.lookups > 20 && r.dht.success_rate > 0.5, "{:?}", r.dht);
    // Every answered get is counted under its asker's NAT class, once.
    let by_nat: u64 = r.dht.by_nat.values().map(|g| g.lookups).sum();
    assert_eq!(by_nat, r.dht.lookups, "{:?}", r.dht.by_nat);
    assert_eq!(r.dht.by_nat.keys().collect::<Vec<_>>(), ["none"], "this run has no NAT");
    assert_eq!(r.series.len(), 9);
}

#[test]
fn workstations_follow_the_working_day() {
    // A compressed day: morning at 01:00, evening at 02:00.
    let min = |m: u64| Duration::from_secs(m * 60);
    let cfg = DayConfig {
        nodes: 40,
        subnets: 2,
        hours: 3.0,
        lsn_crashes_per_hour: 0.0,
        churn_per_hour: 0.0,
        master_outage: None,
        always_on: 0.3,
        morning: (min(60), min(10)),
        evening: (min(120), min(10)),
        sample_every: min(30),
        dht_records: 0,
        ..DayConfig::default()
    };
    let r = run(&cfg, |_| {});
    let at = |m: u64| r.series.iter().find(|s| s.t == m * 60).expect("sampled");
    // Night: only servers; midday: everyone; next night: servers again.
    assert!(at(30).running < 20 && at(30).present == at(30).running, "{:?}", at(30));
    assert_eq!(at(90).running, 40);
    assert_eq!(at(90).present, 40);
    assert_eq!(r.present_at_end, at(30).running);
    assert!(r.master.msgs_per_sec_peak as f64 > r.master.msgs_per_sec_mean);
}

#[test]
fn a_workstation_down_at_its_evening_stop_stays_down() {
    // Heavy churn (each running node reboots about three times an hour, down 1–5 minutes)
    // puts some workstations down when their evening stop comes. A reboot after that must
    // not bring them back for the night: they would be counted running (and their hours
    // in `node_hours`) until the end of the day.
    let min = |m: u64| Duration::from_secs(m * 60);
    let cfg = DayConfig {
        nodes: 40,
        subnets: 2,
        hours: 2.0,
        always_on: 0.0,
        morning: (min(5), min(5)),
        evening: (min(60), min(10)),
        churn_per_hour: 3.0,
        lsn_crashes_per_hour: 0.0,
        master_outage: None,
        sample_every: min(10),
        dht: false,
        ..DayConfig::default()
    };
    let r = run(&cfg, |_| {});
    // Every node is a workstation: after the evening window nothing runs.
    for s in r.series.iter().filter(|s| s.t >= 80 * 60) {
        assert_eq!(s.running, 0, "{s:?}");
    }
    assert_eq!(r.expected_present_at_end, 0, "{r:#?}");
    // Up from 5–10 minutes to 60–70 minutes at most: never more than 65 minutes a node.
    assert!(r.node_hours <= 40.0 * 65.0 / 60.0, "{}", r.node_hours);
}

#[test]
fn fleet_requests_reach_every_running_node_once_even_through_a_master_outage() {
    let min = |m: u64| Duration::from_secs(m * 60);
    let cfg = DayConfig {
        hours: 1.0,
        // One in the master's outage (20:00 to 21:00): sent once it is back.
        fleet_requests: vec![min(10), min(20) + Duration::from_secs(30)],
        ..small(9, 1.0)
    };
    let r = run(&cfg, |_| {});
    eprintln!("{:#?}", r.requests);
    assert_eq!(r.requests.len(), 2);
    assert_eq!(r.requests_duplicated, 0);
    for q in &r.requests {
        assert_eq!(q.lost, 0, "every node running at the send took it: {q:?}");
        assert!(q.took >= q.running_at_send, "{q:?}");
    }
    // With the fleet settled, at once; sent as the master comes back, which restores its
    // store and wakes the LSNs of before: they register again and take it within seconds.
    assert_eq!(r.requests[0].took_within_5s, r.requests[0].running_at_send, "{:?}", r.requests[0]);
    let back = &r.requests[1];
    assert!(back.at_s >= 21 * 60, "sent once the master was back: {back:?}");
    assert!(back.took_within_5s * 10 >= back.running_at_send * 9, "{back:?}");
    assert!(back.took_ms.max <= 10_000, "{back:?}");
}

#[test]
fn a_fleet_request_costs_the_master_an_ack_per_answer_not_a_handshake() {
    // Nodes that started long before (their sessions with the master idled out, or they
    // never had one) seal their answers with the key the request carries.
    let cfg = DayConfig {
        nodes: 100,
        subnets: 4,
        hours: 0.75,
        always_on: 1.0,
        dht: false,
        master_outage: None,
        fleet_requests: vec![Duration::from_secs(2400)],
        // The master's egress in the minute after the request is measured: no inventory
        // acknowledgements in it.
        inventory: None,
        ..DayConfig::default()
    };
    let r = run(&cfg, |_| {});
    let q = &r.requests[0];
    assert_eq!((q.lost, q.took_within_5s), (0, q.running_at_send), "{q:?}");
    // The LSNs carry the answers in batches, acknowledged once each: the master's egress
    // grows with the LSNs, not the nodes (an Ack per answer was 75 B a node; a handshake
    // each, 450). Each batch's acknowledgement names runs of seqs, and an LSN's own answer
    // joins its children's: 741 B per LSN when it listed every seq and the first answer
    // went alone.
    let extra = q.master_egress_bytes - q.master_egress_baseline_bytes;
    let (per_node, per_lsn) = (extra / q.took as u64, extra / q.lsns_at_send as u64);
    eprintln!("master egress {extra} B beyond its baseline, {per_node} B per node, {per_lsn} B per LSN: {q:?}");
    assert!(per_lsn <= 600, "{per_lsn} B per LSN: {q:?}");
}

#[test]
fn inventories_reach_the_master_whole_once_then_as_small_changes() {
    // The master's outage (20 min) comes before the change (25 min): it restores its
    // inventories, so the change still goes as diffs.
    let cfg = DayConfig {
        lsn_crashes_per_hour: 4.0,
        moves_per_hour: 0.0,
        inventory_change: Duration::from_secs(1500),
        ..small(9, 0.5)
    };
    let (r, sim) = run_keep(&cfg);
    let inv = r.inventory.expect("inventories are on by default");
    let master = sim.master.as_ref().expect("the master is up");
    for slot in sim.slots.iter().filter(|s| s.node.is_some()) {
        let held = master.inventory(&slot.id()).map(|(_, d)| d);
        assert_eq!(held, slot.node.as_ref().and_then(|n| n.inventory()), "every running node's");
    }
    assert!(inv.starts >= r.expected_present_at_end as u64);
    // The change costs a small part of the first uploads, which zstd shrank.
    let first = inv.bytes_at_master - inv.change_bytes_at_master;
    assert!(inv.change_bytes_at_master > 0);
    assert!(inv.change_bytes_at_master * 2 < first, "{inv:?}");
    assert!(first * 2 < inv.full_upload_bytes, "{inv:?}");
    assert!(inv.reduction > 2.0, "{inv:?}");
    // Batches, not a message per node per change.
    assert!(inv.batches < cfg.nodes as u64, "{inv:?}");
}

#[test]
fn behind_nats_a_fleet_request_sent_as_the_master_returns_is_taken_within_seconds() {
    // The standard day's mix of NATs, a two-minute master outage: the restarted master's
    // wake-up cannot pass mappings that expired; the LSNs' own retries bring them back.
    let min = |m: u64| Duration::from_secs(m * 60);
    let cfg = DayConfig {
        hours: 1.0,
        fleet_requests: vec![min(22)],
        lsn_crashes_per_hour: 0.0,
        moves_per_hour: 0.0,
        master_outage: Some((min(20), min(2))),
        nat_mix: DayConfig::default().nat_mix,
        ..small(10, 1.0)
    };
    let r = run(&cfg, |_| {});
    let q = &r.requests[0];
    assert!(q.at_s >= 22 * 60 && q.lost == 0, "{q:?}");
    assert_eq!(q.took_within_5s, q.running_at_send, "{q:?}");
}

#[test]
fn the_masters_view_of_presence_is_checked_and_mostly_right() {
    // LSN crashes, reboots and moves make the view wrong for a while; a crash of a child is
    // only noticed after its missed pings, so some stale node-seconds must be seen.
    let r = run(&small(7, 0.5), |_| {});
    let p = r.presence.expect("checked by default");
    assert!(p.node_seconds > 60.0 * 500.0, "{p:?}");
    assert!(p.stale_node_seconds > 0.0, "crashes went unseen by the check: {p:?}");
    assert!(p.accuracy > 0.95 && p.accuracy < 1.0, "{p:?}");
    assert!(p.longest_stale_s >= 10.0 && p.longest_stale_s <= 160.0, "{p:?}");
    let off = run(&DayConfig { presence_check_every: None, ..small(7, 0.5) }, |_| {});
    assert!(off.presence.is_none());
}

#[test]
fn a_history_query_covers_every_present_node_and_equals_their_own_histories_combined() {
    let cfg = DayConfig {
        nodes: 100,
        subnets: 4,
        hours: 0.75,
        always_on: 1.0,
        churn_per_hour: 0.0,
        lsn_crashes_per_hour: 0.0,
        dht: false,
        master_outage: None,
        fleet_requests: vec![],
        inventory: None,
        history_queries: vec![Duration::from_secs(2400)],
        ..DayConfig::default()
    };
    let r = run(&cfg, |_| {});
    let h = r.histories.expect("histories are on by default");
    let q = &h.queries[0];
    eprintln!("{h:#?}");
    // Every node started in the first half hour and stays up: all present, all answer.
    assert_eq!((q.present_at_send, q.hosts, q.failed, q.missing), (100, 100, 0, 0), "{q:?}");
    assert_eq!(q.present_but_down, 0, "{q:?}");
    assert_eq!((q.lsns, q.lsns_silent), (4, 0), "one LSN per subnet: {q:?}");
    // Combined by the LSNs and the master, it is what the nodes' own histories give.
    assert!(q.cpu_mean_pct > 1.0, "{q:?}");
    assert!((q.cpu_mean_pct - q.cpu_mean_truth_pct).abs() < 1e-9, "{q:?}");
    // Once every node answered, the LSNs do not wait out the window.
    assert!(q.took_ms < 20_000, "{q:?}");
    // Five series every 10 s from each start; the codec keeps them small.
    assert!(h.samples > 100 * 5 * 6 * 15, "{h:?}");
    // (Noisy synthetic hosts: about 2 B a sample, against 16 B raw.)
    assert!(h.bytes_per_sample < 4.0 && h.stored_bytes_per_node > 0.0, "{h:?}");
}

#[test]
fn lsns_choose_the_nearest_gsn_from_the_directory() {
    // GSNs among the public nodes (their LSNs choose themselves), LSNs behind NATs
    // surveying them; subnets' WAN latencies spread ±10 ms, so the nearest GSN differs from
    // the farthest.
    let cfg = DayConfig {
        nodes: 60,
        subnets: 12,
        hours: 0.3,
        nat_mix: vec![
            (NatKind::None, 0.4),
            (NatKind::PortRestricted, 0.3),
            (NatKind::Symmetric, 0.3),
        ],
        seed: 9,
        always_on: 1.0,
        lsn_crashes_per_hour: 0.0,
        moves_per_hour: 0.0,
        churn_per_hour: 0.0,
        master_outage: None,
        ..DayConfig::default()
    };
    let r = run(&cfg, |_| {});
    let g = &r.gsn;
    assert!(g.appointed >= 3, "{g:?}");
    assert!(g.tickets_published >= g.appointed as u64, "every GSN published: {g:?}");
    assert_eq!(g.lsns_with_choice, g.lsns, "every LSN chose within the hour: {g:?}");
    assert!(g.surveys > 0 && g.probes > 0, "{g:?}");
    assert!(g.chose_nearest >= 0.9, "{g:?}");
    assert!(g.chosen_rtt_ms.max <= g.nearest_rtt_ms.max + 5, "{g:?}");
}
