//! The kit's typed errors: why a run stopped ([`RunError`]), why a command was not taken
//! ([`CommandError`]).

use std::time::Duration;

/// Why [`OverlayFleet::run_for`](crate::OverlayFleet::run_for) or
/// [`run_until`](crate::OverlayFleet::run_until) stopped early. Its `Debug` is its message,
/// so `unwrap()` in a test prints the topology readably.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A host's driver ended while the host was up (it panicked or returned an error): the
    /// host's node or master is dead, so the test fails rather than run on without it.
    #[error("host {host}: its driver ended at {at:?} of simulated time: {reason}")]
    HostFailed {
        /// The host's name.
        host: String,
        /// Simulated time since the start when it ended.
        at: Duration,
        /// The panic message or the driver's error.
        reason: String,
    },
    /// [`run_until`](crate::OverlayFleet::run_until)'s condition did not hold in time.
    #[error("condition not met within {max:?}; topology:\n{topology}")]
    Timeout {
        /// The time allowed.
        max: Duration,
        /// The master's topology at the end, with host names.
        topology: String,
    },
    /// The simulation itself failed (a host's software returned an error or panicked, or the
    /// run passed the builder's [`duration`](crate::OverlayBuilder::duration)).
    #[error("simulation failed: {0}")]
    Sim(String),
}

impl std::fmt::Debug for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl From<Box<dyn std::error::Error>> for RunError {
    fn from(e: Box<dyn std::error::Error>) -> Self {
        RunError::Sim(e.to_string())
    }
}

/// Why a command was not handed to a host's running machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The host is down (crashed, or its driver ended): nothing runs to take the command.
    #[error("the host's driver is not running")]
    Stopped,
    /// The driver runs but its command queue is full: step the simulation and try again.
    #[error("the host's command queue is full")]
    QueueFull,
}
