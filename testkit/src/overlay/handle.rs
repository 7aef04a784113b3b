//! Handles that outlive one run of a host: [`Control`] sends commands to whatever machine the
//! host runs now; [`Running`] lets the test read that machine's state.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::CommandError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every write is one assignment; a poisoned lock still holds a consistent value.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends commands (a [`NodeCommand`](fleetmesh::overlay::NodeCommand) or a
/// [`MasterCommand`](fleetmesh::overlay::MasterCommand)) to one host's running machine.
/// Survives the host's restarts; fails while the host is down.
pub struct Control<C> {
    sender: Arc<Mutex<Option<mpsc::Sender<C>>>>,
}

impl<C> Clone for Control<C> {
    fn clone(&self) -> Self {
        Control { sender: self.sender.clone() }
    }
}

impl<C> std::fmt::Debug for Control<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").field("running", &lock(&self.sender).is_some()).finish()
    }
}

impl<C> Default for Control<C> {
    fn default() -> Self {
        Control { sender: Arc::default() }
    }
}

impl<C> Control<C> {
    /// Sends `command`, waiting for room in the queue (from a turmoil client task). Fails
    /// with [`CommandError::Stopped`] while the host is down.
    pub async fn send(&self, command: C) -> Result<(), CommandError> {
        let sender = lock(&self.sender).clone().ok_or(CommandError::Stopped)?;
        sender.send(command).await.map_err(|_| CommandError::Stopped)
    }

    /// Sends `command` at once (from the test, between simulation steps). The host acts on it
    /// at its next tick. Fails with [`CommandError::QueueFull`] when the driver has not yet
    /// taken the commands sent before (step the simulation and send again), with
    /// [`CommandError::Stopped`] while the host is down.
    pub fn try_send(&self, command: C) -> Result<(), CommandError> {
        let sender = lock(&self.sender).clone().ok_or(CommandError::Stopped)?;
        sender.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => CommandError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => CommandError::Stopped,
        })
    }

    pub(crate) fn set(&self, sender: Option<mpsc::Sender<C>>) {
        *lock(&self.sender) = sender;
    }
}

/// The machine a host runs now (none while it is down), shared with its driver.
pub(crate) struct Running<M> {
    machine: Arc<Mutex<Option<Arc<Mutex<M>>>>>,
}

impl<M> Clone for Running<M> {
    fn clone(&self) -> Self {
        Running { machine: self.machine.clone() }
    }
}

impl<M> Default for Running<M> {
    fn default() -> Self {
        Running { machine: Arc::default() }
    }
}

impl<M> Running<M> {
    pub(crate) fn get(&self) -> Option<Arc<Mutex<M>>> {
        lock(&self.machine).clone()
    }

    pub(crate) fn set(&self, machine: Option<Arc<Mutex<M>>>) {
        *lock(&self.machine) = machine;
    }

    /// Runs `f` on the machine, if the host is up. Keep it short: the driver waits meanwhile.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&M) -> R) -> Option<R> {
        self.get().map(|m| f(&lock(&m)))
    }
}
