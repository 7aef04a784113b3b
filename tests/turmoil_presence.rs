//! Presence when things go wrong (issue 19), written as a user would write them against the
//! public test kit: LSN crashes, two in a row, heavy independent loss, an isolated node. Each
//! scenario is a few lines of kit calls; where the protocol misses one of the targets,
//! the test asserts what holds and prints the measured figure beside the target.

use std::{collections::BTreeMap, time::Duration};

use fleetmesh::{
    overlay::{NodeState, PresenceEvent},
    wire::PartReason,
};
use fleetmesh_testkit::OverlayFleet;

const SEC: Duration = Duration::from_secs(1);

/// A fleet of `subnets` × `per` nodes, converged (every node present at the master) and
/// settled for 30 s (the LSNs have ranked their children).
fn converged(seed: u64, loss: f64, subnets: u8, per: usize) -> OverlayFleet<'static> {
    let mut fleet = OverlayFleet::builder(seed).loss(loss).build();
    (1..=subnets).for_each(|s| drop(fleet.add_subnet(s, per)));
    fleet.run_until(120 * SEC, |f| f.all_present()).unwrap_or_else(|e| panic!("{e}"));
    fleet.run_for(30 * SEC).unwrap();
    fleet
}

/// Whether every host in `hosts` is present under an LSN that is up.
fn under_live_lsns(fleet: &OverlayFleet, hosts: &[String]) -> bool {
    hosts.iter().all(|h| fleet.lsn_of(h).is_some_and(|l| fleet.is_up(&l)))
}

#[test]
fn an_lsn_crash_leaves_every_child_present_under_a_live_lsn_and_reachable() {
    let mut fleet = converged(21, 0.0, 2, 8);
    let lsn = fleet.lsn_of("10.1.0.1").expect("present");
    fleet.crash(&lsn);
    let survivors: Vec<String> = fleet.hosts_in(1).into_iter().filter(|h| *h != lsn).collect();
    let took = fleet.run_until(5 * SEC, |f| under_live_lsns(f, &survivors)).unwrap();
    let gone = fleet.run_until(10 * SEC, |f| f.absent() == [lsn.clone()]).unwrap();
    eprintln!("LSN crash: survivors under a live LSN after {took:?}, LSN absent after {gone:?}");
    // Every node the master shows present answers its poll.
    let polled = fleet.poll_all(15 * SEC).unwrap();
    let present: Vec<String> = fleet.hosts().into_iter().filter(|h| fleet.present(h)).collect();
    assert_eq!(polled.reached, present, "{polled:?}\n{}", fleet.render_presence());
    assert_eq!(polled.failed.iter().map(|(h, _)| h).collect::<Vec<_>>(), [&lsn]);
}

/// Issue 19's targets: every surviving child present under a live LSN within 5 s, the dead
/// LSNs absent at the master within 60 s, every present node reachable. Seeds 22, 23, 24
/// without loss; for a sweep, `FLEETMESH_CRASH_SEEDS` (comma-separated) and
/// `FLEETMESH_CRASH_LOSS` (independent loss on every link, 0 to 1: without loss every seed
/// runs alike).
#[test]
fn two_lsn_crashes_in_a_row_leave_every_survivor_present_under_a_live_lsn() {
    let loss =
        std::env::var("FLEETMESH_CRASH_LOSS").map_or(0.0, |p| p.parse().expect("a fraction"));
    let mut recoveries = Vec::new();
    for seed in seeds("FLEETMESH_CRASH_SEEDS", "22,23,24") {
        let mut fleet = converged(seed, loss, 1, 8);
        let first = fleet.lsn_of("10.1.0.1").expect("present");
        fleet.crash(&first);
        // A standby takes over (the first ranked, or the second if the first's list was lost:
        // heartbeats make a standby); it dies the moment it believes it is the LSN.
        let other = |f: &OverlayFleet| f.lsns().into_iter().find(|l| *l != first);
        fleet.run_until(30 * SEC, |f| other(f).is_some()).unwrap();
        let standby = other(&fleet).expect("a new LSN");
        fleet.crash(&standby);
        let survivors: Vec<String> =
            fleet.hosts().into_iter().filter(|h| *h != first && *h != standby).collect();
        let took = fleet.run_until(120 * SEC, |f| under_live_lsns(f, &survivors)).unwrap();
        // Exactly the two dead: a survivor between LSNs (one that yielded to a rival) is
        // absent for a moment too.
        let mut dead = vec![first.clone(), standby.clone()];
        dead.sort();
        let gone = fleet.run_until(60 * SEC, |f| f.absent() == dead).unwrap() + took;
        eprintln!("seed {seed}: two LSN crashes: survivors under a live LSN after {took:?} (target 5 s), both dead LSNs absent after {gone:?} (target 60 s)");
        fleet.set_loss(0.0);
        let polled = fleet.poll_all(15 * SEC).unwrap();
        assert_eq!(polled.reached, survivors, "{polled:?}\n{}", fleet.render_presence());
        recoveries.push((took, seed));
    }
    recoveries.sort();
    let (p50, worst) = (recoveries[recoveries.len() / 2], recoveries[recoveries.len() - 1]);
    eprintln!("{} seeds at {loss} loss: survivors under a live LSN after p50 {:?}, max {:?} (seed {}); target p99 <= 5 s", recoveries.len(), p50.0, worst.0, worst.1);
    assert!(
        worst.0 <= 5 * SEC,
        "seed {}: survivors under a live LSN only after {:?}",
        worst.1,
        worst.0
    );
}

