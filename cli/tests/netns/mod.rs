//! Real Linux networking for multi-process tests: network namespaces, veth links, bridges and
//! NAT routers (iptables MASQUERADE), all created by the test and always removed.
//!
//! Reuse it from any integration test under `cli/tests` with `mod netns;`:
//!
//! * [`Lab`] (this file) owns every namespace a test creates. Its names carry a prefix and the
//!   test's pid (`fmnat-<pid>-<role>`), so parallel runs never collide; [`Lab::new`] removes the
//!   namespaces of earlier runs whose process is gone (a crashed or SIGKILLed test), and
//!   dropping the `Lab` (also while a panic unwinds) kills whatever still runs inside its
//!   namespaces and deletes them, which takes their veths, bridges, routes and iptables rules
//!   with them. Every interface, address and rule lives inside these namespaces: the host's
//!   own interfaces and routes are never touched.
//! * [`topology`]: an "internet" namespace and LANs behind NAT routers, one namespace per host.
//! * `crate::common::process`: a daemon (here started in a namespace with `ip netns exec`)
//!   whose log the test reads.
//!
//! It needs root (namespaces, iptables) and the `ip` command (iproute2); [`Lab::new`] installs
//! iptables with apt-get when it is missing. Without root it returns [`LabError::NotRoot`]: a
//! test must fail on it, never pass silently (CI, `.ci/run`, runs as root).

pub(crate) use crate::common::process;
pub(crate) mod topology;

use std::{
    ffi::OsStr,
    fmt, io,
    process::{Command, Output, Stdio},
};

/// Every namespace name of this harness starts with it.
const PREFIX: &str = "fmnat-";

/// Why the lab could not be set up.
#[derive(Debug)]
pub(crate) enum LabError {
    /// Namespaces and iptables need root.
    NotRoot,
    /// A command could not be started at all (not installed).
    Missing {
        /// The program.
        program: String,
        /// Why it did not start.
        source: io::Error,
    },
    /// A command failed.
    Failed {
        /// The command line.
        command: String,
        /// Its stderr.
        stderr: String,
    },
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::NotRoot => write!(
                f,
                "this test creates network namespaces and iptables NAT rules, so it must run as \
                 root (CI's .ci/run does); run `sudo -E cargo test …` or as root"
            ),
            LabError::Missing { program, source } => write!(f, "cannot run {program}: {source}"),
            LabError::Failed { command, stderr } => write!(f, "`{command}` failed: {stderr}"),
        }
    }
}

impl std::error::Error for LabError {}

/// Runs `command`; its stdout, or why it failed.
pub(crate) fn run(mut command: Command) -> Result<String, LabError> {
    let line = format!("{command:?}").replace('"', "");
    let program = command.get_program().to_string_lossy().into_owned();
    let out: Output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Missing { program, source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(LabError::Failed { command: line, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `program args…`, as a [`Command`].
fn cmd<S: AsRef<OsStr>>(program: &str, args: impl IntoIterator<Item = S>) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// The namespaces of one test run.
#[derive(Debug)]
pub(crate) struct Lab {
    /// `fmnat-<pid>-`.
    prefix: String,
    /// Every namespace created, in order.
    namespaces: Vec<String>,
}

impl Lab {
    /// Checks that this process can build namespaces (root, `ip`, iptables, installing
    /// iptables if needed) and removes the leftovers of dead runs.
    pub(crate) fn new() -> Result<Lab, LabError> {
        if !is_root() {
            return Err(LabError::NotRoot);
        }
        run(cmd("ip", ["-V"]))?;
        ensure_iptables()?;
        remove_leftovers()?;
        Ok(Lab { prefix: format!("{PREFIX}{}-", std::process::id()), namespaces: Vec::new() })
    }

    /// Creates namespace `role` (its loopback up); returns its full name.
    pub(crate) fn namespace(&mut self, role: &str) -> Result<String, LabError> {
        let name = format!("{}{role}", self.prefix);
        run(cmd("ip", ["netns", "add", &name]))?;
        self.namespaces.push(name.clone());
        self.ip(&name, ["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// `ip -n ns args…`.
    pub(crate) fn ip<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, LabError> {
        let mut command = cmd("ip", ["-n", ns]);
        command.args(args);
        run(command)
    }

    /// `program args…` run inside namespace `ns`, to completion.
    pub(crate) fn exec<S: AsRef<OsStr>>(
        &self,
        ns: &str,
        program: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, LabError> {
        let mut command = in_namespace(ns, program);
        command.args(args);
        run(command)
    }

    /// A veth pair: `a_if` in namespace `a`, `b_if` in namespace `b`, both up. It is created
    /// inside `a` (never in the host's namespace) and goes when either namespace does.
    pub(crate) fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), LabError> {
        self.ip(a, ["link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b])?;
        self.ip(a, ["link", "set", a_if, "up"])?;
        self.ip(b, ["link", "set", b_if, "up"])?;
        Ok(())
    }

    /// Sets a sysctl inside `ns` (e.g. `net.ipv4.ip_forward`): each namespace has its own.
    pub(crate) fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<(), LabError> {
        self.exec(ns, "sysctl", ["-qw", &format!("{key}={value}")]).map(drop)
    }
}

/// A [`Command`] that runs `program` inside namespace `ns`. `ip netns exec` execs it in place,
/// so the child's pid is the program's own (a signal to it reaches the program).
pub(crate) fn in_namespace(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Newest first: hosts before the routers they hang from (deleting either would do, as
        // a veth goes with its first namespace; this order keeps the errors quiet).
        for name in self.namespaces.iter().rev() {
            delete_namespace(name);
        }
    }
}

/// Kills what still runs in `name` (our own daemons: the lab's namespaces hold nothing else),
/// then deletes it. A namespace with a live process would outlive its name.
fn delete_namespace(name: &str) {
    if let Ok(pids) = run(cmd("ip", ["netns", "pids", name])) {
        for pid in pids.split_whitespace() {
            let _ = run(cmd("kill", ["-KILL", pid]));
        }
    }
    if let Err(e) = run(cmd("ip", ["netns", "delete", name])) {
        eprintln!("netns: could not delete namespace {name}: {e}");
    }
}

/// Deletes the namespaces of earlier runs whose test process no longer exists. Those of a run
/// still going (a parallel `cargo test`) are left alone.
fn remove_leftovers() -> Result<(), LabError> {
    let list = run(cmd("ip", ["netns", "list"]))?;
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            eprintln!("netns: removing {name}, left over by a run that is gone");
            delete_namespace(name);
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // The effective uid is the third field of /proc/self/status's Uid line (no libc: the
    // workspace forbids unsafe code).
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Installs iptables with apt-get when it is missing (CI images are minimal); `apt-get update`
/// only when the first install fails (no package lists yet).
fn ensure_iptables() -> Result<(), LabError> {
    if run(cmd("iptables", ["--version"])).is_ok() {
        return Ok(());
    }
    eprintln!("netns: iptables not found; installing it with apt-get");
    let install = || {
        let mut command = cmd("apt-get", ["install", "-y", "-q", "iptables"]);
        command.env("DEBIAN_FRONTEND", "noninteractive");
        run(command)
    };
    if install().is_err() {
        run(cmd("apt-get", ["update", "-q"]))?;
        install()?;
    }
    run(cmd("iptables", ["--version"])).map(drop)
}
