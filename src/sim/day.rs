//! A simulated day of a large fleet (thesis S3 and S6): most nodes come up in a morning window
//! and shut down in the evening, servers stay up, nodes reboot at random, LSNs crash, nodes
//! move between subnets, and the master goes down once. [`run`] plays it on a
//! [`Simulation`] and returns a [`DayReport`] with the figures the benchmarks quote.
//!
//! ```
//! use fleetmesh::sim::day::{run, DayConfig};
//!
//! let cfg = DayConfig { nodes: 60, subnets: 3, hours: 0.25, ..DayConfig::default() };
//! let report = run(&cfg, |_| {});
//! assert_eq!(report.present_at_end, report.expected_present_at_end);
//! ```

use std::{cmp::Reverse, collections::BinaryHeap, time::Duration};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{quantile_ms, NatKind, NetModel, Simulation, START};
use crate::{overlay::NodeState, Timestamp};

const HOUR: f64 = 3600.0;

/// What the day looks like. Times of day are offsets from the start (midnight).
#[derive(Clone, Debug)]
pub struct DayConfig {
    /// Nodes in the fleet.
    pub nodes: usize,
    /// Subnets they are spread over (round robin).
    pub subnets: u16,
    /// Simulated hours.
    pub hours: f64,
    /// The seed: the same seed gives the same day.
    pub seed: u64,
    /// Fraction of nodes that stay up all day (servers); they start in the first half hour.
    /// The rest are workstations. Default 0.2.
    pub always_on: f64,
    /// Workstations come up in this window (start, length). Default 07:30 for 30 minutes.
    pub morning: (Duration, Duration),
    /// Workstations shut down (announced) in this window. Default 16:00 for 3 hours.
    pub evening: (Duration, Duration),
    /// Fraction of running nodes that reboot per hour (crash, back after 1–5 minutes).
    /// Default 0.01.
    pub churn_per_hour: f64,
    /// LSN crashes per hour across the fleet, each timed as a failover; the crashed node comes
    /// back after 2–10 minutes. Default 12.
    pub lsn_crashes_per_hour: f64,
    /// Moves of a running node to another subnet per hour across the fleet. Default 0.
    pub moves_per_hour: f64,
    /// A master outage (start, length). Default 13:00 for 2 minutes.
    pub master_outage: Option<(Duration, Duration)>,
    /// The mix of NAT kinds over subnets (weights). Default: none 20 %, endpoint-independent
    /// 20 %, address-restricted 20 %, port-restricted 30 %, symmetric 10 %.
    pub nat_mix: Vec<(NatKind, f64)>,
    /// The network model. Default: LAN 1 ms, WAN 20 ± 10 ms one way, 10 Mbit/s per subnet
    /// uplink and downlink, 0.1 % loss.
    pub net: NetModel,
    /// How often the time series is sampled. Default 5 minutes.
    pub sample_every: Duration,
}

impl Default for DayConfig {
    fn default() -> Self {
        let m = |h: u64, min: u64| Duration::from_secs(h * 3600 + min * 60);
        DayConfig {
            nodes: 1000,
            subnets: 20,
            hours: 24.0,
            seed: 1,
            always_on: 0.2,
            morning: (m(7, 30), m(0, 30)),
            evening: (m(16, 0), m(3, 0)),
            churn_per_hour: 0.01,
            lsn_crashes_per_hour: 12.0,
            moves_per_hour: 0.0,
            master_outage: Some((m(13, 0), m(0, 2))),
            nat_mix: vec![
                (NatKind::None, 0.2),
                (NatKind::EndpointIndependent, 0.2),
                (NatKind::AddressRestricted, 0.2),
                (NatKind::PortRestricted, 0.3),
                (NatKind::Symmetric, 0.1),
            ],
            net: NetModel {
                wan_spread: Duration::from_millis(10),
                subnet_bandwidth: Some(10_000_000 / 8),
                loss: 0.001,
                ..NetModel::default()
            },
            sample_every: Duration::from_secs(300),
        }
    }
}

/// Quantiles of a latency, in milliseconds (0 when nothing was measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Worst.
    pub max: u64,
}

impl Quantiles {
    fn of(v: &[Duration]) -> Self {
        Quantiles {
            count: v.len(),
            p50: quantile_ms(v, 0.5),
            p99: quantile_ms(v, 0.99),
            max: quantile_ms(v, 1.0),
        }
    }
}

/// The master's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MasterLoad {
    /// Messages (datagrams sent plus received) per second over the run.
    pub msgs_per_sec_mean: f64,
    /// The busiest second.
    pub msgs_per_sec_peak: u32,
}

