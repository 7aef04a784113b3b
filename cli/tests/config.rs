//! `fleetmesh config check`, the example configs in deploy/, and the command-line mistakes of
//! the daemons and `token create`: real processes, exit statuses and messages.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn fleetmesh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run fleetmesh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(name)
}

fn check(path: &Path) -> Output {
    fleetmesh(&["config", "check", path.to_str().expect("utf-8 path")])
}

/// The examples parse with the daemons' own parser, and every value they show is the default
/// (the effective config equals an empty file's): a renamed field or a changed default that
/// the examples did not follow fails here.
#[test]
fn the_example_configs_parse_and_show_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["master", "node"] {
        let example = check(&deploy(&format!("{kind}.toml")));
        assert!(example.status.success(), "{kind}.toml: {}", text(&example.stderr));
        let empty_file = dir.path().join(format!("{kind}.toml"));
        std::fs::write(&empty_file, "").unwrap();
        let empty = check(&empty_file);
        assert!(empty.status.success(), "{}", text(&empty.stderr));
        assert_eq!(text(&example.stdout), text(&empty.stdout), "deploy/{kind}.toml vs defaults");
        assert!(text(&example.stdout).contains(&format!("/var/lib/fleetmesh/{kind}")));
    }
    // The example's commented-out join line, filled in, is what the node reads.
    let node = std::fs::read_to_string(deploy("node.toml")).unwrap();
    assert!(node.contains("# join = \"fleetmesh://"), "node.toml documents join");
    // Both units start their daemon with the example's installed path.
    for kind in ["master", "node"] {
        let unit = std::fs::read_to_string(deploy(&format!("fleetmesh-{kind}.service"))).unwrap();
        let start = format!(
            "ExecStart=/usr/local/bin/fleetmesh {kind} --config /etc/fleetmesh/{kind}.toml"
        );
        assert!(unit.contains(&start), "fleetmesh-{kind}.service: {start}");
        assert!(unit.contains(&format!("StateDirectory=fleetmesh/{kind}")));
    }
}

#[test]
fn a_mistake_is_reported_as_file_line_column_with_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "master.toml",
            "data_dir = \"/srv/m\"\n\nlisen = \"[::]:7946\"\n",
            ":3:1: unknown field `lisen`",
        ),
        (
            "node.toml",
            "lan_discovery = true\n[log]\nformat = \"xml\"\n",
            ":3:10: unknown variant `xml`",
        ),
        ("node.toml", "enroll_timeout = \"10w\"\n", ":1:18: \"10w\" has no known unit"),
        ("master.toml", "public_addrs = [\"1.2.3.4\"]\n", ":1:17: invalid socket address"),
        ("node.toml", "[log]\nlevel = \"infoo\"\n", ":2:9: \"infoo\" is not a level"),
        ("master.toml", "listen = \n", ":1:10: "),
    ];
    for (name, content, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let out = check(&path);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{content:?}: {stderr}");
        assert!(stderr.starts_with(&format!("{}{want}", path.display())), "{content:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    // A name that says neither master nor node needs --kind; with it the file is checked.
    let path = dir.path().join("fleet.toml");
    std::fs::write(&path, "lan_discovery = false\n").unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--kind"), "{}", text(&out.stderr));
    let out = fleetmesh(&["config", "check", path.to_str().unwrap(), "--kind", "node"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lan_discovery = false"));
    let out = fleetmesh(&["config", "check", path.to_str().unwrap(), "--kind", "master"]);
    assert!(text(&out.stderr).contains(":1:1: unknown field `lan_discovery`"));
}

#[test]
fn a_daemon_with_a_bad_config_exits_1_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, "listen = \"[::]:7946\"\ndata_dri = \"/x\"\n").unwrap();
    for daemon in ["master", "node"] {
        let out = fleetmesh(&[daemon, "--config", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{daemon}");
        let want = format!("{}:2:1: unknown field `data_dri`", path.display());
        assert!(text(&out.stderr).contains(&want), "{daemon}: {}", text(&out.stderr));
    }
    let missing = dir.path().join("missing.toml");
    let out = fleetmesh(&["node", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("missing.toml"), "{}", text(&out.stderr));
}

#[test]
fn token_create_never_makes_a_master_key_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("master");
    let out = fleetmesh(&["token", "create", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no master key at"), "{}", text(&out.stderr));
    assert!(!data.join("master.key").exists(), "token create must not generate a key");

    for (flag, value, want) in [
        ("--expires", "7w", "no known unit"),
        ("--expires", "0d", "longer than zero"),
        ("--uses", "0", "0"),
    ] {
        let out =
            fleetmesh(&["token", "create", "--data-dir", data.to_str().unwrap(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: clap's usage error");
        assert!(text(&out.stderr).contains(want), "{flag} {value}: {}", text(&out.stderr));
    }

    // A master listening on port 0 cannot be named in a link without public_addrs.
    let config = dir.path().join("master.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n", data)).unwrap();
    let key = fleetmesh::Identity::load_or_generate(&data.join("master.key")).unwrap();
    let out = fleetmesh(&["token", "create", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("port 0"), "{}", text(&out.stderr));
    let with_public = format!(
        "{}public_addrs = [\"192.0.2.7:7946\"]\n",
        std::fs::read_to_string(&config).unwrap()
    );
    std::fs::write(&config, with_public).unwrap();
    let out = fleetmesh(&["token", "create", "--config", config.to_str().unwrap(), "--uses", "5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link: fleetmesh::JoinLink = text(&out.stdout).trim().parse().expect("a link");
    assert_eq!(link.masters, vec!["192.0.2.7:7946".parse().unwrap()]);
    assert!(link.token.is_some());
    assert_eq!(link.network, fleetmesh::trust::Authority::new(key).network_key());
    // A flag overrides the config's addresses (a master started with flags).
    let out = fleetmesh(&[
        "token",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--public-addr",
        "198.51.100.1:1",
        "--public-addr",
        "[2001:db8::1]:2",
    ]);
    let link: fleetmesh::JoinLink = text(&out.stdout).trim().parse().expect("a link");
    let want: Vec<std::net::SocketAddr> =
        vec!["198.51.100.1:1".parse().unwrap(), "[2001:db8::1]:2".parse().unwrap()];
    assert_eq!(link.masters, want);
    let tokens = fleetmesh::Tokens::open(&data).unwrap();
    // Uses left: 5 of the first token, 1 of the second.
    assert_eq!(tokens.remaining(fleetmesh::Timestamp::from_secs(0)).unwrap(), 6);
}
