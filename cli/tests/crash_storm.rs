//! The deployable-fleet issue's crash figure at full size: SIGKILL `fleetmesh master` while
//! 1,000 nodes enroll at once, restart it on the same data directory, and check that no token
//! use is spent twice, every node holds a certificate and every node is present again.
//!
//! The master is the daemon, a process of its own; the 1,000 nodes are embedded nodes
//! (`fleetmesh::NodeBuilder`, each with its own data directory, key, redb store and UDP+TCP
//! port on 127.0.0.1) inside this test process, since 1,000 daemon processes do not fit a
//! 2-core CI machine. `crash.rs` does the same with 24 daemon processes. The nodes run
//! without the DHT (see `start_node`).

mod common;

use std::{
    collections::HashSet,
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{field, fleetmesh, free_port, LIMIT};
use fleetmesh::{JoinLink, NodeBuilder, NodeHandle};

const NODES: usize = 1_000;

fn master_config(dir: &std::path::Path, port: u16) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        dir.join("master")
    )
}

/// Starts one embedded node from `link` and keeps its events drained (an undrained event
/// channel would hold the node back).
async fn start_node(dir: std::path::PathBuf, link: JoinLink) -> NodeHandle {
    NodeBuilder::new(dir)
        .join(link)
        .listen("127.0.0.1:0".parse().unwrap())
        .lan_discovery(false)
        // The storm and the restart take a while on a busy 2-core machine.
        .enroll_timeout(Duration::from_secs(240))
        // One process holds every node's sockets, both ends of every connection between them
        // and its 20,000-descriptor limit: without the DHT's sessions to many peers (over TCP
        // once an overloaded loopback makes UDP handshakes slow) it stays under it. Enrollment,
        // tokens and presence, what this test checks, do not involve the DHT.
        .configure(|overlay| overlay.dht = overlay.dht.clone().enabled(false))
        .start()
        .await
        .expect("the node enrolls")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_during_a_1000_node_enrollment_storm_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), port)).unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let mut master = fleetmesh("master", &["master", "--config", &config_arg]);
    master.wait_message("master running", LIMIT);
    let uses = NODES.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["token", "create", "--config", &config_arg, "--uses", &uses, "--expires", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link: JoinLink = String::from_utf8(out.stdout).unwrap().trim().parse().unwrap();

    // The storm: every node at once.
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let start = Instant::now();
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = dirs
        .iter()
        .map(|d| {
            let (dir, link, started) = (d.path().to_owned(), link.clone(), started.clone());
            tokio::spawn(async move {
                let node = start_node(dir, link).await;
                started.fetch_add(1, Ordering::Relaxed);
                node
            })
        })
        .collect();

    // SIGKILL once a third have enrolled (the master logs each enrollment).
    let mut enrolled = HashSet::new();
    let killed_master = tokio::task::spawn_blocking(move || {
        master.wait_for("a third enrolled", LIMIT * 3, |line| {
            if line["fields"]["message"] == "node enrolled" {
                enrolled.insert(field(&line["fields"], "node"));
            }
            (enrolled.len() >= NODES / 3).then_some(())
        });
        master.signal("-KILL");
        assert_eq!(master.wait_exit(LIMIT), None, "killed by a signal");
        (master, enrolled.len())
    })
    .await
    .unwrap();
    let (killed, enrolled_before_kill) = (start.elapsed(), killed_master.1);
    drop(killed_master.0);

    // Restart on the same data directory: it must open its state and go on.
    let restart = Instant::now();
    let config_again = config_arg.clone();
    let mut master = tokio::task::spawn_blocking(move || {
        let mut m = fleetmesh("master-again", &["master", "--config", &config_again]);
        m.wait_message("master running", LIMIT);
        m
    })
    .await
    .unwrap();
    let mut nodes = Vec::new();
    for task in tasks {
        nodes.push(task.await.expect("the node task"));
    }
    let all_enrolled = restart.elapsed();
    assert_eq!(started.load(Ordering::Relaxed), NODES);
    let ids: HashSet<String> = nodes.iter().map(|n| n.id().to_string()).collect();
    assert_eq!(ids.len(), NODES, "every node its own identity");

    // Every node present at the restarted master, as its log says.
    let wanted = ids.clone();
    let (master_back, present_after) = tokio::task::spawn_blocking(move || {
        let mut present = HashSet::new();
        master.wait_for("every node present", Duration::from_secs(300), |line| {
            let fields = &line["fields"];
            if fields["message"] == "node present" {
                present.insert(field(fields, "node"));
            }
            wanted.iter().all(|id| present.contains(id)).then_some(())
        });
        (master, restart.elapsed())
    })
    .await
    .unwrap();
    let mut master = master_back;

    // Every use spent exactly once, each by a different one of our nodes; none left.
    let spent: Vec<String> = std::fs::read_dir(dir.path().join("master/tokens/spent"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let by: HashSet<String> =
        spent.iter().map(|name| name.rsplit('.').next().unwrap().to_owned()).collect();
    assert_eq!(spent.len(), NODES);
    assert_eq!(by, ids, "each use admitted one of our nodes");
    let unused = std::fs::read_dir(dir.path().join("master/tokens"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(unused, 0);

    println!(
        "crash storm: nodes={NODES} enrolled_before_kill={enrolled_before_kill} killed_after_ms={} \
         all_enrolled_after_restart_ms={} all_present_after_restart_ms={}",
        killed.as_millis(),
        all_enrolled.as_millis(),
        present_after.as_millis()
    );
    for node in nodes {
        node.shutdown().await;
    }
    master.signal("-TERM");
    let master = tokio::task::spawn_blocking(move || master.wait_exit(LIMIT)).await.unwrap();
    assert_eq!(master, Some(0));
}
