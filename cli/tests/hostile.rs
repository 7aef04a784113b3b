//! Hostile input over loopback (issue 18's proof): a master daemon, an LSN and two nodes run
//! while the test throws at them, from hundreds of real distinct sources (127.x.y.z):
//!
//! * random datagrams of every size, some dressed as each packet type;
//! * captures of real traffic (a fresh identity's handshake and enrollment with the master, a
//!   handshake with the LSN), truncated at every length, bit-flipped, and replayed both from
//!   their own source and from others;
//! * a handshake flood: precomputed messages 1 from fresh identities, sent from sources spread
//!   one per /24 (as spoofed ones would be), to the master and the LSN;
//! * a flood of fresh identities that complete the handshake and ask to enroll with a wrong
//!   token, a spent one and none (the master takes only token enrollment);
//! * TCP: idle connections, garbage, bad hellos, oversized length prefixes, junk frames.
//!
//! Meanwhile the operator sends messages and requests to every node through the admin API.
//! The attack comes in three waves. Asserted: no process dies; every message and request is
//! delivered and answered, during and after each wave; every node stays present; no fresh
//! identity is admitted; the handshake flood gets fewer bytes back than it sent; the attack
//! is counted (`fleetmesh_refused_total`); and once a wave's state has expired (half-open
//! handshakes and enrollment sessions both go 10 s after their last datagram) the master's
//! memory does not grow from one wave to the next. RSS figures (against the value before the
//! attack), drops at full socket buffers and timings are printed, never asserted.
//!
//! The floods are paced (a few thousand datagrams a second per target) so that the test is
//! about what hostile bytes and state do, not about the kernel's socket buffers: a flood that
//! fills those drops legitimate datagrams too. The master sends a message again every second
//! until acknowledged (`master/delivery.rs`), so such a drop delays it; before that, one
//! dropped datagram failed it.

#[path = "hostile/attack.rs"]
mod attack;
mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{
    field, fleetmesh,
    flood::{now, rss_kib, source_ip, Peer},
    free_port,
    http::request,
    start_nodes, Daemon, LIMIT,
};
use fleetmesh::{Event, JoinLink};
use serde_json::{json, Value};

fn master_config(dir: &std::path::Path, port: u16) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        dir.join("master")
    )
}

/// Polls `GET path` until `done` holds, or fails after `LIMIT`.
fn poll_until(admin: SocketAddr, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let reply = request(admin, "GET", path, Some(token), None);
        if reply.status == 200 && done(&reply.body) {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "{path} never satisfied: {:?}", reply.body);
        thread::sleep(Duration::from_millis(100));
    }
}

/// One legitimate message and one request to `node` through the admin API: both must arrive.
fn legitimate_round(admin: SocketAddr, token: &str, node: &str, n: usize) {
    let text = format!("legitimate message {n}");
    let sent = request(
        admin,
        "POST",
        &format!("/api/nodes/{node}/send"),
        Some(token),
        Some(&json!({ "text": text })),
    );
    assert_eq!(
        (sent.status, sent.body["outcome"].as_str()),
        (200, Some("delivered")),
        "message {n} to {node} (drops by full receive buffers of the fleet's sockets: {:?}): {sent:?}",
        fleet_drops()
    );
    let body = json!({ "kind": "ping", "body": format!("request {n}"), "wait_secs": 20 });
    let asked =
        request(admin, "POST", &format!("/api/nodes/{node}/requests"), Some(token), Some(&body));
    assert_eq!(
        (asked.status, asked.body["status"].as_str(), asked.body["body"].as_str()),
        (200, Some("ok"), Some(format!("request {n}").as_str())),
        "request {n} to {node}: {asked:?}"
    );
}

/// A datagram of real traffic: where it went, its bytes, and the socket it came from (to
/// replay it from its own source).
struct Captured {
    to: SocketAddr,
    datagram: Vec<u8>,
    own: UdpSocket,
}

