//! [`EventLog`]: what every host of a fleet reported, with simulated times.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use fleetmesh::Event;

/// One event, with the host that reported it and the simulated time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<E = Event> {
    /// The host's name.
    pub host: String,
    /// Simulated time since the start of the run.
    pub at: Duration,
    /// The event.
    pub event: E,
}

/// Every event of every host of a fleet, in the order they were reported: link-layer
/// [`Event`]s for a [`Fleet`](crate::Fleet), node or master events for an
/// [`OverlayFleet`](crate::OverlayFleet). Clones share the log.
pub struct EventLog<E = Event> {
    inner: Arc<Mutex<Vec<Recorded<E>>>>,
}

impl<E> Clone for EventLog<E> {
    fn clone(&self) -> Self {
        EventLog { inner: self.inner.clone() }
    }
}

impl<E> Default for EventLog<E> {
    fn default() -> Self {
        EventLog { inner: Arc::default() }
    }
}

impl<E: fmt::Debug> fmt::Debug for EventLog<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog").field("events", &*self.lock()).finish()
    }
}

impl<E: Clone> EventLog<E> {
    /// Records `event` of `host` at the current simulated time (zero outside a simulation).
    pub(crate) fn push(&self, host: &str, event: E) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.lock().push(Recorded { host: host.to_owned(), at, event });
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Recorded<E>> {
        self.lock().clone()
    }

    /// Events reported by `host`, in order.
    pub fn of(&self, host: &str) -> Vec<E> {
        self.lock().iter().filter(|r| r.host == host).map(|r| r.event.clone()).collect()
    }

    /// Number of events recorded so far (a cursor for [`since`](Self::since)).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Events recorded after the first `cursor` (a [`len`](Self::len) taken earlier).
    pub fn since(&self, cursor: usize) -> Vec<Recorded<E>> {
        self.lock().get(cursor..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Whether any recorded event satisfies `f`.
    pub fn any(&self, f: impl FnMut(&Recorded<E>) -> bool) -> bool {
        self.lock().iter().any(f)
    }
}

impl<E> EventLog<E> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Recorded<E>>> {
        // Pushes are single Vec operations; a poisoned lock still holds a consistent log.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
