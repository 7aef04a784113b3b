//! The morning join storm, replayed into the admin API's event stream. Shared by
//! `benches/event_storm.rs` (30,000 nodes) and `tests/event_storm.rs` (2,000 nodes).
//!
//! The storm is the master's timeline from the simulator's day (`fleetmesh::sim::day`, run with
//! `keep_master_events`). The replay publishes it, in order, through `AdminServer::publish` of
//! the real admin API (in front of a real master on loopback, as the daemon runs it), and SSE
//! clients (ureq) read `GET /api/events` with the bearer token. Every event a client receives
//! is checked against the one published at its place: nothing lost, duplicated or reordered.

// Each user needs its own part of this module (and of the admin API it compiles in).
#![allow(dead_code, unreachable_pub)]

#[path = "../../src/admin/mod.rs"]
mod admin;

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc, Arc,
    },
    thread,
    time::{Duration, Instant},
};

use fleetmesh::{
    endpoint::Event as LinkEvent,
    overlay::{MasterEvent, PresenceEvent},
    sim::{
        day::{self, DayConfig},
        START,
    },
    wire::PartReason,
    MasterBuilder, NodeId,
};
use serde_json::Value;

use admin::AdminServer;

/// The master's presence events of a storm, in order, with their simulated time since `from`.
pub struct Storm {
    /// The events the stream carries.
    pub events: Vec<(Duration, MasterEvent)>,
    /// The master's other events in the same time (link events: sessions and the like, which
    /// the stream does not show and so the replay leaves out).
    pub other: usize,
    /// The simulation's trace hash (equal seeds give equal storms).
    pub trace_hash: String,
}

/// Runs `cfg` (with the master's events kept) and takes the master's events from `from` on.
pub fn simulate(cfg: &DayConfig, from: Duration) -> Storm {
    let cfg = DayConfig { keep_master_events: true, ..cfg.clone() };
    let (report, sim) = day::run_keep(&cfg);
    let from = START + from;
    let mut storm = Storm { events: Vec::new(), other: 0, trace_hash: report.trace_hash };
    for (t, event) in sim.master_events.into_iter().filter(|(t, _)| *t >= from) {
        match event {
            MasterEvent::Presence(_) => storm.events.push((t.saturating_since(from), event)),
            // The stream shows these; the simulated day has none (its nodes start enrolled and
            // it sends no messages or requests). Leaving them out would understate the storm.
            MasterEvent::Delivered { .. }
            | MasterEvent::DeliveryFailed { .. }
            | MasterEvent::Response { .. }
            | MasterEvent::RequestFailed { .. }
            | MasterEvent::Report { .. }
            | MasterEvent::Link(LinkEvent::PeerEnrolled { .. }) => {
                panic!("the replay does not carry {event:?}")
            }
            _ => storm.other += 1,
        }
    }
    storm
}

impl Storm {
    /// How many events of each kind: joined, parted, moved, rerouted.
    pub fn kinds(&self) -> [usize; 4] {
        let mut n = [0; 4];
        for (_, e) in &self.events {
            n[kind_index(e)] += 1;
        }
        n
    }

    /// The busiest second of simulated time: its events.
    pub fn peak_per_second(&self) -> usize {
        peak_in_window(self.events.iter().map(|(t, _)| *t), Duration::from_secs(1))
    }

    /// Writes the storm as text (one event a line), for a benchmark that simulates in a child
    /// process so the simulator's memory stays out of the replay's.
    pub fn write(&self, path: &Path) {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        writeln!(out, "{} {}", self.trace_hash, self.other).unwrap();
        for (t, e) in &self.events {
            let MasterEvent::Presence(p) = e else { unreachable!("only presence is kept") };
            let line = match p {
                PresenceEvent::Joined { node, lsn } => format!("j {node} {lsn}"),
                PresenceEvent::Parted { node, reason } => format!("p {node} {}", u8::from(*reason)),
                PresenceEvent::Moved { node, from, to } => format!("m {node} {from} {to}"),
                PresenceEvent::Rerouted { node, from, to } => format!("r {node} {from} {to}"),
                other => panic!("unknown presence event {other:?}"),
            };
            writeln!(out, "{} {line}", t.as_micros()).unwrap();
        }
        out.flush().unwrap();
    }