/// A fresh identity's enrollment with the master (refused: wrong token) and a handshake with
/// the LSN (refused: no certificate), every datagram kept: real traffic to mangle and replay.
/// What came back is aimed at the sender of it too (a reflection).
fn capture(link: &JoinLink, lsn: SocketAddr) -> Vec<Captured> {
    let master = link.masters[0];
    let mut to_master = Peer::fresh(source_ip(60_000), link.network, Some("stolen-token"));
    to_master.ep.connect(now(), master, None);
    let failed = to_master.run_until(LIMIT, |e| {
        matches!(e, Event::EnrollmentFailed { .. } | Event::ConnectFailed { .. }).then_some(())
    });
    assert!(failed.is_some(), "the capture's enrollment was never answered");
    assert!(to_master.sent.len() >= 3 && to_master.received.len() >= 2, "a whole exchange");
    let mut to_lsn = Peer::fresh(source_ip(60_001), link.network, None);
    to_lsn.ep.connect(now(), lsn, None);
    to_lsn.run_until(Duration::from_secs(2), |_| None::<()>);
    let mut out = Vec::new();
    for (to, peer) in [(master, to_master), (lsn, to_lsn)] {
        for datagram in peer.sent.iter().chain(&peer.received) {
            out.push(Captured { to, datagram: datagram.clone(), own: peer.socket() });
        }
    }
    out
}

/// Attack waves.
const WAVES: usize = 3;

