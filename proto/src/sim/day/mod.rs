//! A simulated day of a large fleet (thesis S3 and S6): most nodes come up in a morning window
//! and shut down in the evening, servers stay up, nodes reboot at random, LSNs crash, nodes
//! move between subnets, and the master goes down once. [`run`] plays it on a
//! [`Simulation`] and returns a [`DayReport`] with the figures the benchmarks quote.
//!
//! ```
//! use fleetmesh_proto::sim::day::{run, DayConfig};
//!
//! let cfg = DayConfig { nodes: 60, subnets: 3, hours: 0.25, ..DayConfig::default() };
//! let report = run(&cfg, |_| {});
//! assert_eq!(report.present_at_end, report.expected_present_at_end);
//! ```

mod gsn;
mod history;
mod inventory;
mod presence;
mod report;
mod requests;

pub use presence::PresenceReport;
use report::report;
pub use report::{
    DayReport, DhtReport, MasterLoad, NatGets, Quantiles, Sample, UpkeepByCause, WanByKind,
};

use std::{cmp::Reverse, collections::BinaryHeap, time::Duration};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{quantile_ms, NatKind, NetModel, Simulation, START};
use crate::{overlay::NodeState, Timestamp};

const HOUR: f64 = 3600.0;

/// The records are put one after another over this long from `dht_start`, as an application
/// would, not all in one instant: the busiest host's peak was that instant (520 messages in
/// one second at 00:40 in the 300-node night).
const DHT_PUT_SPREAD: Duration = Duration::from_secs(60);

/// How often every node writes its block of metric samples (the daemon's buffer).
const HISTORY_WRITES: Duration = Duration::from_secs(300);

/// The end of a run is left calm this long: no starts, crashes, moves or outages.
pub const SETTLE: Duration = Duration::from_secs(120);

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
    /// Fraction of subnets whose edge firewall drops UDP (their nodes must reach the master
    /// over TCP). Default 0.
    pub udp_blocked_fraction: f64,
    /// Endpoints fall back to TCP after this long without a UDP answer. Default 1 s.
    pub tcp_fallback: Option<Duration>,
    /// Records put into the DHT from `dht_start` on, over a minute, by random running nodes.
    /// Default 100.
    pub dht_records: usize,
    /// Whether nodes and the master run the DHT. Default `true`.
    pub dht: bool,
    /// When the records are put; gets start two minutes later. Default 00:40.
    pub dht_start: Duration,
    /// DHT gets of those records per hour, from random running nodes. Default 600.
    pub dht_lookups_per_hour: f64,
    /// Threads the subnets run on ([`Simulation::parallel`]): the report is the same for any
    /// number. Default: the machine's cores.
    pub threads: usize,
    /// Keep the master's events ([`Simulation::keep_master_events`]) for [`run_keep`]'s caller
    /// to replay. Default `false`.
    pub keep_master_events: bool,
    /// Fleet-wide requests to every node, by time of day; every node answers at once.
    /// Default 09:00 and 13:01 (during the master's outage: sent once it is back).
    pub fleet_requests: Vec<Duration>,
    /// Inventories reported by every node at each start (`None`: off). Default on.
    pub inventory: Option<super::InventoryModel>,
    /// When every node's inventory changes a little. Default 14:00 (after the master's
    /// outage: it restores its inventories, and the nodes go on with diffs).
    pub inventory_change: Duration,
    /// Metric histories on every node (`None`: off). Default on, an hour kept.
    pub metrics: Option<super::MetricsModel>,
    /// Fleet-wide history queries (every node's CPU over the last hour, combined by the
    /// LSNs and the master), by time of day. Default 10:00 and 15:00.
    pub history_queries: Vec<Duration>,
    /// How often the master's view of every node is checked against the truth
    /// ([`PresenceReport`]; `None`: never). Default 10 s.
    pub presence_check_every: Option<Duration>,
}

