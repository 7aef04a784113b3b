//! Reach between LANs behind real Linux NAT: directly where the NATs allow it, through a
//! real GSN where they do not (issue 16, "Proof: real Linux NAT").
//!
//! The test builds network namespaces (`netns/`): an "internet" with the master at
//! 10.200.0.1:7946 and a second public server at 10.200.0.2, and three LANs behind iptables
//! routers: LANs a and b do `MASQUERADE` (one public port per host for every destination,
//! filtering what the host did not send to), LAN c `MASQUERADE --random-fully` (a random
//! public port per flow: a symmetric NAT no port prediction can follow). Two `fleetmesh
//! node` processes per LAN, one on the public server.
//!
//! 1. The public node finds that the master sees it at its own address (NAT class "public
//!    mapping"), so the master makes it a GSN. (Before `own_network`, a node told to listen on
//!    the second of its host's addresses took the first as its own and was never public.)
//! 2. Every LAN node's DHT (every node serves it here: `--dht-mode server`) contacts the
//!    nodes of the other LANs as it joins, through an introduction. Between a and b the punch opens both NATs: every node of a and b has a
//!    direct session with a node of the other LAN, at that LAN's router's address, and no
//!    session between a and b ever goes through the relay. This needs both halves of the
//!    punch to go ahead with a low TTL (`EndpointConfig::punch_ttl`): a packet that reaches a
//!    Linux router before its host has sent to us is kept as a flow for 30 s, and the host's
//!    own packets to us then leave from another port, which our NAT drops. Without it every
//!    a–b session was relayed, and moved to a direct path only with the first upgrade.
//! 3. Every pair with LAN c runs through the GSN: each node of a and b logs a session
//!    relayed through it with a node of c, and each node of c one with a node of a or b.
//!
//! It prints its measured figures (`--nocapture` shows them). Needs root, like `nat.rs`.

mod common;
mod netns;

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use netns::{
    in_namespace,
    process::{Daemon, LogStream},
    topology::{Internet, Nat, SERVER},
    Lab,
};
use serde_json::Value;

/// How long any one step may take before the test gives up (a hang guard, not a target).
const LIMIT: Duration = Duration::from_secs(60);

/// How long a LAN node may take to show a session: a direct one may come only with the
/// first upgrade from the relay (`UPGRADE_FIRST`, 35 s), when an early dial had left the
/// peer's router holding its port (see the module docs).
const DIRECT_LIMIT: Duration = Duration::from_secs(90);

/// The bulk transfers' size.
const TRANSFER: u64 = 20_000_000;

/// Nodes per LAN.
const HOSTS: usize = 2;

/// Info, and the NAT classification's debug line (it names the class and the addresses).
const LOG_LEVEL: &str = "info,fleetmesh::node=debug,fleetmesh_proto::overlay::node::nat=debug";

fn fleetmesh() -> &'static str {
    env!("CARGO_BIN_EXE_fleetmesh")
}

fn field(fields: &Value, name: &str) -> String {
    fields[name].as_str().unwrap_or_else(|| panic!("no {name} in {fields}")).to_owned()
}

/// Starts `fleetmesh node` in namespace `ns`, enrolling with `link`; waits until it runs.
fn start_node(
    name: &str,
    ns: &str,
    dir: &Path,
    link: &str,
    listen: Option<SocketAddr>,
) -> (Daemon, String) {
    let mut command = in_namespace(ns, fleetmesh());
    command.args(["node", "--data-dir"]).arg(dir);
    command.args(["--log-format", "json", "--log-level", LOG_LEVEL, "--join", link]);
    // Every node serves the DHT, so the LANs' DHTs contact each other as they join (step 2):
    // by default a node behind a NAT that filters only uses the DHT and opens no such session.
    command.args(["--dht-mode", "server"]);
    if let Some(listen) = listen {
        command.args(["--listen", &listen.to_string()]);
    }
    let mut daemon = Daemon::spawn(name, command, LogStream::Stderr);
    let id = field(&daemon.wait_message("node running", LIMIT), "node");
    (daemon, id)
}