    /// Reads what [`Storm::write`] wrote.
    pub fn read(path: &Path) -> Storm {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let head: Vec<&str> = lines.next().unwrap().split(' ').collect();
        let mut storm = Storm {
            events: Vec::new(),
            other: head[1].parse().unwrap(),
            trace_hash: head[0].into(),
        };
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            let id = |i: usize| f[i].parse::<NodeId>().unwrap();
            let p = match f[1] {
                "j" => PresenceEvent::Joined { node: id(2), lsn: id(3) },
                "p" => PresenceEvent::Parted {
                    node: id(2),
                    reason: PartReason::try_from(f[3].parse::<u8>().unwrap()).unwrap(),
                },
                "m" => PresenceEvent::Moved { node: id(2), from: id(3), to: id(4) },
                "r" => PresenceEvent::Rerouted { node: id(2), from: id(3), to: id(4) },
                kind => panic!("unknown kind {kind}"),
            };
            let t = Duration::from_micros(f[0].parse().unwrap());
            storm.events.push((t, MasterEvent::Presence(p)));
        }
        storm
    }
}

fn kind_index(e: &MasterEvent) -> usize {
    match e {
        MasterEvent::Presence(PresenceEvent::Joined { .. }) => 0,
        MasterEvent::Presence(PresenceEvent::Parted { .. }) => 1,
        MasterEvent::Presence(PresenceEvent::Moved { .. }) => 2,
        _ => 3,
    }
}

/// What a client should see for `e`: the stream's `type` and `node`.
fn expected(e: &MasterEvent) -> (&'static str, String) {
    let MasterEvent::Presence(p) = e else { unreachable!("only presence is kept") };
    let (kind, node) = match p {
        PresenceEvent::Joined { node, .. } => ("joined", node),
        PresenceEvent::Parted { node, .. } => ("parted", node),
        PresenceEvent::Moved { node, .. } => ("moved", node),
        PresenceEvent::Rerouted { node, .. } => ("rerouted", node),
        other => panic!("unknown presence event {other:?}"),
    };
    (kind, node.to_string())
}

/// The replay's last event, so a client knows it has seen everything (a delivery report with
/// an id no real message has).
fn end_marker() -> MasterEvent {
    MasterEvent::Delivered { id: u64::MAX, node: NodeId::from_bytes([0; 20]), rtt: Duration::ZERO }
}

/// How to replay.
#[derive(Clone, Copy, Debug)]
pub struct Replay {
    /// Simulated seconds per wall-clock second; `None`: as fast as the publisher goes.
    pub speedup: Option<f64>,
    /// Clients reading the stream as it comes.
    pub live: usize,
    /// Clients that connect first and read nothing until the whole storm is published (a
    /// stalled browser tab): the storm then waits in the server's buffers.
    pub stalled: usize,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct Client {
    /// Events received (the end marker and `lagged` notices not counted).
    pub received: usize,
    /// `lagged` notices.
    pub lagged: usize,
    /// Events those notices said were missed.
    pub missed: u64,
    /// Events that differ from the one published at their place.
    pub mismatched: usize,
    /// When each event arrived.
    pub at: Vec<Instant>,
}

/// What a replay measured.
#[derive(Debug)]
pub struct Outcome {
    /// Events published (the end marker not counted).
    pub published: usize,
    /// The live clients, then the stalled ones.
    pub clients: Vec<Client>,
    /// From the first event published until the last client had the end marker.
    pub wall: Duration,
    /// Publishing alone.
    pub publish_wall: Duration,
    /// Live clients' end-to-end lags (publish → parsed by the client), sorted.
    pub lags: Vec<Duration>,
    /// The most events a live client received in any 100 ms, per second.
    pub peak_rate: f64,
    /// Resident memory (kB): before publishing, the most while replaying, after every
    /// client had everything.
    pub rss_kb: [u64; 3],
}

impl Outcome {
    /// Events each client lost: missed (per `lagged`), or simply absent.
    pub fn lost_by_client(&self) -> Vec<u64> {
        let absent = |c: &Client| self.published.saturating_sub(c.received) as u64;
        self.clients.iter().map(|c| c.missed.max(absent(c))).collect()
    }

    /// Events lost by all clients together.
    pub fn lost(&self) -> u64 {
        self.lost_by_client().iter().sum()
    }

