//! The node daemon's built-in request handlers: what `fleetmesh request` and `fleetmesh run`
//! reach on a node.
//!
//! * `ping`: answers its input back.
//! * `history`: a downsampled range of one of the node's metric series (`history.rs`).
//! * `inventory`: the host as JSON (name, OS, kernel, architecture, CPUs, memory, uptime).
//! * `exec`: runs one of the commands named in the node's `[commands]` table (its input is
//!   the name) and answers `{"command", "exit", "signal", "stdout", "stderr", "truncated"}`;
//!   nothing else can be run, and a command is killed after `command_timeout`.
//! * `transfer`: sends test data to another node as a bulk transfer and answers the time,
//!   the throughput and the path it took (`transfer.rs`).
//!
//! Requests of any other kind are answered `unknown_kind`.

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use fleetmesh::{overlay::MAX_ANSWER_LEN, NodeBuilder};
use serde_json::json;

use crate::config::{CommandLine, NodeConfig};

/// The largest share of an answer a command's output may take before it is cut (JSON escaping
/// can grow it; the cut is halved until the answer fits).
const FIRST_CUT: usize = 32 * 1024;

/// Where the `history` handler finds the store, once the daemon opened it.
pub(crate) type HistorySlot = Arc<OnceLock<Arc<Mutex<fleetmesh_history::Store>>>>;

/// `builder` with the built-in handlers (`history` when the node keeps one), refusing every
/// other kind.
pub(crate) fn with_builtins(
    builder: NodeBuilder,
    config: &NodeConfig,
    history: Option<HistorySlot>,
    transfers: crate::transfer::TransferSlot,
) -> NodeBuilder {
    let commands = Arc::new(config.commands.clone());
    let timeout = config.command_timeout.0;
    let builder = match history {
        Some(slot) => builder.handler("history", move |body: Vec<u8>| {
            let store = slot.get().cloned();
            async move {
                match store {
                    Some(store) => crate::history::answer(store, body).await,
                    None => Err("the metric history is not open yet".to_owned()),
                }
            }
        }),
        None => builder,
    };
    builder
        .combiner("history", crate::history::combiner())
        .refuse_unknown_requests(true)
        .handler("ping", |body: Vec<u8>| async move { Ok(body) })
        .handler("inventory", |_| async { Ok(inventory().into_bytes()) })
        .handler("transfer", move |body: Vec<u8>| crate::transfer::answer(transfers.clone(), body))
        .handler("exec", move |body: Vec<u8>| {
            let commands = commands.clone();
            async move { exec(&commands, &body, timeout).await }
        })
}

fn inventory() -> String {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "hostname": sysinfo::System::host_name(),
        "os": sysinfo::System::long_os_version(),
        "kernel": sysinfo::System::kernel_version(),
        "arch": sysinfo::System::cpu_arch(),
        "cpus": cpus,
        "memory_bytes": system.total_memory(),
        "uptime_secs": sysinfo::System::uptime(),
    })
    .to_string()
}

async fn exec(
    commands: &BTreeMap<String, CommandLine>,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let name = String::from_utf8_lossy(body).trim().to_owned();
    let Some(CommandLine(argv)) = commands.get(&name) else {
        let known: Vec<&str> = commands.keys().map(String::as_str).collect();
        return Err(format!(
            "no command named {name:?} on this node (its [commands]: {})",
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        ));
    };
    tracing::info!(command = %name, program = %argv[0], "running a command for the master");
    let child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(timeout, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(format!("cannot run {}: {error}", argv[0])),
        Err(_) => {
            return Err(format!("{name} did not finish within {}s; killed", timeout.as_secs()))
        }
    };
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&output.status);
    #[cfg(not(unix))]
    let signal: Option<i32> = None;
    let mut cut = FIRST_CUT;
    loop {
        let (stdout, cut_out) = lossy_prefix(&output.stdout, cut);
        let (stderr, cut_err) = lossy_prefix(&output.stderr, cut / 4);
        let answer = json!({
            "command": name,
            "exit": output.status.code(),
            "signal": signal,
            "stdout": stdout,
            "stderr": stderr,
            "truncated": cut_out || cut_err,
        })
        .to_string();
        if answer.len() <= MAX_ANSWER_LEN || cut < 64 {
            return Ok(answer.into_bytes());
        }
        cut /= 2;
    }
}

/// The first `max` bytes of `bytes` as text (invalid UTF-8 replaced), and whether it was cut.
fn lossy_prefix(bytes: &[u8], max: usize) -> (String, bool) {
    let cut = bytes.len() > max;
    (String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned(), cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands() -> BTreeMap<String, CommandLine> {
        let mut c = BTreeMap::new();
        c.insert("hello".into(), CommandLine(vec!["/bin/echo".into(), "hi there".into()]));
        c.insert(
            "fail".into(),
            CommandLine(vec!["/bin/sh".into(), "-c".into(), "echo no >&2; exit 3".into()]),
        );
        c.insert("slow".into(), CommandLine(vec!["/bin/sleep".into(), "30".into()]));
        c.insert(
            "big".into(),
            CommandLine(vec![
                "/usr/bin/head".into(),
                "-c".into(),
                "200000".into(),
                "/dev/zero".into(),
            ]),
        );
        c
    }

    fn answer(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[tokio::test]
    async fn exec_runs_only_configured_commands_and_reports_their_exit() {
        let c = commands();
        let ok = answer(&exec(&c, b"hello", Duration::from_secs(10)).await.unwrap());
        assert_eq!((ok["exit"].as_i64(), ok["stdout"].as_str()), (Some(0), Some("hi there\n")));
        let failed = answer(&exec(&c, b"fail", Duration::from_secs(10)).await.unwrap());
        assert_eq!((failed["exit"].as_i64(), failed["stderr"].as_str()), (Some(3), Some("no\n")));
        let unknown = exec(&c, b"rm -rf /", Duration::from_secs(10)).await.unwrap_err();
        assert!(unknown.contains("no command named") && unknown.contains("hello"), "{unknown}");
    }

    #[tokio::test]
    async fn a_slow_command_is_killed_and_a_large_output_cut_to_fit() {
        let c = commands();
        let slow = exec(&c, b"slow", Duration::from_millis(200)).await.unwrap_err();
        assert!(slow.contains("did not finish"), "{slow}");
        // 200,000 NUL bytes escape to 1.2 MB of JSON: cut until the answer fits a frame.
        let big = exec(&c, b"big", Duration::from_secs(10)).await.unwrap();
        assert!(big.len() <= MAX_ANSWER_LEN, "{} bytes", big.len());
        assert_eq!(answer(&big)["truncated"], true);
    }

    #[test]
    fn inventory_names_the_host() {
        let inv: serde_json::Value = serde_json::from_str(&inventory()).unwrap();
        assert!(inv["cpus"].as_u64().unwrap() >= 1);
        assert!(inv["memory_bytes"].as_u64().unwrap() > 0);
        assert!(inv["kernel"].is_string());
    }
}
