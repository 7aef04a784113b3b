//! What the daemon tests share: a daemon process whose JSON log the test reads as it comes,
//! free ports, node arguments.

// Each test binary uses its own part of this module; `pub` marks what the tests may use.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader},
    net::{Ipv4Addr, TcpListener, UdpSocket},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long any one step may take before the test gives up.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A daemon process whose stderr (JSON log lines) the test reads as they come.
pub struct Daemon {
    name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for the failure message.
    pub seen: Vec<String>,
}

impl Daemon {
    pub fn spawn(name: &str, args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleetmesh"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fleetmesh");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { name: name.to_owned(), child, lines, seen: Vec::new() }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Reads log lines until `f` returns a value for one (a JSON line's fields).
    pub fn wait_for<T>(&mut self, what: &str, f: impl FnMut(&Value) -> Option<T>) -> T {
        self.wait_for_within(LIMIT, what, f)
    }

    /// [`wait_for`](Self::wait_for) with its own limit.
    pub fn wait_for_within<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut f: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let Ok(json) = serde_json::from_str::<Value>(&line) else { continue };
                    if let Some(found) = f(&json) {
                        return found;
                    }
                }
                Err(_) => panic!(
                    "{}: no log line for {what} within {limit:?} (or it exited); its log:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for a line whose message is `message`; returns its fields.
    pub fn wait_message(&mut self, message: &str) -> Value {
        self.wait_for(message, |line| {
            (line["fields"]["message"] == message).then(|| line["fields"].clone())
        })
    }

    pub fn signal(&self, signal: &str) {
        // The workspace forbids unsafe code, so no libc::kill: the kill command does it.
        let status = Command::new("kill").args([signal, &self.pid()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// Waits for the process to exit; its exit code. Its whole log is in `seen` afterwards.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LIMIT;
        // The log stream ends when the process does (it holds the pipe's only writer): read
        // it to the end, then reap the process.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{} did not exit:\n{}", self.name, self.seen.join("\n"))
                }
            }
        }
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failed test must not leave daemons behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        // The nodes share this host, so they would share LAN discovery's port.
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

pub fn field(fields: &Value, name: &str) -> String {
    fields[name].as_str().unwrap_or_else(|| panic!("no {name} in {fields}")).to_owned()
}