/// What one-second checks of a fleet found.
#[derive(Debug, Default)]
struct Checks {
    checks: u32,
    /// When every node was first present.
    first_all_present: Option<Duration>,
    /// Checks at which every node was present at the master.
    all_present: u32,
    /// The longest time any subnet had more than one LSN: as the nodes believe, as the master shows.
    oldest_duplicate: Duration,
    oldest_duplicate_at_master: Duration,
    /// When the checks began.
    from: Duration,
    /// Parted reports during the checks (every one spurious when nothing crashed).
    parted: usize,
    /// The hosts absent at the master at the last check.
    absent_at_end: Vec<String>,
    /// The longest run of checks one host was absent at, and that host.
    longest_absence: (u32, String),
}

impl Checks {
    /// The figures beside issue 19's targets.
    fn against_targets(&self) -> String {
        let present = f64::from(self.all_present) / f64::from(self.checks) * 100.0;
        format!(
            "{} one-second checks from {:?}: every node present at {present:.1} % of checks \
             (target >= 99 %); spurious Parted {} (target 0); oldest duplicate LSN {:?} as \
             nodes believe, {:?} at the master (target <= 10 s); absent at the last check {:?}; \
             longest absence {} checks ({})",
            self.checks,
            self.from,
            self.parted,
            self.oldest_duplicate,
            self.oldest_duplicate_at_master,
            self.absent_at_end,
            self.longest_absence.0,
            self.longest_absence.1
        )
    }
}

/// Runs `fleet` for `secs` seconds, checking it after each.
fn check_each_second(fleet: &mut OverlayFleet, subnets: u8, secs: u32) -> Checks {
    let mut c = Checks { from: fleet.elapsed(), ..Checks::default() };
    let (mut believed, mut shown) = (BTreeMap::new(), BTreeMap::new());
    let mut absent_for: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..secs {
        fleet.run_for(SEC).unwrap();
        let now = fleet.elapsed();
        c.checks += 1;
        c.all_present += u32::from(fleet.all_present());
        let absent = fleet.absent();
        absent_for.retain(|h, _| absent.contains(h));
        for h in absent {
            let run = absent_for.entry(h.clone()).or_default();
            *run += 1;
            if *run > c.longest_absence.0 {
                c.longest_absence = (*run, h);
            }
        }
        if fleet.all_present() && c.first_all_present.is_none() {
            c.first_all_present = Some(now);
        }
        let at_master = fleet.master_lsns();
        for s in 1..=subnets {
            let shown_here = at_master.iter().filter(|h| fleet.subnet(h) == s).count();
            for (seen, count, oldest) in [
                (&mut believed, fleet.lsns_in(s).len(), &mut c.oldest_duplicate),
                (&mut shown, shown_here, &mut c.oldest_duplicate_at_master),
            ] {
                if count > 1 {
                    *oldest = (*oldest).max(now - *seen.entry(s).or_insert(now));
                } else {
                    seen.remove(&s);
                }
            }
        }
    }
    let parted = fleet.presence_log().into_iter().filter(|r| r.at >= c.from);
    c.parted = parted.filter(|r| matches!(r.event, PresenceEvent::Parted { .. })).count();
    c.absent_at_end = fleet.absent();
    c
}