#[test]
fn lans_behind_real_nat_reach_each_other_directly_or_through_a_gsn() {
    // Declared first, so dropped last: the daemons below are killed before their namespaces go.
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let mut internet = Internet::new(&mut lab).expect("internet namespace");
    let gsn_ip = internet.add_server(&mut lab, 2).expect("a second public address");
    let lans: Vec<_> =
        [Nat::Masquerade, Nat::Masquerade, Nat::MasqueradeRandomFully, Nat::MasqueradeNoUdp]
            .into_iter()
            .map(|nat| internet.add_lan(&mut lab, nat, HOSTS).expect("a LAN behind NAT"))
            .collect();

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("master.toml");
    let master_dir = work.path().join("master");
    let toml = format!(
        "data_dir = {master_dir:?}\nlisten = \"{SERVER}:7946\"\nadmin_listen = \"127.0.0.1:7947\"\n\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n"
    );
    std::fs::write(&config, toml).unwrap();
    let mut command = in_namespace(&internet.ns, fleetmesh());
    command.args(["master", "--config"]).arg(&config);
    let mut master = Daemon::spawn("master", command, LogStream::Stderr);
    master.wait_message("master running", LIMIT);
    let out = Command::new(fleetmesh())
        .args(["token", "create", "--uses", "10", "--expires", "1h", "--config"])
        .arg(&config)
        .output()
        .expect("run fleetmesh token create");
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    // 1. The public node: classified public, hence appointed GSN by the master.
    let start = Instant::now();
    let listen = SocketAddr::from((gsn_ip, 7946));
    let gsn_dir = work.path().join("gsn");
    let (mut gsn, gsn_id) = start_node("gsn", &internet.ns, &gsn_dir, &link, Some(listen));
    let class = gsn.wait_message("nat classified", LIMIT);
    assert!(field(&class, "class").starts_with("public mapping"), "{class}");
    assert_eq!(field(&class, "observed"), listen.to_string(), "{class}");
    let gsn_public = start.elapsed();
    // Its report reaches the master a datagram later; the LAN nodes come after it.
    std::thread::sleep(Duration::from_millis(500));

    // 2. The LANs' nodes.
    let mut nodes: Vec<(usize, Daemon, String)> = Vec::new();
    for (l, lan) in lans.iter().enumerate() {
        for (i, host) in lan.hosts.iter().enumerate() {
            let name = format!("node-{}{i}", lan.name);
            let dir = work.path().join(&name);
            let (daemon, id) = start_node(&name, &host.ns, &dir, &link, None);
            nodes.push((l, daemon, id));
        }
    }
    let lan_of: HashMap<String, usize> = nodes.iter().map(|(l, _, id)| (id.clone(), *l)).collect();
    // LANs no punch opens: random ports, or no UDP at all.
    let hard = |l: usize| lans[l].nat != Nat::Masquerade;
    let mut rows = Vec::new();
    for (l, daemon, id) in &mut nodes {
        let l = *l;
        // Relayed: every pair with a LAN no punch or prediction opens.
        let relayed = seen_or_wait(daemon, "a session relayed with a hard LAN", |fields| {
            let message = fields["message"].as_str()?;
            let peer = fields["peer"].as_str()?;
            let p = *lan_of.get(peer)?;
            if message.starts_with("session relayed through a GSN")
                && p != l
                && (hard(l) || hard(p))
            {
                assert_eq!(fields["gsn"].as_str(), Some(gsn_id.as_str()), "{fields}");
                return Some(peer.to_owned());
            }
            None
        });

        // Direct: the other plain-MASQUERADE LAN, at its router's public address.
        let direct = (!hard(l)).then(|| {
            let direct =
                seen_or_wait(daemon, "a direct session with the other MASQUERADE LAN", |fields| {
                    let peer = fields["peer"].as_str()?;
                    let p = *lan_of.get(peer)?;
                    let addr: SocketAddr = fields["addr"].as_str()?.parse().ok()?;
                    (fields["message"] == "session opened"
                        && p != l
                        && !hard(p)
                        && addr.ip() == lans[p].public_addr)
                        .then(|| (peer.to_owned(), addr))
                });
            direct
        });
        daemon.drain();
        let parsed = |l: &String| serde_json::from_str::<Value>(l).ok();
        let class =
            daemon.seen.iter().filter(|l| l.contains("\"nat classified\"")).find_map(parsed);
        let class = class.map(|c| field(&c["fields"], "class")).unwrap_or_default();
        // Whether the direct session replaced a relayed one (the relay carried the pair
        // first, until the upgrade), or stood from the start.
        let upgraded = direct.as_ref().is_some_and(|((peer, _), _)| {
            daemon.seen.iter().filter_map(parsed).any(|line| {
                let f = &line["fields"];
                f["message"] == "relayed session moved to a direct path"
                    && f["peer"] == peer.as_str()
            })
        });
        rows.push((id.clone(), class, relayed, direct, upgraded));
    }

    // No pair of the two MASQUERADE LANs went through the relay, not even first.
    let mut relayed_pairs: HashMap<(String, String), usize> = HashMap::new();
    for (l, daemon, _) in &mut nodes {
        daemon.drain();
        for line in daemon.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
            let f = &line["fields"];
            let peer = f["peer"].as_str().and_then(|p| lan_of.get(p));
            if let (Some(&p), true) =
                (peer, f["message"] == "session relayed through a GSN (hole punching failed)")
            {
                *relayed_pairs.entry((lans[*l].name.clone(), lans[p].name.clone())).or_default() +=
                    1;
            }
        }
    }
    for ((from, to), n) in &relayed_pairs {
        let (f, t) = (lans.iter().find(|l| l.name == *from), lans.iter().find(|l| l.name == *to));
        let hard =
            f.zip(t).is_some_and(|(f, t)| f.nat != Nat::Masquerade || t.nat != Nat::Masquerade);
        assert!(hard, "{n} relayed sessions from LAN {from} to LAN {to}, which punching opens");
    }

    // 4. A 20 MB bulk transfer each way the NATs allow: direct between the MASQUERADE LANs,
    // through the GSN with a hard LAN (at its 1 MiB/s default circuit rate).
    let transfer = |from: &str, to: &str, addr: SocketAddr| {
        let body = format!("{{\"peer\":\"{to}\",\"addr\":\"{addr}\",\"bytes\":{TRANSFER}}}");
        let out = in_namespace(&internet.ns, fleetmesh())
            .args(["request", from, "transfer", &body, "--wait", "60s", "--config"])
            .arg(&config)
            .output()
            .expect("run fleetmesh request");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        let start = stdout.find('{').unwrap_or_else(|| panic!("no answer: {stdout}"));
        let answer: Value = serde_json::from_str(stdout[start..].trim()).expect("the answer");
        assert_eq!(answer["bytes"], TRANSFER, "{answer}");
        answer
    };
    let (from, _, _, direct, _) = rows.iter().find(|r| r.3.is_some()).expect("a direct pair");
    let ((direct_to, addr), _) = direct.clone().expect("direct");
    let direct_answer = transfer(from, &direct_to, addr);
    assert_eq!(direct_answer["path"], "direct", "{direct_answer}");
    let (from, _, (relayed_to, _), _, _) = &rows[0];
    let addr = SocketAddr::from((lans[lan_of[relayed_to]].public_addr, 7946));
    let relayed_answer = transfer(from, relayed_to, addr);
    assert_eq!(relayed_answer["path"], "relayed", "{relayed_answer}");
    assert_eq!(relayed_answer["via"], gsn_id.as_str(), "{relayed_answer}");
    // `fleetmesh ping --from` shows each pair's path.
    let ping = |from: &str, to: &str| {
        let out = in_namespace(&internet.ns, fleetmesh())
            .args(["ping", to, "--from", from, "--config"])
            .arg(&config)
            .output()
            .expect("run fleetmesh ping");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let direct_from = &rows.iter().find(|r| r.3.is_some()).expect("a direct pair").0;
    let line = ping(direct_from, &direct_to);
    assert!(line.trim_end().ends_with("ms, direct"), "{line}");
    let line = ping(from, relayed_to);
    assert!(line.contains(&format!("relayed via GSN {}", &gsn_id[..12])), "{line}");
    // Each receiver logged the whole payload.
    for to in [&direct_to, relayed_to] {
        let (_, daemon, _) = nodes.iter_mut().find(|(_, _, id)| id == to).expect("receiver");
        seen_or_wait(daemon, "the transfer received", |f| {
            (f["message"] == "bulk transfer received" && f["bytes"] == TRANSFER).then_some(())
        });
    }

    println!("reach report:");
    for lan in &lans {
        println!("  {lan}");
    }
    println!(
        "  GSN {gsn_id} at {listen}: classified public {} ms after start",
        gsn_public.as_millis()
    );
    let ms = |t: &Duration| t.as_millis();
    for (id, class, (relayed, t), direct, upgraded) in &rows {
        let lan = &lans[lan_of[id]];
        let class = if class.is_empty() { "its LSN's" } else { class };
        println!("  node {} (LAN {}, {:?}; class: {class}):", &id[..8], lan.name, lan.nat);
        let peer_lan = &lans[lan_of[relayed]].name;
        println!(
            "    relayed through the GSN with {} (LAN {peer_lan}) {} ms after it started",
            &relayed[..8],
            ms(t)
        );
        if let Some(((peer, addr), t)) = direct {
            let how = if *upgraded { "after an upgrade from the relay" } else { "from the start" };
            let peer_lan = &lans[lan_of[peer]].name;
            println!(
                "    direct with {} (LAN {peer_lan}) at {addr} {} ms after it started, {how}",
                &peer[..8],
                ms(t)
            );
        }
    }
    let mut pairs: Vec<_> = relayed_pairs.into_iter().collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.iter().map(|((f, t), n)| format!("{f}→{t} {n}")).collect();
    println!(
        "  relayed sessions opened, by LAN pair (each side logs its own): {}",
        pairs.join(", ")
    );
    for (what, a) in [("direct", &direct_answer), ("relayed", &relayed_answer)] {
        println!(
            "  {TRANSFER}-byte transfer, {what}: {:.0} ms, {:.1} MB/s",
            a["millis"].as_f64().unwrap_or_default(),
            a["mb_per_s"].as_f64().unwrap_or_default()
        );
    }
}

