//! The daemons as an operator runs them: `fleetmesh master` from a config file, links from
//! `fleetmesh token create` beside it, three `fleetmesh node --join LINK` processes over real
//! UDP on 127.0.0.1, SIGTERM, restart without a link, SIGHUP. Checked through the master's
//! JSON log (presence at INFO), the nodes' logs and exit statuses.
//!
//! Every wait is for a log line or an exit, with a generous limit that only guards against a
//! hang on a busy machine; nothing sleeps for a fixed time.

mod common;

use std::{path::Path, process::Command};

use common::{field, fleetmesh, free_port, node_args, start_nodes, LIMIT};

fn node_config_text(data_dir: &Path, level: &str) -> String {
    format!(
        "data_dir = {data_dir:?}\nlisten = \"127.0.0.1:0\"\nlan_discovery = false\n\n[log]\nlevel = \"{level}\"\nformat = \"json\"\n"
    )
}

fn master_config(dir: &Path, port: u16, level: &str) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"{level}\"\nformat = \"json\"\n",
        dir.join("master")
    )
}

#[test]
fn a_fleet_from_links_parts_on_sigterm_and_restarts_from_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), port, "info")).unwrap();
    let config_arg = config.to_str().unwrap();

    // The README's three commands from a blank data directory: master, token create, node.
    let blank = std::time::Instant::now();
    let mut master = fleetmesh("master", &["master", "--config", config_arg]);
    let running = master.wait_message("master running", LIMIT);
    assert_eq!(running["port"], port);

    // A link, made beside the running master (a file in its data directory).
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["token", "create", "--config", config_arg, "--uses", "3", "--expires", "1h"])
        .args(["--tag", "kiosk", "--tag", "site:berlin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(link.starts_with(&format!("fleetmesh://127.0.0.1:{port}/join?network=")), "{link}");
    // The same network the master announces (its link without the token).
    assert_eq!(link.split("&token=").next(), running["network"].as_str());

    let node_dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = node_dirs[..3].iter().map(|d| d.path()).collect();
    let (mut nodes, ids) = start_nodes(&paths, &link);

    // All three present at the master; remember which one is a child (not the LSN).
    let mut present = std::collections::HashMap::new();
    master.wait_for("three nodes present", LIMIT, |line| {
        let fields = &line["fields"];
        if fields["message"] == "node present" {
            present.insert(field(fields, "node"), fields["is_lsn"] == true);
        }
        ids.iter().all(|id| present.contains_key(id)).then_some(())
    });
    assert_eq!(present.values().filter(|lsn| **lsn).count(), 1, "one LSN: {present:?}");
    println!(
        "blank machine to present nodes: 3 commands (master, token create, node --join), {} ms",
        blank.elapsed().as_millis()
    );
    let child = (0..3).find(|i| !present[&ids[*i]]).expect("two children");

    // Each use spent records the node and keeps the token's tags (the registry's source).
    let spent = dir.path().join("master/tokens/spent");
    for entry in std::fs::read_dir(&spent).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert_eq!(text, "kiosk\nsite:berlin\n");
    }
    // A bad tag is refused before anything is created.
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["token", "create", "--config", config_arg, "--tag", "Not A Tag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tags are 1 to 64"));

    // The token had three uses: a fourth device is refused, and says so.
    let mut fourth = fleetmesh("node3", &node_args(node_dirs[3].path(), Some(&link)));
    assert_eq!(fourth.wait_exit(LIMIT), Some(1), "a used-up token is refused");
    assert!(fourth.seen.iter().any(|l| l.contains("refused")), "{:?}", fourth.seen);

    // SIGTERM: the node announces its part (the master says Shutdown, not Lost) and exits 0.
    nodes[child].signal("-TERM");
    assert_eq!(nodes[child].wait_exit(LIMIT), Some(0), "{}", nodes[child].seen.join("\n"));
    let reason = master.wait_for("the part", LIMIT, |line| {
        let fields = &line["fields"];
        (fields["message"] == "node parted" && fields["node"] == ids[child].as_str())
            .then(|| field(fields, "reason"))
    });
    assert_eq!(reason, "Shutdown");

    // Restarted from its data directory alone, configured by a file this time: same id,
    // present again. The flag overrides the file's log level.
    let node_config = dir.path().join("node.toml");
    std::fs::write(&node_config, node_config_text(node_dirs[child].path(), "warn")).unwrap();
    let node_config_arg = node_config.to_str().unwrap();
    nodes[child] =
        fleetmesh("node-again", &["node", "--config", node_config_arg, "--log-level", "info"]);
    let again = field(&nodes[child].wait_message("node running", LIMIT), "node");
    assert_eq!(again, ids[child]);
    master.wait_for("the restarted node present", LIMIT, |line| {
        let fields = &line["fields"];
        (fields["message"] == "node present" && fields["node"] == ids[child].as_str()).then_some(())
    });

    // SIGHUP applies a new log level from the file: a DEBUG line appears only if it did.
    std::fs::write(&config, master_config(dir.path(), port, "debug")).unwrap();
    master.signal("-HUP");
    let applied = master.wait_message("log filter applied", LIMIT);
    assert_eq!(applied["filter"], "debug");
    master.wait_message("config reloaded", LIMIT);
    // The node's --log-level info outranks the file's debug: the reload says so (at INFO)
    // instead of applying it.
    std::fs::write(&node_config, node_config_text(node_dirs[child].path(), "debug")).unwrap();
    nodes[child].signal("-HUP");
    let kept = nodes[child]
        .wait_message("log.level in the file is overridden by --log-level or RUST_LOG", LIMIT);
    assert_eq!(kept["filter"], "info");
    nodes[child].wait_message("config reloaded", LIMIT);

    for node in &mut nodes {
        node.signal("-TERM");
        assert_eq!(node.wait_exit(LIMIT), Some(0), "{}", node.seen.join("\n"));
    }
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
    assert!(master.seen.iter().any(|l| l.contains("master stopped")));
}
