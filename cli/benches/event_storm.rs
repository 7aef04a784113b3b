//! The admin API's event stream under the 30,000-node morning join storm.
//!
//! The storm: the simulator's standard day at 30,000 nodes over 600 subnets (seed 1, without
//! the DHT, as `BENCHMARKS.md`'s 30,000-node day), run to 08:30; the master's presence events
//! from 07:30 (the workstations' morning window, 07:30–08:00, and the half hour after). It is
//! simulated in a child process (so the simulator's memory stays out of the figures) and kept
//! in `CARGO_TARGET_TMPDIR`; delete the file to simulate again.
//!
//! The replay (`tests/storm/mod.rs`): a real master and its admin API on loopback; the events
//! published in order through `AdminServer::publish`; SSE clients (ureq) reading
//! `GET /api/events` with the bearer token. Three runs:
//!
//! * as fast as the publisher goes, one live client and one stalled until the end (the whole
//!   storm waits in the server's buffers);
//! * 60 times the storm's real pace (its hour in a minute), two live clients;
//! * beyond the target, for the bound: four storms back to back (about 100,000 events, more
//!   than the server's 65,536-event buffer) as fast as possible, one live and one stalled
//!   client. The stalled one must be told what it missed (`lagged`), and memory must level
//!   off at the buffer's size instead of growing with the burst.
//!
//! Targets (issue 20): no event lost; bounded memory.
//!
//! `cargo bench -p fleetmesh-cli --bench event_storm`

#[path = "../tests/storm/mod.rs"]
mod storm;

use std::{path::Path, process::Command, time::Duration, time::Instant};

use fleetmesh::sim::day::DayConfig;
use storm::{replay, rss_kb, simulate, Replay, Storm};

const NODES: usize = 30_000;
const SUBNETS: u16 = 600;
/// The standard day's workstation window starts at 07:30.
const FROM: Duration = Duration::from_secs(7 * 3600 + 1800);
const HOURS: f64 = 8.5;
/// Set in the child that simulates: where to write the storm.
const CHILD: &str = "FLEETMESH_STORM_OUT";

fn config() -> DayConfig {
    // The admin stream does not carry inventory events: the storm is presence.
    let inventory = None;
    DayConfig {
        nodes: NODES,
        subnets: SUBNETS,
        hours: HOURS,
        dht: false,
        inventory,
        ..DayConfig::default()
    }
}

fn main() {
    if let Ok(path) = std::env::var(CHILD) {
        simulate(&config(), FROM).write(Path::new(&path));
        return;
    }
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("storm-{NODES}-{SUBNETS}-seed1.txt"));
    if !file.exists() {
        let started = Instant::now();
        let status = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, &file)
            .status()
            .expect("simulating the storm");
        assert!(status.success(), "the simulation failed");
        println!(
            "simulated {NODES} nodes, 00:00-08:30, in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let storm = Storm::read(&file);
    let [joined, parted, moved, rerouted] = storm.kinds();
    let span = storm.events.last().map_or(Duration::ZERO, |(t, _)| *t);
    println!(
        "storm (trace {}, {}): {} events from 07:30 over {:.0} min: {joined} joined, {parted} parted, \
         {moved} moved, {rerouted} rerouted; busiest simulated second {} events; {} link events \
         the stream does not show",
        storm.trace_hash,
        file.display(),
        storm.events.len(),
        span.as_secs_f64() / 60.0,
        storm.peak_per_second(),
        storm.other,
    );
    println!("process before the runs: RSS {} MB", rss_kb() / 1024);
    let four = Storm {
        events: (0..4u32)
            .flat_map(|k| storm.events.iter().map(move |(t, e)| (span * k + *t, e.clone())))
            .collect(),
        other: storm.other * 4,
        trace_hash: storm.trace_hash.clone(),
    };
    let fast = Replay { speedup: None, live: 1, stalled: 1 };
    let target = "target: no event lost, bounded memory";
    for (name, storm, how, target) in [
        ("as fast as possible, 1 live + 1 stalled client", &storm, fast, target),
        (
            "60x real pace, 2 live clients",
            &storm,
            Replay { speedup: Some(60.0), live: 2, stalled: 0 },
            target,
        ),
        (
            "four storms back to back, as fast as possible, 1 live + 1 stalled client",
            &four,
            fast,
            "beyond the target: the stalled client is told what it missed; memory levels off",
        ),
    ] {
        let out = replay(storm, how);
        let [before, peak, after] = out.rss_kb.map(|kb| kb as f64 / 1024.0);
        println!("{name} ({target}):");
        println!(
            "  published {} in {:.2} s; received {:?}; lagged notices {:?}; lost {:?}; \
             mismatched {}",
            out.published,
            out.publish_wall.as_secs_f64(),
            out.clients.iter().map(|c| c.received).collect::<Vec<_>>(),
            out.clients.iter().map(|c| c.lagged).collect::<Vec<_>>(),
            out.lost_by_client(),
            out.clients.iter().map(|c| c.mismatched).sum::<usize>(),
        );
        println!(
            "  peak {:.0} events/s at a live client (busiest 100 ms); all delivered in {:.2} s; \
             lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            out.peak_rate,
            out.wall.as_secs_f64(),
            out.lag_ms(0.5),
            out.lag_ms(0.99),
            out.lag_ms(1.0),
        );
        println!(
            "  RSS before {before:.1} MB, peak {peak:.1} MB (+{:.1}), after {after:.1} MB",
            peak - before
        );
    }
}
