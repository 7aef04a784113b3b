//! Runs `fleetmesh demo` with a small fleet (2 subnets × 3 nodes, real UDP on loopback) and
//! checks what it reports. The limits are hang guards for a busy machine, not expectations:
//! the recovery takes well under a second with the default timers.

use std::{
    io::Read,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How long one run may take before the test kills it.
const HANG_GUARD: Duration = Duration::from_secs(180);

/// Runs the demo with `extra` flags; returns its standard output, failing on a non-zero exit.
fn demo(extra: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
        .args(["demo", "--subnets", "2", "--nodes-per-subnet", "3", "--timeout", "60"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fleetmesh");
    let read = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).expect("read the demo's output");
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped")));
    let stderr = read(Box::new(child.stderr.take().expect("piped")));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for fleetmesh") {
            break status;
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill();
            panic!("fleetmesh demo still running after {HANG_GUARD:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "fleetmesh demo failed ({status}):\n{stderr}\n{stdout}");
    stdout
}

/// The numbers of `demo: nodes=N present=P lsns=L recovery_ms=R`.
fn summary(line: &str) -> [u64; 4] {
    let rest = line.strip_prefix("demo: ").unwrap_or_else(|| panic!("not the summary: {line:?}"));
    let fields: Vec<(&str, u64)> = rest
        .split(' ')
        .map(|f| {
            let (k, v) = f.split_once('=').unwrap_or_else(|| panic!("bad field {f:?}"));
            (k, v.parse().unwrap_or_else(|_| panic!("bad number in {f:?}")))
        })
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["nodes", "present", "lsns", "recovery_ms"], "{line:?}");
    [fields[0].1, fields[1].1, fields[2].1, fields[3].1]
}

#[test]
fn text_report_ends_with_one_summary_line() {
    let out = demo(&[]);
    let last = out.lines().last().expect("some output");
    let [nodes, present, lsns, recovery_ms] = summary(last);
    assert_eq!(nodes, 6);
    assert_eq!(present, nodes - 1, "every node but the crashed LSN present:\n{out}");
    assert_eq!(lsns, 2, "one LSN per subnet:\n{out}");
    assert!(recovery_ms < 5000, "recovery took {recovery_ms} ms:\n{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("demo: ")).count(), 1);
    assert!(out.contains("hot standby takes over"), "{out}");
}

#[test]
fn json_report_agrees_with_its_topology() {
    let out = demo(&["--json", "--enroll"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let n = |key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert_eq!(n("nodes"), 6);
    assert_eq!(n("subnets"), 2);
    assert_eq!(n("present"), 5);
    assert_eq!(n("lsns"), 2);
    assert!(n("recovery_ms") < 5000, "{v}");
    assert!(n("join_ms") < 60_000, "{v}");
    let subnets = v["topology"]["subnets"].as_array().expect("subnets");
    assert_eq!(subnets.len(), 2);
    let lsns: Vec<&serde_json::Value> =
        subnets.iter().flat_map(|s| s["lsns"].as_array().expect("lsns")).collect();
    assert_eq!(lsns.len(), 2);
    let present: usize = lsns.iter().map(|l| 1 + l["children"].as_array().unwrap().len()).sum();
    assert_eq!(present, 5, "the topology counts the same nodes: {v}");
    let crashed = v["crashed"]["name"].as_str().expect("crashed LSN");
    assert!(crashed.starts_with("1."), "subnet 1's LSN crashed: {v}");
    let mut names: Vec<&str> = Vec::new();
    for lsn in &lsns {
        names.push(lsn["name"].as_str().unwrap());
        names.extend(
            lsn["children"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()),
        );
    }
    assert!(!names.contains(&crashed), "the crashed LSN {crashed} is still listed: {v}");
    assert_eq!(v["topology"]["pending"].as_array().map(Vec::len), Some(0));
}
