//! kill -9 the master in the middle of an enrollment storm: after its restart no state is
//! corrupt, no token use is spent twice, and every node is present again.
//!
//! `NODES` node processes start at once with one link of `NODES` uses; once a third of them
//! enrolled, the master gets SIGKILL and is started again on the same data directory and port.
//! The nodes whose enrollment was cut off retry against the restarted master (a node whose
//! answer was lost is admitted again by the record of the use it spent). The figure is
//! 1,000 nodes; a CI machine of 2 cores runs this with 24 processes and prints its timings.

mod common;

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    time::{Duration, Instant},
};

use common::{field, fleetmesh, free_port, node_args, Daemon, LIMIT};

const NODES: usize = 24;

fn master_config(dir: &std::path::Path, port: u16) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        dir.join("master")
    )
}

#[test]
fn a_master_killed_during_an_enrollment_storm_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), port)).unwrap();
    let config_arg = config.to_str().unwrap();
    let mut master = fleetmesh("master", &["master", "--config", config_arg]);
    master.wait_message("master running", LIMIT);
    let uses = NODES.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["token", "create", "--config", config_arg, "--uses", &uses, "--expires", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    // The storm: every node at once.
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = Instant::now();
    let mut nodes: Vec<Daemon> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| fleetmesh(&format!("node{i}"), &node_args(d.path(), Some(&link))))
        .collect();
    let mut enrolled = HashSet::new();
    master.wait_for("a third enrolled", LIMIT, |line| {
        if line["fields"]["message"] == "node enrolled" {
            enrolled.insert(field(&line["fields"], "node"));
        }
        (enrolled.len() >= NODES / 3).then_some(())
    });
    master.signal("-KILL");
    assert_eq!(master.wait_exit(LIMIT), None, "killed by a signal");
    let killed_after = start.elapsed();

    // Restart on the same data directory: it must open its state and go on.
    let restart = Instant::now();
    let mut master = fleetmesh("master-again", &["master", "--config", config_arg]);
    master.wait_message("master running", LIMIT);
    let ids: Vec<String> =
        nodes.iter_mut().map(|n| field(&n.wait_message("node running", LIMIT), "node")).collect();
    let mut present: HashMap<String, bool> = HashMap::new();
    // The nodes enrolled before the kill sit under an LSN that notices the restart at its next
    // check of the master (every 60 s by default), then registers its children again.
    master.wait_for("every node present", Duration::from_secs(180), |line| {
        let fields = &line["fields"];
        if fields["message"] == "node present" {
            present.insert(field(fields, "node"), true);
        }
        ids.iter().all(|id| present.contains_key(id)).then_some(())
    });
    let back_after = restart.elapsed();

    // Every use spent exactly once, each by a different one of our nodes.
    let spent: Vec<String> = std::fs::read_dir(dir.path().join("master/tokens/spent"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let by: HashSet<&str> = spent.iter().map(|name| name.rsplit('.').next().unwrap()).collect();
    let ours: HashSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(spent.len(), NODES, "{spent:?}");
    assert_eq!(by, ours, "each use admitted one of our nodes");
    let unused = std::fs::read_dir(dir.path().join("master/tokens"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(unused, 0);

    println!(
        "crash: nodes={NODES} enrolled_before_kill={} killed_after_ms={} all_present_after_restart_ms={}",
        enrolled.len(),
        killed_after.as_millis(),
        back_after.as_millis()
    );
    for node in &mut nodes {
        node.signal("-TERM");
        assert_eq!(node.wait_exit(LIMIT), Some(0), "{}", node.seen.join("\n"));
    }
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0));
}
