//! Inventories end to end, over real UDP on loopback: a node daemon collects its host's
//! inventory and the master shows it through the admin API (`GET /api/nodes/{id}/inventory`)
//! and the CLI (`fleetmesh inventory`); a restarted node sends what changed, not its whole
//! document again.

mod common;

use std::{net::SocketAddr, path::Path, time::Instant};

use common::{
    admin::{cli, start_master},
    field, fleetmesh, free_port,
    http::{request, Reply},
    node_args,
    openapi::{conforms, openapi},
    LIMIT,
};
use serde_json::{json, Value};

/// Asks `GET path` every 100 ms until `done` holds for the reply.
fn poll(admin: SocketAddr, token: &str, path: &str, done: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + LIMIT;
    loop {
        let reply = request(admin, "GET", path, Some(token), None);
        if done(&reply) {
            return reply;
        }
        assert!(Instant::now() < deadline, "GET {path} never came right: {reply:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn start_node(name: &str, dir: &Path, link: Option<&str>, config: &Path) -> common::Daemon {
    let mut args = node_args(dir, link);
    args.extend(["--config", config.to_str().unwrap()]);
    fleetmesh(name, &args)
}

#[test]
fn a_node_s_inventory_shows_at_the_master_and_a_restarted_node_sends_only_a_diff() {
    let api = openapi();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let hostname = hostname.trim();
    let dir = tempfile::tempdir().unwrap();
    let (mut master, admin, token) = start_master(dir.path(), free_port());
    let created = request(admin, "POST", "/api/tokens", Some(&token), Some(&json!({})));
    let link = created.body["link"].as_str().unwrap().to_owned();

    let node_dir = tempfile::tempdir().unwrap();
    let config = node_dir.path().join("node.toml");
    std::fs::write(&config, "[commands]\nhello = [\"/bin/echo\", \"hi\"]\n").unwrap();
    let mut node = start_node("node", node_dir.path(), Some(&link), &config);
    let id = field(&node.wait_message("node running", LIMIT), "node");

    // The API: the host's facts, as the node collected them at start.
    let path = format!("/api/nodes/{id}/inventory");
    let first = poll(admin, &token, &path, |r| {
        r.status == 200 && r.body["entries"]["os/kernel"].is_string()
    });
    conforms(&api, "GET", "/api/nodes/{id}/inventory", &first);
    let entries = &first.body["entries"];
    assert_eq!(entries["host/name"], hostname, "{entries}");
    assert_eq!(entries["fleetmesh/commands"], "hello", "{entries}");
    assert!(entries["cpu/count"].as_str().unwrap().parse::<u32>().unwrap() >= 1, "{entries}");
    assert_eq!(first.body["node"], id.as_str());
    let version = first.body["version"].as_u64().unwrap();
    let status = request(admin, "GET", "/api/status", Some(&token), None);
    conforms(&api, "GET", "/api/status", &status);
    assert_eq!(status.body["inventory"]["held"], 1, "{}", status.body);
    assert_eq!(status.body["inventory"]["whole"], 1, "{}", status.body);
    let applied = status.body["inventory"]["applied"].as_u64().unwrap();

    // Typed errors: a node the master never saw, an id that is none.
    let unknown = request(
        admin,
        "GET",
        &format!("/api/nodes/{}/inventory", "ab".repeat(20)),
        Some(&token),
        None,
    );
    assert_eq!((unknown.status, &unknown.body["error"]), (404, &json!("unknown_node")));
    conforms(&api, "GET", "/api/nodes/{id}/inventory", &unknown);
    let bad = request(admin, "GET", "/api/nodes/nothex/inventory", Some(&token), None);
    assert_eq!((bad.status, &bad.body["error"]), (400, &json!("bad_id")));
    conforms(&api, "GET", "/api/nodes/{id}/inventory", &bad);
    // A node the master knows that collects no inventory: 404 no_inventory.
    let created = request(admin, "POST", "/api/tokens", Some(&token), Some(&json!({})));
    let quiet_link = created.body["link"].as_str().unwrap().to_owned();
    let quiet_dir = tempfile::tempdir().unwrap();
    let quiet_config = quiet_dir.path().join("node.toml");
    std::fs::write(&quiet_config, "inventory_interval = \"off\"\n").unwrap();
    let mut quiet = start_node("quiet", quiet_dir.path(), Some(&quiet_link), &quiet_config);
    let quiet_id = field(&quiet.wait_message("node running", LIMIT), "node");
    let quiet_path = format!("/api/nodes/{quiet_id}/inventory");
    let none = poll(admin, &token, &quiet_path, |r| r.body["error"] == "no_inventory");
    assert_eq!(none.status, 404);
    conforms(&api, "GET", "/api/nodes/{id}/inventory", &none);
    quiet.signal("-TERM");
    assert_eq!(quiet.wait_exit(LIMIT), Some(0));

    // The CLI: text lines, a prefix, JSON.
    let (code, out, err) = cli(admin, &token, &["inventory", &id[..10]]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with(&format!("node {id}  version {version}")), "{out}");
    let host_line = out.lines().find(|l| l.starts_with("host/name ")).expect(&out);
    assert_eq!(host_line.split_whitespace().nth(1), Some(hostname), "{out}");
    let (code, out, err) = cli(admin, &token, &["inventory", &id, "os/", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    let os = json["entries"].as_object().unwrap();
    assert!(os.contains_key("os/kernel") && os.keys().all(|k| k.starts_with("os/")), "{out}");
    assert_eq!(json["version"], version);
    let (code, _, err) = cli(admin, &token, &["inventory", &"ab".repeat(20)]);
    assert_eq!(code, Some(1), "an unknown node fails");
    assert!(err.contains("unknown node") || err.contains("no node"), "{err}");

    // Restarted with one more command: the node kept the version the master acknowledged and
    // sends the change against it, not its whole document again.
    node.signal("-TERM");
    assert_eq!(node.wait_exit(LIMIT), Some(0));
    std::fs::write(
        &config,
        "[commands]\nhello = [\"/bin/echo\", \"hi\"]\nuptime = [\"/usr/bin/uptime\"]\n",
    )
    .unwrap();
    let mut node = start_node("node2", node_dir.path(), None, &config);
    node.wait_message("node running", LIMIT);
    let second =
        poll(admin, &token, &path, |r| r.body["entries"]["fleetmesh/commands"] == "hello,uptime");
    assert!(second.body["version"].as_u64().unwrap() > version, "{}", second.body);
    assert_eq!(second.body["entries"]["host/name"], hostname);
    let status = request(admin, "GET", "/api/status", Some(&token), None);
    let inventory = &status.body["inventory"];
    assert_eq!(inventory["whole"], 1, "a whole document again: {inventory}");
    assert!(inventory["applied"].as_u64().unwrap() > applied, "{inventory}");

    node.signal("-TERM");
    node.wait_exit(LIMIT);
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
}
