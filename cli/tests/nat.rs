//! The fleet on real Linux networking, behind real NAT (issue 15, "Proof on real networking").
//!
//! The test builds network namespaces (`netns/`): an "internet" with the master at
//! 10.200.0.1:7946, and two LANs (192.168.1.0/24, 192.168.2.0/24) behind router namespaces
//! doing iptables MASQUERADE, LAN b's with `--random-fully`; three hosts per LAN, each its own
//! namespace running one `fleetmesh node` process started from a link of
//! `fleetmesh token create`. Then, through the master's JSON log:
//!
//! 1. every node is present, and each LAN has exactly one LSN, one of its own nodes (and the
//!    operator's `fleetmesh status` and `nodes --lsn`, clients of the admin API, agree);
//! 2. SIGKILL each LAN's LSN: the LAN's other nodes are present again under a new LSN of
//!    their LAN; the killed nodes restart from their data directories (no link) and rejoin,
//!    and `fleetmesh send` reaches every node through its new LSN;
//! 3. the master restarts (SIGTERM, the same data directory) as the front door's
//!    `MasterHandle` in a re-execution of this test binary (`nat/master.rs`), because the
//!    daemon cannot send messages yet: its registry knows every node at once, every node is
//!    present again (one LSN per LAN) with no enrollment anywhere, the token files and every
//!    node's certificate are unchanged, and the message it sends to each node as it becomes
//!    present is delivered (the master's acknowledgement) and received (the node's log names
//!    the same message id).
//!
//! One restart, not a daemon restart and then a switch: each restart costs the LSNs a new
//! registration with every child re-reported, and a second would lengthen the run for no new
//! finding. (The restarted master tells each LSN it keeps in its registry to register again;
//! an LSN it missed notices at its next liveness check, `OverlayConfig::master_check`, 120 s.)
//!
//! It prints its measured figures (`--nocapture` shows them); times are reported, never
//! asserted, beyond the generous limits that stop a hung run.
//!
//! **Needs root** (namespaces, iptables) and iproute2; it installs iptables with apt-get when
//! missing. CI (`.ci/run`) runs as root. As another user it fails and says why, rather than
//! passing without having checked anything. The namespaces are removed at the end, on a
//! panic too, and a later run removes those a killed run left.

mod nat {
    pub(crate) mod master;
}
mod common;
mod netns;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use netns::{
    in_namespace,
    process::{Daemon, LogStream},
    topology::{Internet, Lan, Nat, SERVER},
    Lab,
};
use serde_json::Value;

/// This test's name: the helper master re-executes it (`nat::master`).
const TEST_NAME: &str = "a_fleet_behind_real_nat_forms_fails_over_and_survives_a_master_restart";

/// How long any one step may take before the test gives up (a hang guard, not a target).
const LIMIT: Duration = Duration::from_secs(60);

/// Nodes per LAN.
const HOSTS: usize = 3;

/// The master's address, inside the internet namespace.
fn master_addr() -> SocketAddr {
    SocketAddr::from((SERVER, 7946))
}

fn fleetmesh() -> &'static str {
    env!("CARGO_BIN_EXE_fleetmesh")
}

fn field(fields: &Value, name: &str) -> String {
    fields[name].as_str().unwrap_or_else(|| panic!("no {name} in {fields}")).to_owned()
}

/// Who is present at the master and under which LSN, from its log lines.
#[derive(Debug, Default)]
struct Presence {
    lsn_of: HashMap<String, String>,
}

impl Presence {
    fn apply(&mut self, line: &Value) {
        let fields = &line["fields"];
        let Some(node) = fields["node"].as_str() else { return };
        match fields["message"].as_str() {
            Some("node present") => {
                self.lsn_of.insert(node.to_owned(), field(fields, "lsn"));
            }
            Some("node rerouted to another LSN" | "node moved to another subnet") => {
                self.lsn_of.insert(node.to_owned(), field(fields, "to"));
            }
            Some("node parted") => {
                self.lsn_of.remove(node);
            }
            _ => {}
        }
    }

    /// The LSN of `nodes` when every one of them is present under one LSN that is one of them
    /// and its own LSN.
    fn one_lsn(&self, nodes: &[String]) -> Option<String> {
        let lsn = self.lsn_of.get(nodes.first()?)?;
        let all = nodes.iter().all(|n| self.lsn_of.get(n) == Some(lsn));
        (all && nodes.contains(lsn) && self.lsn_of.get(lsn) == Some(lsn)).then(|| lsn.clone())
    }
}

