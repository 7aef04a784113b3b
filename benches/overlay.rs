//! Overlay targets of issue 3, measured on the deterministic fleet simulation (real state
//! machines, real encoding and encryption, modelled LAN 1 ms / WAN 20 ms one way). Prints its
//! figures; asserts nothing. Run with `cargo bench --bench overlay`.
//!
//! * LSN crash → all its children present again at the master (target: median ≤ 1 s,
//!   worst ≤ 2 s).
//! * A new node → present at the master (target: ≤ 4 round trips plus the handshake).
//! * Idle non-local traffic per node per hour in a subnet of 50, 28-byte IPv4/UDP header per
//!   datagram counted (target: ≤ 500 B).
//! * Messages per second at the LSN of a subnet of 50 (target: ≤ 50).
//! * A revocation → adopted by every other node of a 1,000-node fleet (target: p99 ≤ 10 s).

use std::time::Duration;

use fleetmesh::{
    overlay::{NodeEvent, NodeState},
    sim::Simulation,
    Event,
};

const SEC: Duration = Duration::from_secs(1);

fn percentile(v: &mut [u128], p: f64) -> u128 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn lsn_of(sim: &Simulation) -> usize {
    (0..sim.slots.len())
        .find(|&i| sim.slots[i].node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn))
        .expect("an LSN")
}

fn subnet(seed: u64, n: usize) -> Simulation {
    let mut sim = Simulation::new(seed);
    for _ in 0..n {
        sim.add(1);
    }
    sim.run_until(60 * SEC, |s| s.all_present());
    sim
}

fn recovery(size: usize, trials: u64) {
    let mut ms = Vec::new();
    for t in 0..trials {
        let mut sim = subnet(1000 + t, size);
        // Crash at a different phase of the heartbeat and ping cycles each trial.
        sim.run_for(5 * SEC + Duration::from_millis(t * 37));
        let old = lsn_of(&sim);
        let old_id = sim.id(old);
        sim.crash(old);
        let took = sim.run_until(30 * SEC, |s| {
            let m = s.master();
            let topo = m.topology();
            (0..s.slots.len()).filter(|&i| i != old).all(|i| {
                m.is_present(&s.id(i)) && topo.lsn_of(&s.id(i)).is_some_and(|l| l != old_id)
            })
        });
        ms.push(took.as_millis());
    }
    let (p50, max) = (percentile(&mut ms, 0.5), *ms.iter().max().unwrap());
    println!("recovery  subnet={size:<3} trials={trials}  p50={p50} ms  max={max} ms   (target p50 <= 1000, max <= 2000)");
}

fn join(trials: u64) {
    let mut ms = Vec::new();
    for t in 0..trials {
        let mut sim = subnet(2000 + t, 10);
        sim.run_for(Duration::from_millis(100 + t * 13));
        let new = sim.add(1);
        let id = sim.id(new);
        let took = sim.run_until(30 * SEC, |s| s.master().is_present(&id));
        ms.push(took.as_millis());
    }
    let rtt = 40; // WAN round trip of the model
    let (p50, max) = (percentile(&mut ms, 0.5), *ms.iter().max().unwrap());
    println!("join      trials={trials}  p50={p50} ms  max={max} ms  = {:.1} WAN round trips at p50 (target <= 4 + handshake)", p50 as f64 / rtt as f64);
}

fn idle(size: usize) {
    let mut sim = subnet(3000, size);
    sim.run_for(60 * SEC);
    let lsn = lsn_of(&sim);
    let (bytes0, dgrams0) = (sim.stats.wan.bytes, sim.stats.wan.datagrams);
    let stats = |s: &Simulation| {
        let st = s.node(lsn).endpoint().stats();
        st.datagrams_sent + st.datagrams_received
    };
    let mut last = stats(&sim);
    let start = last;
    let mut peak = 0;
    for _ in 0..3600 {
        sim.run_for(SEC);
        let now = stats(&sim);
        peak = peak.max(now - last);
        last = now;
    }
    let per_node = (sim.stats.wan.bytes - bytes0) as f64 / size as f64;
    println!(
        "idle      subnet={size} hour=1  wan={} datagrams {} B  => {per_node:.0} B/node/h (target <= 500)",
        sim.stats.wan.datagrams - dgrams0,
        sim.stats.wan.bytes - bytes0
    );
    println!(
        "lsn load  subnet={size}  mean={:.1} msg/s  peak={peak} msg/s (sent+received; target <= 50)",
        (last - start) as f64 / 3600.0
    );
}

fn revocation(subnets: u16, per: usize) {
    let mut sim = Simulation::new(9);
    for s in 1..=subnets {
        for _ in 0..per {
            sim.add(s);
        }
    }
    sim.run_until(120 * SEC, |s| s.all_present());
    let revoked = sim.id(sim.slots.len() - 1);
    let start = sim.now;
    let version = sim.master_do(|m, now| m.revoke(now, &[revoked])).expect("master");
    sim.run_for(30 * SEC);
    let mut ms: Vec<u128> = sim
        .slots
        .iter()
        .filter(|s| s.node.is_some() && s.id() != revoked)
        .map(|s| {
            s.events
                .iter()
                .find(|(_, e)| {
                    matches!(e, NodeEvent::Link(Event::RevocationsUpdated { version: v }) if *v == version)
                })
                .map_or(u128::MAX, |(t, _)| t.saturating_since(start).as_millis())
        })
        .collect();
    let nodes = ms.len();
    let missed = ms.iter().filter(|&&m| m == u128::MAX).count();
    let (p50, p99) = (percentile(&mut ms, 0.5), percentile(&mut ms, 0.99));
    println!("revoke    nodes={nodes}  p50={p50} ms  p99={p99} ms  not reached in 30 s: {missed}   (target p99 <= 10000)");
}

fn main() {
    revocation(20, 50);
    recovery(8, 40);
    recovery(50, 20);
    join(30);
    idle(50);
}