/// The seeds named in the environment variable `var` (comma-separated), else `default`.
fn seeds(var: &str, default: &str) -> Vec<u64> {
    let seeds = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    seeds.split(',').map(|s| s.trim().parse().expect("a seed")).collect()
}

/// How long the loss scenario runs: `FLEETMESH_LOSS_MINUTES`, default 3 (the target
/// is stated for 10; a 40-node simulated minute costs about 10 s of a debug build).
fn loss_minutes() -> u32 {
    std::env::var("FLEETMESH_LOSS_MINUTES").map_or(3, |m| m.parse().expect("minutes"))
}

/// Issue 19's loss scenario with independent loss: 20 % of every datagram on every link, 4
/// subnets of 10 nodes, checked every second. The presence figure is printed against its
/// target; the test asserts that every node joins, and that once the loss stops every node is
/// attached to an LSN (or is one) and, 120 s later, present at the master.
#[test]
fn twenty_percent_independent_loss_every_node_joins_and_settles_once_it_stops() {
    for seed in seeds("FLEETMESH_LOSS_SEEDS", "23") {
        let mut fleet = OverlayFleet::builder(seed).loss(0.2).build();
        let hosts: Vec<String> = (1..=4).flat_map(|s| fleet.add_subnet(s, 10)).collect();
        let joined = |f: &OverlayFleet| hosts.iter().all(|h| !f.presence_of(h).is_empty());
        fleet.run_until(60 * SEC, joined).unwrap();
        let checks = check_each_second(&mut fleet, 4, 60 * loss_minutes());
        eprintln!("seed {seed}: 20 % independent loss, 40 nodes: {}", checks.against_targets());
        // Once the loss stops, every node is attached (a child, or an LSN)...
        fleet.set_loss(0.0);
        let attached = |f: &OverlayFleet| {
            let state = |h: &String| f.node_state(h);
            hosts.iter().all(|h| matches!(state(h), Some(NodeState::HasLsn | NodeState::IsLsn)))
        };
        let took = fleet.run_until(120 * SEC, attached).unwrap();
        // ...and 120 s later the master sees every one of them. Duplicate LSNs are printed.
        fleet.run_for(120 * SEC).unwrap();
        let lsns: Vec<usize> = (1..=4).map(|s| fleet.lsns_in(s).len()).collect();
        let absent = fleet.absent();
        eprintln!("seed {seed}: loss stopped: every node attached after {took:?}; 120 s later LSNs per subnet {lsns:?}, absent at the master {absent:?} (target: one each, none)");
        assert!(
            absent.is_empty(),
            "seed {seed}: absent at the master 120 s after the loss stopped: {absent:?}"
        );
    }
}

/// The same seed gives the same lossy run: every master and node event, at the same time.
#[test]
fn independent_loss_repeats_with_the_seed() {
    let run = |seed| {
        let mut fleet = OverlayFleet::builder(seed).loss(0.2).build();
        fleet.add_subnet(1, 5);
        fleet.run_for(60 * SEC).unwrap();
        (format!("{:?}", fleet.master_log().all()), format!("{:?}", fleet.node_log().all()))
    };
    let first = run(31);
    assert_eq!(first, run(31));
    assert_ne!(first, run(32));
}

/// A child cut off from everyone is absent at the master, and present again once back.
#[test]
fn an_isolated_child_is_absent_then_present_again_after_it_rejoins() {
    let mut fleet = converged(24, 0.0, 2, 5);
    let lsn = fleet.lsn_of("10.1.0.1").expect("present");
    let child = fleet.hosts_in(1).into_iter().find(|h| *h != lsn).unwrap();
    fleet.isolate(&child);
    let gone = fleet.run_until(60 * SEC, |f| f.absent() == [child.clone()]).unwrap();
    let parted = PresenceEvent::Parted { node: fleet.node_id(&child), reason: PartReason::Lost };
    assert_eq!(fleet.presence_of(&child).last().map(|r| &r.event), Some(&parted));
    fleet.rejoin(&child);
    let back = fleet.run_until(200 * SEC, |f| f.all_present()).unwrap();
    eprintln!("isolated child absent after {gone:?} (target 60 s), present again {back:?} after rejoining");
    assert!(fleet.poll_all(15 * SEC).unwrap().all_reached());
}
