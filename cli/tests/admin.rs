//! The admin API against a running master daemon with three node daemons over real UDP on
//! loopback: every endpoint, its errors, and the OpenAPI description (docs/openapi.json)
//! checked against the real responses.

mod common;

use std::{net::SocketAddr, path::Path, time::Instant};

use common::{
    field, fleetmesh, free_port,
    http::{events, next_event, request},
    openapi::{conforms, openapi},
    start_nodes, LIMIT,
};
use serde_json::{json, Value};

fn master_config(dir: &Path, port: u16) -> String {
    format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
        dir.join("master")
    )
}

/// Polls `GET path` until `done` holds for the body, or fails at the deadline.
fn poll_until(addr: SocketAddr, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let reply = request(addr, "GET", path, Some(token), None);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        if done(&reply.body) {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "{path} never satisfied: {:?}", reply.body);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn every_admin_endpoint_answers_against_real_nodes_and_matches_the_openapi_description() {
    let api = openapi();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("master.toml");
    std::fs::write(&config, master_config(dir.path(), port)).unwrap();
    let config_arg = config.to_str().unwrap();
    let mut master = fleetmesh("master", &["master", "--config", config_arg]);
    let running = master.wait_message("master running", LIMIT);
    let admin: SocketAddr = field(&running, "admin").parse().unwrap();
    let token_path = dir.path().join("master").join("admin.token");
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // No token, a wrong one: 401 with a typed body.
    for bad in [None, Some("wrong")] {
        let reply = request(admin, "GET", "/api/status", bad, None);
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body["error"], "unauthorized");
        conforms(&api, "GET", "/api/status", &reply);
    }

    // Tokens: create one through the API, then enroll three nodes with it.
    let created = request(
        admin,
        "POST",
        "/api/tokens",
        Some(&token),
        Some(&json!({"uses": 3, "tags": ["site:test"]})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    conforms(&api, "POST", "/api/tokens", &created);
    let link = created.body["link"].as_str().unwrap().to_owned();
    let listed = request(admin, "GET", "/api/tokens", Some(&token), None);
    assert_eq!(listed.body["remaining"], 3);
    conforms(&api, "GET", "/api/tokens", &listed);
    let bad = request(admin, "POST", "/api/tokens", Some(&token), Some(&json!({"uses": 0})));
    assert_eq!((bad.status, bad.body["error"].as_str()), (400, Some("bad_request")));
    conforms(&api, "POST", "/api/tokens", &bad);
    let bad_tag =
        request(admin, "POST", "/api/tokens", Some(&token), Some(&json!({"tags": ["No Caps"]})));
    assert_eq!(bad_tag.status, 400, "{bad_tag:?}");
    // One token admits at most MAX_USES_PER_TOKEN devices; a larger ask creates nothing.
    let over = json!({"uses": fleetmesh::MAX_USES_PER_TOKEN + 1});
    let too_many = request(admin, "POST", "/api/tokens", Some(&token), Some(&over));
    assert_eq!((too_many.status, too_many.body["error"].as_str()), (400, Some("bad_request")));
    conforms(&api, "POST", "/api/tokens", &too_many);
    let listed = request(admin, "GET", "/api/tokens", Some(&token), None);
    assert_eq!(listed.body["remaining"], 3);

    let mut stream = events(admin, &token);
    let node_dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let paths: Vec<&Path> = node_dirs.iter().map(|d| d.path()).collect();
    let (mut nodes, ids) = start_nodes(&paths, &link);

    // The event stream reports each join.
    let mut joined = std::collections::HashSet::new();
    while !ids.iter().all(|id| joined.contains(id)) {
        let event = next_event(&mut stream);
        if event["type"] == "joined" {
            joined.insert(event["node"].as_str().unwrap().to_owned());
        }
    }

    let status = poll_until(admin, &token, "/api/status", |b| b["present"] == 3);
    assert_eq!(status["lsns"], 1);
    conforms(&api, "GET", "/api/status", &request(admin, "GET", "/api/status", Some(&token), None));

    let all = request(admin, "GET", "/api/nodes", Some(&token), None);
    conforms(&api, "GET", "/api/nodes", &all);
    assert_eq!(all.body["count"], 3);
    let lsn = all.body["nodes"].as_array().unwrap().iter().find(|n| n["is_lsn"] == true).unwrap();
    let lsn_id = lsn["id"].as_str().unwrap().to_owned();
    let subnet = lsn["subnet"].as_str().unwrap().to_owned();
    let under = request(admin, "GET", &format!("/api/nodes?lsn={lsn_id}"), Some(&token), None);
    assert_eq!(under.body["count"], 3, "the LSN and its two children");
    let in_subnet =
        request(admin, "GET", &format!("/api/nodes?subnet={subnet}"), Some(&token), None);
    assert_eq!(in_subnet.body["count"], 3);
    let tagged = request(admin, "GET", "/api/nodes?tag=site:test", Some(&token), None);
    assert_eq!(tagged.body["count"], 3, "the token's tag reached every node: {tagged:?}");
    assert_eq!(tagged.body["nodes"][0]["tags"], json!(["site:test"]));
    let untagged = request(admin, "GET", "/api/nodes?tag=site:other", Some(&token), None);
    assert_eq!(untagged.body["count"], 0);
    let absent = request(admin, "GET", "/api/nodes?present=false", Some(&token), None);
    assert_eq!(absent.body["count"], 0);
    let bad_filter = request(admin, "GET", "/api/nodes?present=maybe", Some(&token), None);
    assert_eq!(bad_filter.status, 400);
    conforms(&api, "GET", "/api/nodes", &bad_filter);

    let child = ids.iter().find(|id| **id != lsn_id).unwrap().clone();
    let one = request(admin, "GET", &format!("/api/nodes/{child}"), Some(&token), None);
    assert_eq!((one.status, one.body["lsn"].as_str()), (200, Some(lsn_id.as_str())));
    conforms(&api, "GET", "/api/nodes/{id}", &one);
    let unknown = "0".repeat(40);
    let missing = request(admin, "GET", &format!("/api/nodes/{unknown}"), Some(&token), None);
    assert_eq!((missing.status, missing.body["error"].as_str()), (404, Some("unknown_node")));
    conforms(&api, "GET", "/api/nodes/{id}", &missing);
    let garbled = request(admin, "GET", "/api/nodes/not-an-id", Some(&token), None);
    assert_eq!((garbled.status, garbled.body["error"].as_str()), (400, Some("bad_id")));
    conforms(&api, "GET", "/api/nodes/{id}", &garbled);

    // Send and poll: answered once the node acknowledged, through its LSN.
    let sent = request(
        admin,
        "POST",
        &format!("/api/nodes/{child}/send"),
        Some(&token),
        Some(&json!({"text": "hello"})),
    );
    assert_eq!((sent.status, sent.body["outcome"].as_str()), (200, Some("delivered")), "{sent:?}");
    conforms(&api, "POST", "/api/nodes/{id}/send", &sent);
    let child_index = ids.iter().position(|id| *id == child).unwrap();
    let got = nodes[child_index].wait_message("message from the master", LIMIT);
    assert_eq!(got["bytes"], 5);
    let no_text =
        request(admin, "POST", &format!("/api/nodes/{child}/send"), Some(&token), Some(&json!({})));
    assert_eq!(no_text.status, 400);
    conforms(&api, "POST", "/api/nodes/{id}/send", &no_text);
    let polled = request(admin, "POST", &format!("/api/nodes/{child}/poll"), Some(&token), None);
    assert_eq!(
        (polled.status, polled.body["outcome"].as_str()),
        (200, Some("delivered")),
        "{polled:?}"
    );
    conforms(&api, "POST", "/api/nodes/{id}/poll", &polled);
    let poll_unknown =
        request(admin, "POST", &format!("/api/nodes/{unknown}/poll"), Some(&token), None);
    assert_eq!(poll_unknown.status, 404);

    the_cli_is_a_client_of_the_api(admin, &dir.path().join("master"), &token, &child);

    // Revoke: accepted for a known node (its effect on the fleet is the revocation tests').
    let revoked = request(admin, "POST", &format!("/api/nodes/{child}/revoke"), Some(&token), None);
    assert_eq!((revoked.status, revoked.body["revoked"].as_str()), (200, Some(child.as_str())));
    conforms(&api, "POST", "/api/nodes/{id}/revoke", &revoked);

    let nowhere = request(admin, "GET", "/api/nowhere", Some(&token), None);
    assert_eq!((nowhere.status, nowhere.body["error"].as_str()), (404, Some("not_found")));

    // Junk raises no event; it shows as a counter by reason (and a WARN summary).
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..3 {
        junk.send_to(&[0xff], ("127.0.0.1", port)).unwrap();
    }
    let deadline = Instant::now() + LIMIT;
    loop {
        let metrics = request(admin, "GET", "/metrics", Some(&token), None);
        assert_eq!(metrics.status, 200);
        let malformed = metrics
            .text
            .lines()
            .find_map(|l| l.strip_prefix("fleetmesh_refused_total{reason=\"malformed\"} "))
            .map(|n| n.parse::<u64>().unwrap());
        if malformed.is_some_and(|n| n >= 3) {
            break;
        }
        assert!(Instant::now() < deadline, "junk not counted:\n{}", metrics.text);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The default log (info) shows it as a WARN summary, at most one per interval.
    master.wait_for("a WARN summary of the junk", LIMIT, |line| {
        let message = line["fields"]["message"].as_str().unwrap_or("");
        (line["level"] == "WARN"
            && message.starts_with("refused ")
            && message.contains("malformed"))
        .then_some(())
    });

    for node in &mut nodes {
        node.signal("-TERM");
        node.wait_exit(LIMIT);
    }
    drop(stream);
    master.signal("-TERM");
    assert_eq!(master.wait_exit(LIMIT), Some(0), "{}", master.seen.join("\n"));
}

/// Runs `fleetmesh ARGS` to completion: exit success, stdout, stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmesh"));
    command.args(args).env_remove("FLEETMESH_API").env_remove("FLEETMESH_ADMIN_TOKEN");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("run fleetmesh");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// The operator's commands against the same master: text and `--json`, id prefixes, the
/// token from the data directory or the environment, and failures as exit status 1.
fn the_cli_is_a_client_of_the_api(admin: SocketAddr, data_dir: &Path, token: &str, child: &str) {
    let url = format!("http://{admin}");
    let dir = data_dir.to_str().unwrap();
    let base = ["--api", url.as_str(), "--data-dir", dir];
    let with = |command: &[&str]| {
        let mut args = command.to_vec();
        args.extend(base);
        cli(&args, &[])
    };

    let (ok, out, err) = with(&["status", "--json"]);
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((status["present"].as_u64(), status["lsns"].as_u64()), (Some(3), Some(1)));
    let (ok, out, _) = with(&["status"]);
    assert!(ok && out.contains("3 present of 3 known · 1 LSNs · 1 subnets"), "{out}");

    let (ok, out, _) = with(&["nodes", "--tag", "site:test", "--present"]);
    assert!(ok && out.ends_with("3 shown of 3 known\n"), "{out}");
    let (ok, out, _) = with(&["nodes", "--absent", "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["count"], 0);

    // A unique prefix names a node, as in git.
    let (ok, out, err) = with(&["nodes", &child[..10]]);
    assert!(ok && out.contains(child) && out.contains("tags        site:test"), "{out}{err}");
    let (ok, _, err) = with(&["nodes", "ffffffffff0"]);
    let no_match = err.contains("no node's id starts with") || err.contains("unknown_node");
    assert!(!ok && no_match, "{err}");

    let (ok, out, err) = with(&["ping", &child[..10], "-n", "2"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("reply from") && l.ends_with(" ms")).count(),
        2
    );
    let (ok, out, err) = with(&["send", child, "from the cli", "--json"]);
    assert!(ok, "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["outcome"], "delivered");

    // The environment instead of flags; a wrong token is refused with its typed error.
    let env = [("FLEETMESH_API", url.as_str()), ("FLEETMESH_ADMIN_TOKEN", token)];
    let (ok, out, _) = cli(&["web"], &env);
    assert!(ok && out.trim() == format!("{url}/#token={token}"), "{out}");
    let env = [("FLEETMESH_API", url.as_str()), ("FLEETMESH_ADMIN_TOKEN", "wrong")];
    let (ok, _, err) = cli(&["nodes"], &env);
    assert!(!ok && err.contains("unauthorized") && err.contains("401"), "{err}");
    // Nothing listening: a clear error, not a hang.
    let (ok, _, err) = cli(&["status", "--api", "http://127.0.0.1:9", "--token", "x"], &[]);
    assert!(!ok && err.contains("cannot reach the admin API"), "{err}");
}