pub use gsn::GsnReport;
pub use history::{HistoryQueryReport, HistoryReport};
pub use inventory::{InventoryReport, SAMPLE_HOSTS};
pub use requests::{FleetRequestReport, REQUEST_BODY, REQUEST_TTL};

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
            udp_blocked_fraction: 0.0,
            tcp_fallback: Some(Duration::from_secs(1)),
            dht: true,
            dht_records: 100,
            dht_start: m(0, 40),
            dht_lookups_per_hour: 600.0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_master_events: false,
            fleet_requests: vec![m(9, 0), m(13, 1)],
            inventory: Some(super::InventoryModel::default()),
            inventory_change: m(14, 0),
            metrics: Some(super::MetricsModel::default()),
            history_queries: vec![m(10, 0), m(15, 0)],
            presence_check_every: Some(Duration::from_secs(10)),
        }
    }
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
    DhtPut(usize),
    DhtGet,
    Fleet(usize, requests::Step),
    InventoryChange,
    PresenceCheck,
    WriteHistories,
    History(usize, requests::Step),
}

/// Plays the day of `cfg`; `progress` is called with the fraction done (0 to 1) now and then.
pub fn run(cfg: &DayConfig, progress: impl FnMut(f64)) -> DayReport {
    play(cfg, progress).0
}

/// Like [`run`], and hands back the simulation as it ended, for a closer look.
pub fn run_keep(cfg: &DayConfig) -> (DayReport, Simulation) {
    play(cfg, |_| {})
}

