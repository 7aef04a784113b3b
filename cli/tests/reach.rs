//! Reach between LANs behind real Linux NAT through a real GSN (issue 16, "Proof: real Linux
//! NAT").
//!
//! The test builds network namespaces (`netns/`): an "internet" with the master at
//! 10.200.0.1:7946 and a second public server at 10.200.0.2, and two LANs behind iptables
//! routers: LAN a does `MASQUERADE` (it keeps a flow's source port when it can), LAN b
//! `MASQUERADE --random-fully` (a random public port per flow: a symmetric NAT no port
//! prediction can follow). Two `fleetmesh node` processes per LAN, one on the public server.
//!
//! 1. The public node finds that the master sees it at its own address (NAT class "public
//!    mapping"), so the master makes it a GSN. (Before `own_network`, a node told to listen on
//!    the second of its host's addresses took the first as its own and was never public.)
//! 2. Every LAN node's DHT contacts the nodes of the other LAN as it joins. Their NATs defeat
//!    the dial and the introduction's hole punching (LAN b's ports are random), so each such
//!    session runs through the GSN: every LAN node logs a session relayed through it with a
//!    node of the other LAN, the end-to-end handshake having completed through the relay.
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

/// Nodes per LAN.
const HOSTS: usize = 2;

/// Info, and the NAT classification's debug line (it names the class and the addresses).
const LOG_LEVEL: &str = "info,fleetmesh_proto::overlay::node::nat=debug";

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
    if let Some(listen) = listen {
        command.args(["--listen", &listen.to_string()]);
    }
    let mut daemon = Daemon::spawn(name, command, LogStream::Stderr);
    let id = field(&daemon.wait_message("node running", LIMIT), "node");
    (daemon, id)
}

#[test]
fn lans_behind_real_nat_reach_each_other_through_a_gsn() {
    // Declared first, so dropped last: the daemons below are killed before their namespaces go.
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let mut internet = Internet::new(&mut lab).expect("internet namespace");
    let gsn_ip = internet.add_server(&mut lab, 2).expect("a second public address");
    let lans: Vec<_> = [Nat::Masquerade, Nat::MasqueradeRandomFully]
        .into_iter()
        .map(|nat| internet.add_lan(&mut lab, nat, HOSTS).expect("a LAN behind NAT"))
        .collect();

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("master.toml");
    let master_dir = work.path().join("master");
    let toml = format!(
        "data_dir = {master_dir:?}\nlisten = \"{SERVER}:7946\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
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
    let start = Instant::now();
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
    let mut relayed = Vec::new();
    let mut classes = Vec::new();
    for (l, daemon, id) in &mut nodes {
        let l = *l;
        let peer = daemon.wait_for("a session relayed with the other LAN", LIMIT, |line| {
            let fields = &line["fields"];
            let message = fields["message"].as_str()?;
            if message.starts_with("session relayed through a GSN") {
                let peer = fields["peer"].as_str()?;
                assert_eq!(fields["gsn"].as_str(), Some(gsn_id.as_str()), "{line}");
                return (lan_of.get(peer).is_some_and(|&p| p != l)).then(|| peer.to_owned());
            }
            None
        });
        relayed.push((id.clone(), peer, start.elapsed()));
        daemon.drain();
        let class = daemon.seen.iter().find(|l| l.contains("\"nat classified\""));
        let class = class.and_then(|l| serde_json::from_str::<Value>(l).ok());
        classes.push(class.map(|c| field(&c["fields"], "class")).unwrap_or_default());
    }

    println!("reach report:");
    for lan in &lans {
        println!("  {lan}");
    }
    println!(
        "  GSN {gsn_id} at {listen}: classified public {} ms after start",
        gsn_public.as_millis()
    );
    for ((id, peer, t), class) in relayed.iter().zip(&classes) {
        let (lan, peer_lan) = (&lans[lan_of[id]], &lans[lan_of[peer]]);
        println!(
            "  node {} (LAN {}, {:?}; class: {}): relayed session with {} (LAN {}) {} ms after the LANs started",
            &id[..8],
            lan.name,
            lan.nat,
            if class.is_empty() { "its LSN's" } else { class },
            &peer[..8],
            peer_lan.name,
            t.as_millis()
        );
    }
}
