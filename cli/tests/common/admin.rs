//! A master daemon with its admin API, and the CLI run against that API.

use std::{net::SocketAddr, path::Path};

use super::{field, fleetmesh, Daemon, LIMIT};

/// Starts `fleetmesh master` on 127.0.0.1:`port` with its admin API on a free port: the
/// daemon, the API's address and its token.
pub(crate) fn start_master(dir: &Path, port: u16) -> (Daemon, SocketAddr, String) {
    let config = dir.join("master.toml");
    let text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nformat = \"json\"\n",
        dir.join("master")
    );
    std::fs::write(&config, text).unwrap();
    let mut master = fleetmesh("master", &["master", "--config", config.to_str().unwrap()]);
    let running = master.wait_message("master running", LIMIT);
    let admin: SocketAddr = field(&running, "admin").parse().unwrap();
    let token = std::fs::read_to_string(dir.join("master").join("admin.token")).unwrap();
    (master, admin, token.trim().to_owned())
}

/// Runs `fleetmesh ARGS` against the API: exit code, stdout, stderr.
pub(crate) fn cli(admin: SocketAddr, token: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(args)
        .env("FLEETMESH_API", format!("http://{admin}"))
        .env("FLEETMESH_ADMIN_TOKEN", token)
        .output()
        .expect("run fleetmesh");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}