/// One point of the time series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Simulated seconds since the start.
    pub t: u64,
    /// Nodes present at the master (0 while it is down).
    pub present: usize,
    /// Nodes running.
    pub running: usize,
    /// The master's messages per second since the previous sample.
    pub master_msgs_per_sec: f64,
}

/// What a day produced. `wall_seconds` and `peak_rss_bytes` are left at 0 by [`run`] (the core
/// reads no clock); the caller fills them in.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayReport {
    /// Nodes in the fleet.
    pub nodes: usize,
    /// Subnets.
    pub subnets: u16,
    /// The seed.
    pub seed: u64,
    /// Simulated seconds.
    pub simulated_seconds: u64,
    /// Wall-clock seconds (filled in by the caller).
    pub wall_seconds: f64,
    /// Datagrams delivered plus timers handled.
    pub events: u64,
    /// Nodes present at the master at the end.
    pub present_at_end: usize,
    /// Nodes running at the end.
    pub expected_present_at_end: usize,
    /// Node start → present at the master (starts while the master was down are not timed).
    pub join_ms: Quantiles,
    /// LSN crash → all its children present under another LSN.
    pub recovery_ms: Quantiles,
    /// Failovers not complete within two minutes (or cut short by the master outage).
    pub recoveries_incomplete: u64,
    /// Move → present under an LSN of the new subnet.
    pub move_ms: Quantiles,
    /// WAN bytes (28-byte header per datagram) per running node per hour.
    pub wan_bytes_per_node_hour: f64,
    /// LAN bytes per running node per hour.
    pub lan_bytes_per_node_hour: f64,
    /// Node-hours of uptime the byte figures are divided by.
    pub node_hours: f64,
    /// The master's load.
    pub master: MasterLoad,
    /// The busiest second of any host but the master.
    pub busiest_other_host_msgs_per_sec_peak: u32,
    /// Peak resident memory (filled in by the caller).
    pub peak_rss_bytes: u64,
    /// Hash of every delivery: equal seeds give equal hashes.
    pub trace_hash: String,
    /// Present and running nodes and the master's load over the day.
    pub series: Vec<Sample>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Sample,
    Start(usize),
    Stop(usize),
    Reboot(usize),
    Churn,
    CrashLsn,
    Move,
    MasterDown,
    MasterUp,
}