#[test]
fn a_fleet_under_hostile_input_loses_nothing_and_gives_its_memory_back() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), port)).unwrap();
    let config_arg = config.to_str().unwrap();
    let mut master = fleetmesh("master", &["master", "--config", config_arg]);
    let running = master.wait_message("master running", LIMIT);
    let admin: SocketAddr = field(&running, "admin").parse().unwrap();
    let token = std::fs::read_to_string(dir.path().join("master/admin.token")).unwrap();
    let token = token.trim().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["token", "create", "--config", config_arg, "--uses", "3", "--expires", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link_text = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let link: JoinLink = link_text.parse().unwrap();
    let spent_token = link.token.clone().unwrap();

    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&std::path::Path> = dirs.iter().map(|d| d.path()).collect();
    let (mut nodes, ids) = start_nodes(&paths, &link_text);
    let listed = poll_until(admin, &token, "/api/nodes?present=true", |b| b["count"] == 3);
    let lsn_of = |b: &Value| b["nodes"][0]["lsn"].as_str().map(str::to_owned);
    let lsn_id = lsn_of(&listed).expect("an LSN");
    let addr_of = |id: &str| -> SocketAddr {
        let node = listed["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap();
        node["addr"].as_str().unwrap().parse().unwrap()
    };
    let lsn = addr_of(&lsn_id);
    let node_addrs: Vec<SocketAddr> = ids.iter().map(|id| addr_of(id)).collect();
    *FLEET_PORTS.lock().unwrap() =
        std::iter::once(port).chain(node_addrs.iter().map(|a| a.port())).collect();
    println!("hostile: fleet up in {} ms, LSN at {lsn}", start.elapsed().as_millis());

    // Before: every node answers, and the master has settled.
    for (i, id) in ids.iter().enumerate() {
        legitimate_round(admin, &token, id, i);
    }
    thread::sleep(Duration::from_secs(1));
    let rss_before = rss_kib(master.pid());
    print_smaps(master.pid());

    let captured = capture(&link, lsn);
    let target = attack::Target {
        master: link.masters[0],
        lsn,
        nodes: node_addrs,
        network: link.network,
        spent_token,
        captured: &captured,
        admin,
        admin_token: token.clone(),
        ids: ids.clone(),
    };
    // Each wave's state must be gone (given back, or ready for reuse) before the next, so a
    // wave may not leave the master larger than the wave before it did.
    let mut after = Vec::new();
    for wave in 0..WAVES {
        let (drops_before, flood_start) = (udp_receive_buffer_drops(), Instant::now());
        let counts = attack::attack(&target, wave);
        let flood_end = Instant::now();
        let peak = rss_kib(master.pid());
        let attack::Counts { junk, handshakes, refused, tcp, rounds } = counts;
        println!(
            "hostile: wave {wave} over in {} ms: junk {} datagrams/{} bytes (answered {}/{}), messages 1 {}/{} (answered {}/{} = {:.2} bytes out per byte in), {refused} of {} fresh identities refused (the rest found no room for their handshake), {tcp} TCP connections, {rounds} legitimate rounds meanwhile; {} datagrams dropped by full UDP receive buffers on the host, at the fleet's sockets so far {:?}",
            flood_end.duration_since(flood_start).as_millis(),
            junk.0 .0, junk.0 .1, junk.1 .0, junk.1 .1, handshakes.0 .0, handshakes.0 .1,
            handshakes.1 .0, handshakes.1 .1, handshakes.1 .1 as f64 / handshakes.0 .1 as f64,
            attack::ENROLLMENTS,
            udp_receive_buffer_drops() - drops_before,
            fleet_drops(),
        );
        assert!(
            handshakes.1 .1 <= handshakes.0 .1,
            "more bytes to unvalidated sources than they sent"
        );

        // Alive, present, counted.
        assert!(master.alive(), "the master died:\n{}", master.seen.join("\n"));
        for node in &mut nodes {
            assert!(node.alive(), "{} died:\n{}", node.name, node.seen.join("\n"));
        }
        let status = request(admin, "GET", "/api/status", Some(&token), None);
        let counted = (status.body["present"].as_u64(), status.body["lsns"].as_u64());
        assert_eq!(counted, (Some(3), Some(1)), "{status:?}");
        let metrics = request(admin, "GET", "/metrics", Some(&token), None).text;
        let refused_total: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("fleetmesh_refused_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        // The junk to the master alone is 5,000 datagrams a wave; mangled captures add more.
        assert!(
            refused_total >= 5_000 * (wave as u64 + 1),
            "the attack is counted: {refused_total}"
        );

        // The half-open handshakes and the enrollment sessions expire 10 s after their last
        // datagram (the handshake timeout); the tables shrink back when they do, and the
        // master daemon gives the freed heap back to the OS every 5 s (cli/src/memory.rs).
        thread::sleep(Duration::from_secs(17).saturating_sub(flood_end.elapsed()));
        let rss = rss_kib(master.pid());
        println!(
            "hostile: master RSS {rss_before} KiB before the attack, {peak} KiB at the end of wave {wave}, {rss} KiB {} ms later = {:.2}x",
            flood_end.elapsed().as_millis(),
            rss as f64 / rss_before as f64
        );
        print_smaps(master.pid());
        after.push(rss);
        for (i, id) in ids.iter().enumerate() {
            legitimate_round(admin, &token, id, 10_000 + wave * 100 + i);
        }
    }
    // RSS does not always return to within 10 % of its start (1.15 to 1.25 times, BENCHMARKS.md,
    // "Hostile input"): after the trim, what stays is live or pinned by live neighbours, and the
    // code the attack ran is now resident. What is asserted is that it is kept for reuse, not
    // lost: the last wave leaves the master no more than 15 % larger than the wave before it.
    let (last, before_last) = (after[WAVES - 1], after[WAVES - 2]);
    assert!(
        last * 100 <= before_last * 115,
        "master RSS grew from {before_last} KiB after one wave to {last} KiB after the next"
    );
    println!("hostile: whole test {} ms", start.elapsed().as_millis());
    stop(&mut nodes, master);
}

/// With HOSTILE_SMAPS set, prints the process's mappings that hold more than 400 KiB: where
/// its memory is.
fn print_smaps(pid: u32) {
    if std::env::var_os("HOSTILE_SMAPS").is_none() {
        return;
    }
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut current = String::new();
    for line in smaps.lines() {
        if line.contains('-') && !line.starts_with(|c: char| c.is_ascii_uppercase()) {
            current = line.chars().take(40).collect();
        } else if let Some(kb) = line.strip_prefix("Rss:") {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            if kb > 400 {
                println!("smaps {kb} KiB {current}");
            }
        }
    }
}

/// The fleet's UDP ports, for [`fleet_drops`].
static FLEET_PORTS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// Datagrams dropped at each of the fleet's UDP sockets (the `drops` column of /proc/net/udp)
/// because its receive buffer was full: (port, drops).
fn fleet_drops() -> Vec<(u16, u64)> {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let ports = FLEET_PORTS.lock().unwrap().clone();
    ports
        .into_iter()
        .map(|port| {
            let drops = table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    let local = cols.get(1)?;
                    let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
                    (p == port).then(|| cols.last()?.parse::<u64>().ok()).flatten()
                })
                .sum();
            (port, drops)
        })
        .collect()
}

/// Datagrams the kernel dropped for a full socket receive buffer, on the whole host
/// (`RcvbufErrors` in /proc/net/snmp).
fn udp_receive_buffer_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn stop(nodes: &mut [Daemon], mut master: Daemon) {
    for node in nodes {
        node.signal("-TERM");
        assert_eq!(node.wait_exit(LIMIT), Some(0), "{}", node.seen.join("\n"));
    }
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
}
