//! No event lost: a 2,000-node morning join storm from the simulator, replayed as fast as the
//! publisher goes through the admin API's publish path into two SSE clients over loopback HTTP,
//! one reading as events come and one stalled until the whole storm is published. Each must
//! receive every event, in order, with no `lagged` notice. (The 30,000-node storm and its
//! figures: `benches/event_storm.rs`.)

mod storm;

use std::time::Duration;

use fleetmesh::sim::day::DayConfig;
use storm::{replay, simulate, Replay};

#[test]
fn the_event_stream_loses_nothing_of_a_2000_node_join_storm() {
    // The standard day's storm shape at 2,000 nodes, moved to midnight so that 45 simulated
    // minutes hold it: servers (a fifth) and workstations all come up in the first half hour.
    let cfg = DayConfig {
        nodes: 2_000,
        subnets: 40,
        hours: 0.75,
        morning: (Duration::ZERO, Duration::from_secs(1800)),
        dht: false,
        // The admin stream does not carry inventory events: the storm is presence.
        inventory: None,
        ..DayConfig::default()
    };
    let storm = simulate(&cfg, Duration::ZERO);
    let joined = storm.kinds()[0];
    assert!(joined >= cfg.nodes, "every node joins at least once: {joined} joins");

    let out = replay(&storm, Replay { speedup: None, live: 1, stalled: 1 });
    for (i, c) in out.clients.iter().enumerate() {
        assert_eq!(
            (c.received, c.lagged, c.missed, c.mismatched),
            (out.published, 0, 0, 0),
            "client {i}: received, lagged notices, missed, mismatched"
        );
    }
    assert_eq!(out.lost(), 0);
}