/// Plays the day of `cfg`; `progress` is called with the fraction done (0 to 1) now and then.
pub fn run(cfg: &DayConfig, mut progress: impl FnMut(f64)) -> DayReport {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xda7);
    let mut sim = Simulation::new(cfg.seed);
    sim.net = cfg.net.clone();
    sim.keep_events = false;
    let end = START + Duration::from_secs_f64(cfg.hours.max(0.0) * HOUR);
    let subnets = cfg.subnets.max(1);
    let total: f64 = cfg.nat_mix.iter().map(|(_, w)| w.max(0.0)).sum();
    for s in 1..=subnets {
        let mut pick = rng.gen::<f64>() * total;
        let kind = cfg
            .nat_mix
            .iter()
            .find(|(_, w)| {
                pick -= w.max(0.0);
                pick < 0.0
            })
            .map_or(NatKind::None, |(k, _)| *k);
        sim.set_nat(s, kind);
    }
    let mut plan: BinaryHeap<Reverse<(Timestamp, u64, Action)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut at = |plan: &mut BinaryHeap<_>, t: Timestamp, a: Action| {
        seq += 1;
        if t <= end {
            plan.push(Reverse((t, seq, a)));
        }
    };
    let secs = |d: Duration| START + d;
    let uniform = |rng: &mut ChaCha8Rng, (from, len): (Duration, Duration)| {
        from + len.mul_f64(rng.gen::<f64>())
    };
    for k in 0..cfg.nodes {
        let subnet = (k % subnets as usize) as u16 + 1;
        let i = sim.add(subnet);
        sim.crash(i); // Added running; the plan starts it.
        if rng.gen_bool(cfg.always_on.clamp(0.0, 1.0)) {
            let t = uniform(&mut rng, (Duration::ZERO, Duration::from_secs(1800)));
            at(&mut plan, secs(t), Action::Start(i));
        } else {
            at(&mut plan, secs(uniform(&mut rng, cfg.morning)), Action::Start(i));
            at(&mut plan, secs(uniform(&mut rng, cfg.evening)), Action::Stop(i));
        }
    }
    sim.stats = super::Accounting::new();
    let mut t = START;
    while t < end {
        t = t + cfg.sample_every;
        at(&mut plan, t, Action::Sample);
    }
    at(&mut plan, START + Duration::from_secs(60), Action::Churn);
    if cfg.lsn_crashes_per_hour > 0.0 {
        let first = Duration::from_secs_f64(HOUR / cfg.lsn_crashes_per_hour);
        at(&mut plan, START + first, Action::CrashLsn);
    }
    if cfg.moves_per_hour > 0.0 {
        at(&mut plan, START + Duration::from_secs_f64(HOUR / cfg.moves_per_hour), Action::Move);
    }
    if let Some((from, len)) = cfg.master_outage {
        at(&mut plan, secs(from), Action::MasterDown);
        at(&mut plan, secs(from + len), Action::MasterUp);
    }

    let mut running = 0usize;
    let mut node_seconds = 0f64;
    let mut last = START;
    let mut series = Vec::new();
    let mut master_total = 0u64;
    let span = end.saturating_since(START).as_secs_f64().max(1.0);
    while let Some(Reverse((when, _, action))) = plan.pop() {
        while sim.step(when) {}
        sim.now = sim.now.max(when);
        node_seconds += running as f64 * when.saturating_since(last).as_secs_f64();
        last = when;
        let running_now = |sim: &Simulation, i: usize| sim.slots[i].node.is_some();
        match action {
            Action::Start(i) if !running_now(&sim, i) => {
                sim.start(i);
                running += 1;
            }
            Action::Stop(i) if running_now(&sim, i) => {
                sim.stop(i);
                running -= 1;
            }
            Action::Reboot(i) if !running_now(&sim, i) => {
                // Only a node still meant to be up comes back (not one past its evening).
                sim.start(i);
                running += 1;
            }
            Action::Churn => {
                let expected = cfg.churn_per_hour.max(0.0) / 60.0 * running as f64;
                let mut n = expected.floor() as usize;
                if rng.gen_bool(expected.fract()) {
                    n += 1;
                }
                for _ in 0..n {
                    if let Some(i) = random_running(&sim, &mut rng, |_| true) {
                        sim.crash(i);
                        running -= 1;
                        let back = when + Duration::from_secs(rng.gen_range(60..=300));
                        at(&mut plan, back, Action::Reboot(i));
                    }
                }
                at(&mut plan, when + Duration::from_secs(60), Action::Churn);
            }
            Action::CrashLsn => {
                if sim.master.is_some() {
                    if let Some(i) = random_lsn(&sim, &mut rng, subnets) {
                        sim.crash_timed(i);
                        running -= 1;
                        let back = when + Duration::from_secs(rng.gen_range(120..=600));
                        at(&mut plan, back, Action::Reboot(i));
                    }
                }
                let gap = HOUR / cfg.lsn_crashes_per_hour * rng.gen_range(0.5..1.5);
                at(&mut plan, when + Duration::from_secs_f64(gap), Action::CrashLsn);
            }
            Action::Move => {
                if let Some(i) = random_running(&sim, &mut rng, |_| true) {
                    let from = sim.slots[i].subnet();
                    let to = (from + rng.gen_range(0..subnets.max(2) - 1)) % subnets + 1;
                    sim.move_node(i, to);
                }
                let gap = HOUR / cfg.moves_per_hour * rng.gen_range(0.5..1.5);
                at(&mut plan, when + Duration::from_secs_f64(gap), Action::Move);
            }
            Action::MasterDown => sim.crash_master(),
            Action::MasterUp => sim.start_master(),
            Action::Sample => {
                let total = sim.stats.master_rate.total;
                let dt = cfg.sample_every.as_secs_f64().max(1e-9);
                series.push(Sample {
                    t: when.saturating_since(START).as_secs(),
                    present: sim.master.as_ref().map_or(0, |m| m.present_count()),
                    running,
                    master_msgs_per_sec: (total - master_total) as f64 / dt,
                });
                master_total = total;
                progress(when.saturating_since(START).as_secs_f64() / span);
            }
            _ => {}
        }
    }
    while sim.step(end) {}
    node_seconds += running as f64 * end.saturating_since(last).as_secs_f64();
    progress(1.0);
    report(cfg, &sim, node_seconds, series)
}

