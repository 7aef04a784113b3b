//! Requests to nodes through the master daemon's admin API and the CLI, against a node daemon
//! with configured commands, over real UDP on loopback: answered, refused, run with the
//! command's exit status, and queued for an absent node across a master restart.

mod common;

use std::time::Instant;

use common::{
    admin::{cli, start_master},
    field, fleetmesh, free_port,
    http::request,
    node_args,
    openapi::{conforms, openapi},
    LIMIT,
};
use serde_json::{json, Value};

#[test]
fn requests_reach_node_handlers_through_the_api_and_the_cli() {
    let api = openapi();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut master, admin, token) = start_master(dir.path(), port);
    let created = request(admin, "POST", "/api/tokens", Some(&token), Some(&json!({})));
    let link = created.body["link"].as_str().unwrap().to_owned();

    let node_dir = tempfile::tempdir().unwrap();
    let node_config = node_dir.path().join("node.toml");
    std::fs::write(
        &node_config,
        "command_timeout = \"20s\"\n\n[commands]\nhello = [\"/bin/echo\", \"hi from the node\"]\n\
         fail = [\"/bin/sh\", \"-c\", \"echo broken >&2; exit 3\"]\n",
    )
    .unwrap();
    let mut args = node_args(node_dir.path(), Some(&link));
    args.extend(["--config", node_config.to_str().unwrap()]);
    let mut node = fleetmesh("node", &args);
    let id = field(&node.wait_message("node running", LIMIT), "node");
    let deadline = Instant::now() + LIMIT;
    while request(admin, "GET", "/api/status", Some(&token), None).body["present"] != 1 {
        assert!(Instant::now() < deadline, "the node never became present");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // The API: the built-in inventory answers with the host's facts.
    let path = format!("/api/nodes/{id}/requests");
    let inventory =
        request(admin, "POST", &path, Some(&token), Some(&json!({"kind": "inventory"})));
    assert_eq!(
        (inventory.status, inventory.body["status"].as_str()),
        (200, Some("ok")),
        "{inventory:?}"
    );
    conforms(&api, "POST", "/api/nodes/{id}/requests", &inventory);
    let facts: Value = serde_json::from_str(inventory.body["body"].as_str().unwrap()).unwrap();
    assert!(facts["cpus"].as_u64().unwrap() >= 1, "{facts}");
    let again = request(
        admin,
        "GET",
        &format!("/api/requests/{}", inventory.body["id"]),
        Some(&token),
        None,
    );
    assert_eq!((again.status, &again.body), (200, &inventory.body));
    conforms(&api, "GET", "/api/requests/{id}", &again);
    // Typed errors: no kind, too long a wait, an unknown node, an unknown request.
    let no_kind = request(admin, "POST", &path, Some(&token), Some(&json!({"kind": ""})));
    assert_eq!(no_kind.status, 400);
    conforms(&api, "POST", "/api/nodes/{id}/requests", &no_kind);
    let long_wait = json!({"kind": "ping", "wait_secs": 600});
    assert_eq!(request(admin, "POST", &path, Some(&token), Some(&long_wait)).status, 400);
    let nobody = format!("/api/nodes/{}/requests", "0".repeat(40));
    let unknown_node =
        request(admin, "POST", &nobody, Some(&token), Some(&json!({"kind": "ping"})));
    assert_eq!(unknown_node.status, 404);
    conforms(&api, "POST", "/api/nodes/{id}/requests", &unknown_node);
    let unknown = request(admin, "GET", "/api/requests/12345", Some(&token), None);
    assert_eq!((unknown.status, unknown.body["error"].as_str()), (404, Some("unknown_request")));
    conforms(&api, "GET", "/api/requests/{id}", &unknown);

    // The CLI: run passes the command's output and exit status on; unknown kinds fail.
    let (code, out, err) = cli(admin, &token, &["run", &id[..10], "hello"]);
    assert_eq!((code, out.as_str()), (Some(0), "hi from the node\n"), "{err}");
    let (code, _, err) = cli(admin, &token, &["run", &id, "fail"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("broken"), "{err}");
    let (code, _, err) = cli(admin, &token, &["run", &id, "rm -rf /"]);
    assert!(code == Some(1) && err.contains("no command named"), "{err}");
    let (code, out, _) = cli(admin, &token, &["request", &id, "ping", "echo me"]);
    assert_eq!((code, out.as_str()), (Some(0), "echo me\n"));
    let (code, _, err) = cli(admin, &token, &["request", &id, "reboot"]);
    assert!(code == Some(1) && err.contains("unknown_kind"), "{err}");

    // The node's metric history, sampled since it started, downsampled on the node.
    // The sampler takes its first sample on its own thread once the node runs: ask until it
    // is there.
    let deadline = Instant::now() + LIMIT;
    loop {
        let args = ["history", &id, "mem", "--last", "10m", "--bucket", "1m", "--json"];
        let (code, out, err) = cli(admin, &token, &args);
        assert_eq!(code, Some(0), "{err}");
        let history: Value = serde_json::from_str(&out).unwrap();
        let buckets = history["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 10);
        let samples: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        if samples >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no memory sample in the last 10 minutes: {history}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, _, err) =
        cli(admin, &token, &["history", &id, "mem", "--last", "30d", "--bucket", "1m"]);
    assert!(code == Some(1) && err.contains("buckets"), "{err}");

    // Absent node: the request waits, across a master restart, and is answered on return.
    node.signal("-TERM");
    node.wait_exit(LIMIT);
    let deadline = Instant::now() + LIMIT;
    while request(admin, "GET", "/api/status", Some(&token), None).body["present"] != 0 {
        assert!(Instant::now() < deadline, "the node never left");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, out, _) =
        cli(admin, &token, &["request", &id, "ping", "while away", "--wait", "1s", "--json"]);
    assert_eq!(code, Some(1), "no answer yet is not success");
    let pending: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (pending["state"].as_str(), pending["delivered"].as_bool()),
        (Some("pending"), Some(false))
    );
    let request_id = pending["id"].as_u64().unwrap().to_string();
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0));
    let (mut master, admin, token) = start_master(dir.path(), port);
    let mut args = node_args(node_dir.path(), None);
    args.extend(["--config", node_config.to_str().unwrap()]);
    let mut node = fleetmesh("node", &args);
    node.wait_message("node running", LIMIT);
    let deadline = Instant::now() + LIMIT;
    let answered = loop {
        let (code, out, _) = cli(admin, &token, &["result", &request_id]);
        if code == Some(0) {
            break out;
        }
        assert!(Instant::now() < deadline, "the queued request was never answered");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(answered, "while away\n");

    node.signal("-TERM");
    node.wait_exit(LIMIT);
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
}