/// The first log line (already read, or read within [`DIRECT_LIMIT`]) whose fields `f` takes.
/// Returns it with how long after the node's "node running" line it was logged.
fn seen_or_wait<T>(
    daemon: &mut Daemon,
    what: &str,
    mut f: impl FnMut(&Value) -> Option<T>,
) -> (T, Duration) {
    let mut f = |line: &Value| f(&line["fields"]).map(|found| (found, log_time(line)));
    let old = daemon.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok());
    let (found, at) = match old.into_iter().find_map(|line| f(&line)) {
        Some(found) => found,
        None => daemon.wait_for(what, DIRECT_LIMIT, f),
    };
    let running = daemon.seen.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok());
    let running = running.into_iter().find(|l| l["fields"]["message"] == "node running");
    let since = running.map(|l| log_time(&l)).unwrap_or(at);
    // A line logged across midnight is a day later.
    let secs = (at - since).rem_euclid(86_400.0);
    (found, Duration::from_secs_f64(secs))
}

/// A JSON log line's time of day in seconds (`"timestamp":"2026-12-07T02:39:04.723456Z"`).
fn log_time(line: &Value) -> f64 {
    let stamp = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
    let time = stamp.split('T').nth(1).unwrap_or_default().trim_end_matches('Z');
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap_or(f64::NAN)).collect();
    assert_eq!(parts.len(), 3, "timestamp {stamp}");
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}