fn report(cfg: &DayConfig, sim: &Simulation, node_seconds: f64, series: Vec<Sample>) -> DayReport {
    let st = &sim.stats;
    let node_hours = node_seconds / HOUR;
    let per_node_hour = |b: u64| if node_hours > 0.0 { b as f64 / node_hours } else { 0.0 };
    let simulated = Duration::from_secs_f64(cfg.hours.max(0.0) * HOUR);
    DayReport {
        nodes: cfg.nodes,
        subnets: cfg.subnets,
        seed: cfg.seed,
        simulated_seconds: simulated.as_secs(),
        wall_seconds: 0.0,
        events: sim.events,
        present_at_end: sim.master.as_ref().map_or(0, |m| m.present_count()),
        expected_present_at_end: sim.running(),
        join_ms: Quantiles::of(&st.joins),
        recovery_ms: Quantiles::of(&st.recoveries),
        recoveries_incomplete: st.recoveries_incomplete + st.failovers_open() as u64,
        move_ms: Quantiles::of(&st.moves),
        wan_bytes_per_node_hour: per_node_hour(st.wan.bytes),
        lan_bytes_per_node_hour: per_node_hour(st.lan.bytes),
        node_hours,
        master: MasterLoad {
            msgs_per_sec_mean: st.master_rate.total as f64 / simulated.as_secs_f64().max(1.0),
            msgs_per_sec_peak: st.master_rate.peak,
        },
        busiest_other_host_msgs_per_sec_peak: st
            .node_rate
            .iter()
            .map(|m| m.peak)
            .max()
            .unwrap_or(0),
        peak_rss_bytes: 0,
        trace_hash: format!("{:016x}", st.trace),
        series,
    }
}

/// A random running node that passes `ok` (a few tries; `None` if the fleet is mostly down).
fn random_running(
    sim: &Simulation,
    rng: &mut ChaCha8Rng,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    if sim.slots.is_empty() {
        return None;
    }
    (0..64)
        .map(|_| rng.gen_range(0..sim.slots.len()))
        .find(|&i| sim.slots[i].node.is_some() && ok(i))
}

/// The LSN of a random subnet that has at least one other running node (so a failover can
/// happen).
fn random_lsn(sim: &Simulation, rng: &mut ChaCha8Rng, subnets: u16) -> Option<usize> {
    for _ in 0..64 {
        let s = rng.gen_range(1..=subnets);
        let Some(sub) = sim.subnet(s) else { continue };
        let up: Vec<usize> =
            sub.members.iter().copied().filter(|&j| sim.slots[j].node.is_some()).collect();
        if up.len() < 2 {
            continue;
        }
        if let Some(&lsn) = up
            .iter()
            .find(|&&j| sim.slots[j].node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn))
        {
            return Some(lsn);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> DayConfig {
        DayConfig {
            nodes: 120,
            subnets: 6,
            hours: 1.0,
            seed,
            always_on: 1.0,
            lsn_crashes_per_hour: 30.0,
            moves_per_hour: 20.0,
            churn_per_hour: 0.2,
            master_outage: Some((Duration::from_secs(2400), Duration::from_secs(60))),
            ..DayConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_day() {
        let a = run(&small(3), |_| {});
        let b = run(&small(3), |_| {});
        assert_eq!(a, b);
        let c = run(&small(4), |_| {});
        assert_ne!(a.trace_hash, c.trace_hash);
    }

    #[test]
    fn an_hour_with_crashes_moves_churn_and_an_outage_ends_with_everyone_present() {
        let r = run(&small(5), |_| {});
        assert_eq!(r.present_at_end, r.expected_present_at_end, "{r:#?}");
        assert!(r.expected_present_at_end > 100);
        assert!(r.join_ms.count >= 120, "{:?}", r.join_ms);
        assert!(r.recovery_ms.count >= 5, "{:?}", r.recovery_ms);
        assert!(r.recovery_ms.p50 <= 1000, "{:?}", r.recovery_ms);
        assert!(r.move_ms.count >= 5, "{:?}", r.move_ms);
        assert!(r.wan_bytes_per_node_hour > 0.0 && r.lan_bytes_per_node_hour > 0.0);
        assert!(r.master.msgs_per_sec_peak > 0);
        assert_eq!(r.series.len(), 12);
    }

    #[test]
    fn workstations_follow_the_working_day() {
        let cfg = DayConfig {
            nodes: 100,
            subnets: 4,
            hours: 24.0,
            lsn_crashes_per_hour: 0.0,
            churn_per_hour: 0.0,
            master_outage: None,
            always_on: 0.3,
            sample_every: Duration::from_secs(3600),
            ..DayConfig::default()
        };
        let r = run(&cfg, |_| {});
        let at = |h: u64| r.series.iter().find(|s| s.t == h * 3600).expect("sampled");
        // Night: only servers; midday: everyone; next night: servers again.
        assert!(at(3).running < 50 && at(3).present == at(3).running, "{:?}", at(3));
        assert_eq!(at(12).running, 100);
        assert_eq!(at(12).present, 100);
        assert_eq!(r.present_at_end, at(3).running);
        assert!(r.master.msgs_per_sec_peak as f64 > r.master.msgs_per_sec_mean);
    }
}