#[test]
fn a_fleet_request_reaches_every_node_or_a_tags_nodes_through_the_api_and_the_cli() {
    let api = openapi();
    let dir = tempfile::tempdir().unwrap();
    let (mut master, admin, token) = start_master(dir.path(), free_port());
    let link = |tags: &[&str]| {
        let body = json!({ "uses": 2, "tags": tags });
        let created = request(admin, "POST", "/api/tokens", Some(&token), Some(&body));
        created.body["link"].as_str().unwrap().to_owned()
    };
    let (plain, kiosk) = (link(&[]), link(&["kiosk"]));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        let link = if i == 2 { &kiosk } else { &plain };
        let mut node = fleetmesh("node", &node_args(d.path(), Some(link)));
        ids.push(field(&node.wait_message("node running", LIMIT), "node"));
        nodes.push(node);
    }
    let deadline = Instant::now() + LIMIT;
    while request(admin, "GET", "/api/status", Some(&token), None).body["present"] != 3 {
        assert!(Instant::now() < deadline, "the nodes never became present");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Every node: the call returns once all three answered (or after its 30 s wait).
    let (code, out, err) = cli(admin, &token, &["broadcast", "ping", "hello all", "--json"]);
    assert_eq!(code, Some(0), "{out} {err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    let mut answered: Vec<&str> =
        reply["nodes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    answered.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(answered, expected, "{reply}");
    assert!(reply["nodes"].as_array().unwrap().iter().all(|n| n["body"] == "hello all"));
    assert_eq!((reply["audience"].as_str(), reply["state"].as_str()), (Some("all"), Some("open")));
    let id = reply["id"].as_u64().unwrap();
    let again = request(admin, "GET", &format!("/api/requests/{id}"), Some(&token), None);
    assert_eq!((again.status, again.body["answered"].as_u64()), (202, Some(3)));
    conforms(&api, "GET", "/api/requests/{id}", &again);

    // A fleet-wide history: the LSN combines its nodes' memory histories into one answer.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = now.as_secs() as i64;
    let range = json!({ "series": "mem", "from": now - 600, "to": now + 60, "bucket_secs": 660 });
    let ask = json!({ "kind": "history", "body": range.to_string(), "window_secs": 3 });
    let deadline = Instant::now() + LIMIT;
    let combined = loop {
        let reply = request(admin, "POST", "/api/queries", Some(&token), Some(&ask));
        conforms(&api, "POST", "/api/queries", &reply);
        assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("ok")), "{reply:?}");
        assert_eq!((reply.body["hosts"].as_u64(), reply.body["lsns"].as_u64()), (Some(3), Some(1)));
        let answer: Value = serde_json::from_str(reply.body["body"].as_str().unwrap()).unwrap();
        // Every node has sampled its memory at least once by now, or will have soon.
        if answer["buckets"][0]["hosts"] == 3 {
            break answer;
        }
        assert!(Instant::now() < deadline, "no bucket over the three nodes: {answer}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let bucket = &combined["buckets"][0];
    assert!(bucket["min"].as_f64() <= bucket["mean"].as_f64(), "{bucket}");
    assert!(bucket["mean"].as_f64() <= bucket["max"].as_f64(), "{bucket}");
    let (code, out, err) = cli(admin, &token, &["history", "all", "mem", "--last", "10m"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(out.contains("over 3 node(s)"), "{out}");
    let unknown = json!({ "kind": "ping" });
    let refused = request(admin, "POST", "/api/queries", Some(&token), Some(&unknown));
    assert_eq!(refused.status, 400, "the master cannot combine pings: {refused:?}");

    // A tag: only the node admitted with the kiosk token.
    let body =
        json!({ "kind": "exec", "body": "nothing-configured", "tag": "kiosk", "wait_secs": 20 });
    let tagged = request(admin, "POST", "/api/requests", Some(&token), Some(&body));
    conforms(&api, "POST", "/api/requests", &tagged);
    let got = tagged.body["nodes"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{:?}", tagged.body);
    assert_eq!(got[0]["node"].as_str(), Some(ids[2].as_str()));
    assert_eq!(got[0]["status"].as_str(), Some("failed"), "no such command there");
    let (code, out, _) = cli(admin, &token, &["result", &tagged.body["id"].to_string()]);
    assert_eq!(code, Some(1), "a failed answer fails the command");
    assert!(out.contains("tag:kiosk"), "{out}");

    // Typed errors.
    let both = json!({ "kind": "ping", "tag": "kiosk", "subnet": "00".repeat(20) });
    let refused = request(admin, "POST", "/api/requests", Some(&token), Some(&both));
    assert_eq!(refused.status, 400);
    conforms(&api, "POST", "/api/requests", &refused);
    let bad_subnet = json!({ "kind": "ping", "subnet": "xyz" });
    assert_eq!(
        request(admin, "POST", "/api/requests", Some(&token), Some(&bad_subnet)).status,
        400
    );

    for node in &mut nodes {
        node.signal("-TERM");
        node.wait_exit(LIMIT);
    }
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
}
