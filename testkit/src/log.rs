use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use fleetmesh::Event;

/// One event, with the host that reported it and the simulated time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The host's name.
    pub host: String,
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// The event.
    pub event: Event,
}

/// Every event of every node of a [`Fleet`](crate::Fleet), in the order they were reported.
/// Clones share the log.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Vec<Recorded>>>,
}

impl EventLog {
    pub(crate) fn push(&self, host: &str, event: Event) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.lock().push(Recorded { host: host.to_owned(), at, event });
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Recorded> {
        self.lock().clone()
    }

    /// Events reported by `host`, in order.
    pub fn of(&self, host: &str) -> Vec<Event> {
        self.lock().iter().filter(|r| r.host == host).map(|r| r.event.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        // Pushes are single Vec operations; a poisoned lock still holds a consistent log.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