    /// A lag quantile in milliseconds.
    pub fn lag_ms(&self, q: f64) -> f64 {
        let i = ((self.lags.len().max(1) - 1) as f64 * q).round() as usize;
        self.lags.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// The process's resident memory now, kB (`VmRSS` of `/proc/self/status`).
pub fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Replays `storm` through a fresh master's admin API into SSE clients; see the module docs.
pub fn replay(storm: &Storm, how: Replay) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("master");
    let loopback = "127.0.0.1:0".parse().unwrap();
    let (master, admin) = runtime.block_on(async {
        let master = MasterBuilder::new(&data).listen(loopback).start().await.unwrap();
        let admin = AdminServer::start(loopback, &data, master.control()).await.unwrap();
        (master, admin)
    });
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let expected: Arc<Vec<_>> = Arc::new(storm.events.iter().map(|(_, e)| expected(e)).collect());

    let mut readers = Vec::new();
    let mut release = Vec::new();
    for i in 0..how.live + how.stalled {
        // The 200 comes after the handler subscribed: nothing published from here on is missed.
        let stream = connect(admin.addr, &token);
        let gate = (i >= how.live).then(|| {
            let (tx, rx) = mpsc::channel::<()>();
            release.push(tx);
            rx
        });
        let expected = expected.clone();
        readers.push(thread::spawn(move || read_stream(stream, &expected, gate)));
    }

    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, on) = (peak_rss.clone(), sampling.clone());
        thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let mut published_at = Vec::with_capacity(storm.events.len());
    let before = rss_kb();
    let start = Instant::now();
    for (t, event) in &storm.events {
        if let Some(speedup) = how.speedup {
            let due = start + t.div_f64(speedup);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
        published_at.push(Instant::now());
        admin.publish(event);
    }
    admin.publish(&end_marker());
    let publish_wall = start.elapsed();
    for gate in release {
        let _ = gate.send(());
    }
    let clients: Vec<Client> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let wall = start.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let after = rss_kb();

    let mut lags = Vec::new();
    let mut peak_rate = 0.0f64;
    // A client that lagged resumed past a gap: its arrivals no longer pair with publishes.
    for c in clients[..how.live].iter().filter(|c| c.missed == 0) {
        lags.extend(c.at.iter().zip(&published_at).map(|(r, p)| r.saturating_duration_since(*p)));
        let window = Duration::from_millis(100);
        peak_rate =
            peak_rate.max(peak_in_window(c.at.iter().map(|t| *t - start), window) as f64 * 10.0);
    }
    lags.sort();
    runtime.block_on(async {
        admin.shutdown().await;
        master.shutdown().await;
    });
    Outcome {
        published: storm.events.len(),
        clients,
        wall,
        publish_wall,
        lags,
        peak_rate,
        rss_kb: [before, peak_rss.load(Ordering::Relaxed).max(before), after],
    }
}

/// `GET /api/events` with the token: the body, once the 200 is in.
fn connect(addr: std::net::SocketAddr, token: &str) -> BufReader<ureq::BodyReader<'static>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // A stream that stops short fails the run instead of hanging it.
        .timeout_recv_body(Some(Duration::from_secs(300)))
        .build()
        .into();
    let reply = agent
        .get(format!("http://{addr}/api/events"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Accept", "text/event-stream")
        .call()
        .expect("GET /api/events");
    assert_eq!(reply.status(), 200);
    BufReader::with_capacity(64 * 1024, reply.into_body().into_reader())
}

/// Reads the stream up to the end marker (after `gate` opens, if any), checking each event.
fn read_stream(
    mut stream: BufReader<ureq::BodyReader<'static>>,
    expected: &[(&'static str, String)],
    gate: Option<mpsc::Receiver<()>>,
) -> Client {
    if let Some(gate) = gate {
        let _ = gate.recv();
    }
    let mut c = Client { at: Vec::with_capacity(expected.len()), ..Client::default() };
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).expect("reading the event stream") == 0 {
            panic!("the event stream closed after {} events", c.received);
        }
        let Some(data) = line.strip_prefix("data:") else { continue };
        let at = Instant::now();
        let event: Value = serde_json::from_str(data.trim()).expect("JSON event");
        match event["type"].as_str() {
            Some("lagged") => {
                c.lagged += 1;
                c.missed += event["missed"].as_u64().unwrap_or(0);
            }
            Some("delivered") if event["id"] == u64::MAX => return c,
            kind => {
                // After a `lagged` notice the stream resumes past the missed events.
                let ok = expected
                    .get(c.received + c.missed as usize)
                    .is_some_and(|(k, node)| kind == Some(*k) && event["node"] == node.as_str());
                c.mismatched += usize::from(!ok);
                c.received += 1;
                c.at.push(at);
            }
        }
    }
}

/// The most of `times` (in order) within any `window`.
fn peak_in_window(times: impl Iterator<Item = Duration>, window: Duration) -> usize {
    let times: Vec<Duration> = times.collect();
    let (mut lo, mut best) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}