/// One node: its host, data directory, process and id.
struct Node {
    ns: String,
    dir: tempfile::TempDir,
    daemon: Daemon,
    id: String,
}

impl Node {
    fn start(name: &str, ns: &str, dir: tempfile::TempDir, link: Option<&str>) -> Node {
        let mut command = in_namespace(ns, fleetmesh());
        command.args(["node", "--data-dir"]).arg(dir.path()).args(["--log-format", "json"]);
        if let Some(link) = link {
            command.args(["--join", link]);
        }
        let mut daemon = Daemon::spawn(name, command, LogStream::Stderr);
        let id = field(&daemon.wait_message("node running", LIMIT), "node");
        Node { ns: ns.to_owned(), dir, daemon, id }
    }

    fn cert(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("node.cert")).expect("node.cert")
    }
}

/// The master daemon, from `config`.
fn start_master(ns: &str, config: &Path) -> (Daemon, SocketAddr) {
    let mut command = in_namespace(ns, fleetmesh());
    command.args(["master", "--config"]).arg(config);
    let mut master = Daemon::spawn("master", command, LogStream::Stderr);
    let running = master.wait_message("master running", LIMIT);
    let admin = field(&running, "admin").parse().expect("the admin API's address");
    (master, admin)
}

/// `fleetmesh ARGS --json` in the master's namespace, as an operator on the master's host
/// runs it: a client of the admin API, the token read from the data directory.
fn operator(ns: &str, data_dir: &Path, admin: SocketAddr, args: &[&str]) -> Value {
    let api = format!("http://{admin}");
    let out = in_namespace(ns, fleetmesh())
        .args(args)
        .args(["--json", "--api", &api, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run the fleetmesh CLI");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "fleetmesh {args:?}: {stderr}{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("fleetmesh {args:?}: {e}: {stdout}"))
}

/// `fleetmesh token create` beside the master (tokens are files: no namespace needed).
fn create_link(config: &Path, uses: u32) -> String {
    let out = Command::new(fleetmesh())
        .args(["token", "create", "--uses", &uses.to_string(), "--expires", "1h", "--config"])
        .arg(config)
        .output()
        .expect("run fleetmesh token create");
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(link.starts_with(&format!("fleetmesh://{}/join?", master_addr())), "{link}");
    link
}

/// The token files (path under `tokens/` → contents): a token use's state is its file name,
/// unused in `tokens/`, spent in `tokens/spent/`.
fn tokens(data_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["", "spent"] {
        let dir = data_dir.join("tokens").join(sub);
        for e in std::fs::read_dir(&dir).expect("tokens directory") {
            let e = e.unwrap();
            if e.path().is_file() {
                let name = format!("{sub}/{}", e.file_name().to_string_lossy());
                files.insert(name, std::fs::read(e.path()).unwrap());
            }
        }
    }
    files
}

/// Reads the master's log until every LAN's nodes are present under one LSN of their own;
/// returns each LAN's LSN and how long after `since` each LAN got there.
fn wait_lans(
    master: &mut Daemon,
    presence: &mut Presence,
    lans: &[Vec<String>],
    since: Instant,
    what: &str,
) -> (Vec<String>, Vec<Duration>) {
    let mut when: Vec<Option<Duration>> = vec![None; lans.len()];
    let check = |presence: &Presence, when: &mut Vec<Option<Duration>>| {
        for (i, lan) in lans.iter().enumerate() {
            if when[i].is_none() && presence.one_lsn(lan).is_some() {
                when[i] = Some(since.elapsed());
            }
        }
        when.iter().all(Option::is_some)
    };
    if !check(presence, &mut when) {
        master.wait_for(what, LIMIT, |line| {
            presence.apply(line);
            check(presence, &mut when).then_some(())
        });
    }
    let lsns: Vec<String> = lans.iter().map(|lan| presence.one_lsn(lan).unwrap()).collect();
    (lsns, when.into_iter().map(Option::unwrap).collect())
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[test]
fn a_fleet_behind_real_nat_forms_fails_over_and_survives_a_master_restart() {
    if let Some(helper) = nat::master::Helper::from_env() {
        return helper.run();
    }
    // Declared first, so dropped last: the daemons below are killed before their namespaces go.
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let setup = Instant::now();
    let mut internet = Internet::new(&mut lab).expect("internet namespace");
    let lan_nets: Vec<Lan> = [Nat::Masquerade, Nat::MasqueradeRandomFully]
        .into_iter()
        .map(|nat| internet.add_lan(&mut lab, nat, HOSTS).expect("a LAN behind NAT"))
        .collect();
    let setup = setup.elapsed();

    let work = tempfile::tempdir().unwrap();
    let master_dir = work.path().join("master");
    let config = work.path().join("master.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {master_dir:?}\nlisten = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            master_addr()
        ),
    )
    .unwrap();
    let (mut master, admin) = start_master(&internet.ns, &config);

    // 1. Every node present from a link, one LSN per LAN. Each LAN's link keeps one use, and
    // one more link stays unused: the restart below must leave both as they are.
    let start = Instant::now();
    let mut nodes: Vec<Vec<Node>> = Vec::new();
    for lan in &lan_nets {
        let link = create_link(&config, HOSTS as u32 + 1);
        let started = lan.hosts.iter().enumerate().map(|(i, host)| {
            let name = format!("node-{}{i}", lan.name);
            Node::start(&name, &host.ns, tempfile::tempdir().unwrap(), Some(&link))
        });
        nodes.push(started.collect());
    }
    create_link(&config, 1);
    let ids = |nodes: &[Vec<Node>]| -> Vec<Vec<String>> {
        nodes.iter().map(|lan| lan.iter().map(|n| n.id.clone()).collect()).collect()
    };
    let mut presence = Presence::default();
    let (lsns, _) = wait_lans(&mut master, &mut presence, &ids(&nodes), start, "all present");
    let all_present = start.elapsed();
    assert_eq!(presence.lsn_of.len(), 2 * HOSTS, "only our nodes: {presence:?}");
    assert_ne!(lsns[0], lsns[1], "each LAN has its own LSN");
    // The operator sees the same through the admin API: `fleetmesh status` and `nodes`.
    let status = operator(&internet.ns, &master_dir, admin, &["status"]);
    assert_eq!(
        (status["present"].as_u64(), status["lsns"].as_u64()),
        (Some(2 * HOSTS as u64), Some(2)),
        "{status}"
    );
    for (lan, lsn) in ids(&nodes).iter().zip(&lsns) {
        let under =
            operator(&internet.ns, &master_dir, admin, &["nodes", "--lsn", lsn, "--present"]);
        let mut listed: Vec<&str> =
            under["nodes"].as_array().unwrap().iter().filter_map(|n| n["id"].as_str()).collect();
        let mut expected: Vec<&str> = lan.iter().map(String::as_str).collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected, "the LSN's LAN, and only it, under the LSN");
    }

    // 2. SIGKILL each LAN's LSN: the others rejoin under a new LSN of their LAN.
    let mut killed = Vec::new();
    let kill = Instant::now();
    for (lan, lsn) in nodes.iter_mut().zip(&lsns) {
        let at = lan.iter().position(|n| &n.id == lsn).expect("the LSN is one of the LAN's nodes");
        let mut dead = lan.remove(at);
        dead.daemon.signal("-KILL");
        dead.daemon.wait_exit(LIMIT);
        killed.push(dead);
    }
    let (new_lsns, failover) =
        wait_lans(&mut master, &mut presence, &ids(&nodes), kill, "a new LSN per LAN");
    for (old, new) in lsns.iter().zip(&new_lsns) {
        assert_ne!(old, new, "a surviving node took over");
    }
    // The killed nodes come back from their data directories alone, same ids.
    for (lan, dead) in nodes.iter_mut().zip(killed) {
        let Node { ns, dir, daemon, id } = dead;
        let name = format!("{}-again", daemon.name);
        drop(daemon);
        let again = Node::start(&name, &ns, dir, None);
        assert_eq!(again.id, id, "same identity after a restart");
        lan.push(again);
    }
    wait_lans(&mut master, &mut presence, &ids(&nodes), kill, "the killed nodes back");
    // After the failover, `fleetmesh send` reaches every node through its new LSN, and the
    // node's log names the message.
    let sends = Instant::now();
    for node in nodes.iter_mut().flatten() {
        let sent =
            operator(&internet.ns, &master_dir, admin, &["send", &node.id, "after the failover"]);
        assert_eq!(sent["outcome"], "delivered", "{sent}");
        let got = node.daemon.wait_message("message from the master", LIMIT);
        assert_eq!(got["id"], sent["id"], "the node got the message the CLI sent");
    }
    let sends = sends.elapsed();

    // 3. Restart the master (SIGTERM; the same data directory) as the front door's
    // MasterHandle, which can send (`nat/master.rs`): the same fleet, tokens and certificates,
    // nobody enrolls again, and a message reaches each node.
    let tokens_before = tokens(&master_dir);
    let certs_before: Vec<Vec<u8>> = nodes.iter().flatten().map(Node::cert).collect();
    for node in nodes.iter_mut().flatten() {
        node.daemon.drain();
    }
    let lines_before: Vec<usize> = nodes.iter().flatten().map(|n| n.daemon.seen.len()).collect();
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
    drop(master);
    let restart = Instant::now();
    let (mut helper, known) = start_helper(&internet.ns, &master_dir);
    assert_eq!(known, 2 * HOSTS, "the master's registry knows every node after its restart");
    let lans = ids(&nodes);
    let everyone: Vec<String> = lans.concat();
    let mut presence = Presence::default();
    let mut delivered: HashMap<String, u64> = HashMap::new();
    let mut present_again = None;
    // The restarted master wakes the LSNs its registry keeps; one it missed notices at its
    // next liveness check (OverlayConfig::master_check, 120 s, at its next keepalive): up to
    // ~165 s, inside the limit.
    helper.wait_for("all present again, a message delivered to each", 3 * LIMIT, |line| {
        presence.apply(line);
        let fields = &line["fields"];
        if fields["message"] == "message delivered" {
            delivered.insert(field(fields, "node"), fields["id"].as_u64().expect("an id"));
        }
        if present_again.is_none() && lans.iter().all(|lan| presence.one_lsn(lan).is_some()) {
            present_again = Some(restart.elapsed());
        }
        (present_again.is_some() && everyone.iter().all(|n| delivered.contains_key(n)))
            .then_some(())
    });
    let all_delivered = restart.elapsed();
    let present_again = present_again.expect("all present");
    assert!(
        !helper.seen.iter().any(|l| l.contains("node enrolled")),
        "nobody enrolled again: {}",
        helper.seen.join("\n")
    );
    assert_eq!(tokens(&master_dir), tokens_before, "tokens unchanged by the restart");
    let certs_after: Vec<Vec<u8>> = nodes.iter().flatten().map(Node::cert).collect();
    assert_eq!(certs_after, certs_before, "certificates unchanged");
    for (node, before) in nodes.iter_mut().flatten().zip(lines_before) {
        let id = delivered[&node.id];
        node.daemon.wait_for("the master's message", LIMIT, |line| {
            let fields = &line["fields"];
            (fields["message"] == "message from the master" && fields["id"] == id).then_some(())
        });
        let since = &node.daemon.seen[before..];
        let enrolled = since.iter().any(|l| l.contains("certificate received"));
        assert!(!enrolled, "{} did not enroll again: {}", node.daemon.name, since.join("\n"));
    }

    println!("nat report:");
    for lan in &lan_nets {
        println!("  {lan}");
    }
    println!("  namespaces set up: {} (1 internet, 2 routers, {} hosts)", ms(setup), 2 * HOSTS);
    println!("  all {} nodes present from their links: {}", 2 * HOSTS, ms(all_present));
    for (lan, t) in lan_nets.iter().zip(&failover) {
        println!(
            "  LAN {} ({:?}): LSN SIGKILLed -> others under a new LSN: {}",
            lan.name,
            lan.nat,
            ms(*t)
        );
    }
    println!("  master restarted -> all present again: {}", ms(present_again));
    println!(
        "  fleetmesh send to all {} nodes after the failover (CLI, sequential): {}",
        2 * HOSTS,
        ms(sends)
    );
    println!("  master restarted -> a message delivered to each: {}", ms(all_delivered));
    let rtts: Vec<f64> = helper
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["fields"]["rtt_ms"].as_f64())
        .collect();
    println!("  delivery round trips: {rtts:.1?} ms");
}

/// Re-executes this test in the internet namespace as the helper master (`nat::master`).
/// Returns it, and how many nodes its registry knows at start.
fn start_helper(ns: &str, data_dir: &Path) -> (Daemon, usize) {
    let exe: PathBuf = std::env::current_exe().expect("the test binary");
    let mut command = in_namespace(ns, exe);
    command
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(nat::master::DATA_DIR_ENV, data_dir)
        .env(nat::master::LISTEN_ENV, master_addr().to_string());
    let mut helper = Daemon::spawn("helper master", command, LogStream::Stdout);
    let running = helper.wait_message("master running", LIMIT);
    (helper, running["known"].as_u64().expect("known") as usize)
}