fn play(cfg: &DayConfig, mut progress: impl FnMut(f64)) -> (DayReport, Simulation) {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xda7);
    let mut sim = Simulation::new(cfg.seed);
    sim.net = cfg.net.clone();
    sim.parallel(cfg.threads);
    sim.keep_events = false;
    sim.keep_master_events = cfg.keep_master_events;
    sim.tcp_fallback = cfg.tcp_fallback;
    let queries = if cfg.metrics.is_some() { cfg.history_queries.len() } else { 0 };
    sim.answer_requests = !cfg.fleet_requests.is_empty() || queries > 0;
    let mut fleet = requests::FleetDay::new(cfg.fleet_requests.len());
    let mut histories = history::HistoryDay::new(queries);
    if let Some(model) = cfg.inventory.clone() {
        sim.inventory(model);
    }
    if let Some(model) = cfg.metrics.clone() {
        sim.metrics(model);
    }
    let mut before_change = None;
    if !cfg.dht {
        sim.tune = |c| crate::overlay::OverlayConfig { dht: c.dht.enabled(false), ..c };
        sim.master_cfg.dht = sim.master_cfg.dht.clone().enabled(false);
    }
    // The master restores its store after the outage, as the daemon does.
    sim.durable_master = true;
    sim.crash_master();
    sim.start_master();
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
        if rng.gen_bool(cfg.udp_blocked_fraction.clamp(0.0, 1.0)) {
            sim.block_subnet_udp(s, true);
        }
    }
    let mut plan: BinaryHeap<Reverse<(Timestamp, u64, Action)>> = BinaryHeap::new();
    let mut seq = 0u64;
    // Nothing new goes wrong (and nothing new starts) in the last minutes, so the end state is
    // settled rather than caught mid-join.
    let calm = Timestamp::from_micros(end.as_micros().saturating_sub(SETTLE.as_micros() as u64));
    let mut at = |plan: &mut BinaryHeap<_>, t: Timestamp, a: Action| {
        seq += 1;
        let quiet = matches!(
            a,
            Action::Sample
                | Action::WriteHistories
                | Action::History(..)
                | Action::Stop(_)
                | Action::DhtGet
                | Action::DhtPut(_)
                | Action::Fleet(..)
                | Action::PresenceCheck
        );
        if t <= end && (quiet || t <= calm) {
            plan.push(Reverse((t, seq, a)));
        }
    };
    let secs = |d: Duration| START + d;
    let uniform = |rng: &mut ChaCha8Rng, (from, len): (Duration, Duration)| {
        from + len.mul_f64(rng.gen::<f64>())
    };
    for k in 0..cfg.nodes {
        // Subnet by subnet, so each subnet's nodes are consecutive slots and the subnets can
        // run on several threads.
        let subnet = (k * subnets as usize / cfg.nodes) as u16 + 1;
        let i = sim.add(subnet);
        sim.crash(i); // Added running; the plan starts it.
        if sim.subnet(subnet).is_some_and(|s| s.udp_blocked) {
            sim.stats.time_as_tcp(sim.id(i));
        }
        if rng.gen_bool(cfg.always_on.clamp(0.0, 1.0)) {
            let t = uniform(&mut rng, (Duration::ZERO, Duration::from_secs(1800)));
            at(&mut plan, secs(t), Action::Start(i));
        } else {
            at(&mut plan, secs(uniform(&mut rng, cfg.morning)), Action::Start(i));
            at(&mut plan, secs(uniform(&mut rng, cfg.evening)), Action::Stop(i));
        }
    }
    // Only the setup's bookkeeping goes; the TCP marks stay.
    let marks = std::mem::replace(&mut sim.stats, super::Accounting::new());
    sim.stats.adopt_marks(marks);
    sim.inventory_reset_counts();
    if cfg.inventory.is_some() {
        at(&mut plan, secs(cfg.inventory_change), Action::InventoryChange);
    }
    let mut t = START;
    while t < end {
        t = t + cfg.sample_every;
        at(&mut plan, t, Action::Sample);
    }
    if cfg.metrics.is_some() {
        let mut t = START;
        while t < end {
            t = t + HISTORY_WRITES;
            at(&mut plan, t, Action::WriteHistories);
        }
        for (k, t) in cfg.history_queries.iter().enumerate() {
            let mark = t.saturating_sub(Duration::from_secs(60));
            at(&mut plan, secs(mark), Action::History(k, requests::Step::Mark));
            at(&mut plan, secs(*t), Action::History(k, requests::Step::Send));
        }
    }
    at(&mut plan, START + Duration::from_secs(60), Action::Churn);
    if cfg.lsn_crashes_per_hour > 0.0 {
        let first = Duration::from_secs_f64(HOUR / cfg.lsn_crashes_per_hour);
        at(&mut plan, START + first, Action::CrashLsn);
    }
    if cfg.moves_per_hour > 0.0 {
        at(&mut plan, START + Duration::from_secs_f64(HOUR / cfg.moves_per_hour), Action::Move);
    }
    if cfg.dht && cfg.dht_records > 0 {
        at(&mut plan, secs(cfg.dht_start), Action::DhtPut(0));
        if cfg.dht_lookups_per_hour > 0.0 {
            let first = cfg.dht_start + Duration::from_secs(120);
            at(&mut plan, secs(first), Action::DhtGet);
        }
    }
    for (k, t) in cfg.fleet_requests.iter().enumerate() {
        let mark = t.saturating_sub(Duration::from_secs(60));
        at(&mut plan, secs(mark), Action::Fleet(k, requests::Step::Mark));
        at(&mut plan, secs(*t), Action::Fleet(k, requests::Step::Send));
    }
    let mut keys = Vec::new();
    let mut presence =
        cfg.presence_check_every.map(|every| presence::PresenceCheck::new(every, sim.slots.len()));
    if let Some(p) = &presence {
        at(&mut plan, p.next(START), Action::PresenceCheck);
    }
    if let Some((from, len)) = cfg.master_outage {
        at(&mut plan, secs(from), Action::MasterDown);
        at(&mut plan, secs(from + len), Action::MasterUp);
    }

    // Workstations past their evening stop. A node down (rebooting) when its stop comes
    // misses the stop itself, so its pending reboot must see this and leave it down.
    let mut gone_home = vec![false; sim.slots.len()];
    let mut running = 0usize;
    let mut node_seconds = 0f64;
    let mut last = START;
    let mut series = Vec::new();
    let mut master_total = 0u64;
    let span = end.saturating_since(START).as_secs_f64().max(1.0);
    while let Some(Reverse((when, _, action))) = plan.pop() {
        sim.advance(when);
        node_seconds += running as f64 * when.saturating_since(last).as_secs_f64();
        last = when;
        let running_now = |sim: &Simulation, i: usize| sim.slots[i].node.is_some();
        match action {
            Action::Start(i) if !running_now(&sim, i) => {
                sim.start(i);
                running += 1;
            }
            Action::Stop(i) => {
                gone_home[i] = true;
                if running_now(&sim, i) {
                    sim.stop(i);
                    running -= 1;
                }
            }
            Action::Reboot(i) if !running_now(&sim, i) && !gone_home[i] => {
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
                    if let Some(i) = random_running(&sim, &mut rng) {
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
                if let Some(i) = random_running(&sim, &mut rng) {
                    let from = sim.slots[i].subnet();
                    let to = (from + rng.gen_range(0..subnets.max(2) - 1)) % subnets + 1;
                    sim.move_node(i, to);
                }
                let gap = HOUR / cfg.moves_per_hour * rng.gen_range(0.5..1.5);
                at(&mut plan, when + Duration::from_secs_f64(gap), Action::Move);
            }
            Action::DhtPut(n) => {
                let mut key = [0u8; 20];
                rng.fill(&mut key[..]);
                let key = crate::NodeId::from_bytes(key);
                if let Some(i) = random_running(&sim, &mut rng) {
                    let value = format!("record {n}").into_bytes();
                    sim.dht_put(i, key, value);
                    keys.push(key);
                }
                if n + 1 < cfg.dht_records {
                    let gap = DHT_PUT_SPREAD / cfg.dht_records as u32;
                    at(&mut plan, when + gap, Action::DhtPut(n + 1));
                }
            }
            Action::DhtGet => {
                if let (Some(i), false) = (random_running(&sim, &mut rng), keys.is_empty()) {
                    let key = keys[rng.gen_range(0..keys.len())];
                    sim.dht_get(i, key);
                }
                let gap = HOUR / cfg.dht_lookups_per_hour * rng.gen_range(0.5..1.5);
                at(&mut plan, when + Duration::from_secs_f64(gap), Action::DhtGet);
            }
            Action::Fleet(k, step) => {
                if let Some((t, a)) = fleet.step(&mut sim, k, step, when, running) {
                    at(&mut plan, t, a);
                }
            }
            Action::WriteHistories => sim.write_histories(),
            Action::History(k, step) => {
                if let Some((t, a)) = histories.step(&mut sim, k, step, when) {
                    at(&mut plan, t, a);
                }
            }
            Action::InventoryChange => {
                before_change = Some(inventory::at_master(&sim));
                sim.change_inventories();
            }
            Action::PresenceCheck => {
                if let Some(p) = presence.as_mut() {
                    p.check(&sim, when);
                    at(&mut plan, p.next(when), Action::PresenceCheck);
                }
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
    sim.advance(end);
    node_seconds += running as f64 * end.saturating_since(last).as_secs_f64();
    progress(1.0);
    let mut report = report(cfg, &sim, node_seconds, series);
    report.requests = fleet.report(&sim);
    report.requests_duplicated = sim.stats.requests.duplicated;
    report.inventory = inventory::report(&sim, cfg.seed, before_change);
    report.presence = presence.map(presence::PresenceCheck::report);
    report.histories = histories.report(&sim);
    (report, sim)
}

/// A random running node (a few tries; `None` if the fleet is mostly down).
fn random_running(sim: &Simulation, rng: &mut ChaCha8Rng) -> Option<usize> {
    if sim.slots.is_empty() {
        return None;
    }
    (0..64).map(|_| rng.gen_range(0..sim.slots.len())).find(|&i| sim.slots[i].node.is_some())
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
mod tests;
