//! What the daemon tests share: a daemon process whose JSON log the test reads as it comes,
//! free ports, node arguments.

// Each test binary uses its own part of this module; `pub` marks what the tests may use.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::Path,
    process::Command,
    time::Duration,
};

use serde_json::Value;

/// How long any one step may take before the test gives up.
pub const LIMIT: Duration = Duration::from_secs(60);

pub(crate) mod admin;
pub(crate) mod browser;
pub(crate) mod flood;
pub(crate) mod http;
pub(crate) mod openapi;
pub(crate) mod process;

pub(crate) use process::{Daemon, LogStream};

/// Starts `fleetmesh ARGS` on this host, reading its JSON log from stderr.
pub(crate) fn fleetmesh(name: &str, args: &[&str]) -> Daemon {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleetmesh"));
    command.args(args);
    Daemon::spawn(name, command, LogStream::Stderr)
}

/// A port free for both UDP and TCP on 127.0.0.1 (the master binds both on one port).
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

pub fn node_args<'a>(dir: &'a Path, link: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec![
        "node",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
        // The nodes share this host and its loopback, where broadcast finds them all: the tests
        // keep LAN discovery out of the picture to control who finds whom.
        "--lan-discovery",
        "false",
        "--log-format",
        "json",
    ];
    if let Some(link) = link {
        args.extend(["--join", link]);
    }
    args
}

/// Starts one `fleetmesh node` per data directory, enrolling with `link`, and waits until each
/// runs: the daemons and their ids, in order.
pub(crate) fn start_nodes(dirs: &[&Path], link: &str) -> (Vec<Daemon>, Vec<String>) {
    let mut nodes: Vec<Daemon> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| fleetmesh(&format!("node{i}"), &node_args(dir, Some(link))))
        .collect();
    let ids =
        nodes.iter_mut().map(|n| field(&n.wait_message("node running", LIMIT), "node")).collect();
    (nodes, ids)
}

pub fn field(fields: &Value, name: &str) -> String {
    fields[name].as_str().unwrap_or_else(|| panic!("no {name} in {fields}")).to_owned()
}
