//! A daemon process whose JSON log lines the test reads as they come.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Which of the process's streams carries its JSON lines.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LogStream {
    /// stderr (the `fleetmesh` daemons' logs).
    Stderr,
    /// stdout (a test helper's reports).
    Stdout,
}

/// A running process; killed (SIGKILL) and reaped when dropped, so a failing test leaves none.
pub(crate) struct Daemon {
    /// A name for failure messages.
    pub(crate) name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    pub(crate) seen: Vec<String>,
}

impl Daemon {
    /// Starts `command` (e.g. one built with `netns::in_namespace`), reading `stream`; the
    /// other output stream is discarded.
    pub(crate) fn spawn(name: &str, mut command: Command, stream: LogStream) -> Daemon {
        let (out, err) = match stream {
            LogStream::Stderr => (Stdio::null(), Stdio::piped()),
            LogStream::Stdout => (Stdio::piped(), Stdio::null()),
        };
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let pipe: Box<dyn Read + Send> = match stream {
            LogStream::Stderr => Box::new(child.stderr.take().expect("piped stderr")),
            LogStream::Stdout => Box::new(child.stdout.take().expect("piped stdout")),
        };
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon { name: name.to_owned(), child, lines, seen: Vec::new() }
    }

    /// The process id (the program's own: `ip netns exec` execs in place).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads JSON lines until `f` returns a value for one, for at most `limit`.
    pub(crate) fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
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
    pub(crate) fn wait_message(&mut self, message: &str, limit: Duration) -> Value {
        self.wait_for(message, limit, |line| {
            (line["fields"]["message"] == message).then(|| line["fields"].clone())
        })
    }

    /// Whether the process still runs (it has not exited, by a signal or otherwise).
    pub(crate) fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Sends `signal` (`-KILL`, `-TERM`, …). The workspace forbids unsafe code, so no
    /// libc::kill: the kill command does it.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(status.success(), "kill {signal} {pid} ({})", self.name);
    }

    /// Waits for the process to exit (its log read to the end into `seen`); its exit code.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        // The stream ends when the process does (it holds the pipe's only writer).
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

    /// The lines that arrived so far without waiting, appended to `seen`; returns how many.
    pub(crate) fn drain(&mut self) -> usize {
        let before = self.seen.len();
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.len() - before
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
