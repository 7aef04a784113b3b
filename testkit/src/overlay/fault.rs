//! Crate-private fault injection under a host's transport, so the kit's own tests can make a
//! driver fail the way a bug or a dead socket would: its next receive returns an error or
//! panics, inside the driver's task.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use fleetmesh::{Path, Transport, TransportError};
use tokio::sync::Notify;

/// No fault.
const NONE: u8 = 0;
/// The next receive fails as a closed socket does (the driver returns an error).
#[cfg(test)]
pub(crate) const CLOSE: u8 = 1;
/// The next receive panics.
#[cfg(test)]
pub(crate) const PANIC: u8 = 2;

/// The fault a host's transport has now; clones share it, across the host's restarts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fault {
    code: Arc<AtomicU8>,
    /// Wakes the receives waiting on the fault when one is injected (no polling, so a fleet
    /// without faults runs exactly as it would without this wrapper).
    changed: Arc<Notify>,
}

impl Fault {
    /// Makes the host's transport fail from its next receive on.
    #[cfg(test)]
    pub(crate) fn inject(&self, code: u8) {
        self.code.store(code, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn wrap<T: Transport>(&self, transport: T) -> Faulty<T> {
        Faulty { inner: transport, fault: self.clone() }
    }

    /// Fails as injected, if anything was; a wait that never ends otherwise.
    async fn strike(&self) -> TransportError {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so an injection in between is not missed.
            changed.as_mut().enable();
            match self.code.load(Ordering::SeqCst) {
                NONE => changed.await,
                1 => return TransportError::Closed,
                _ => panic!("injected fault: the transport panicked"),
            }
        }
    }
}

/// A transport whose receive fails once a [`Fault`] is injected.
#[derive(Debug)]
pub(crate) struct Faulty<T> {
    inner: T,
    fault: Fault,
}

#[async_trait]
impl<T: Transport> Transport for Faulty<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        self.inner.send_to(dst, datagram).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        // Cancel safe: both branches are (the inner receive, a wait for a fault).
        tokio::select! {
            biased;
            error = self.fault.strike() => Err(error),
            received = self.inner.recv_from(buf) => received,
        }
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.local_addrs()
    }

    fn max_datagram_size(&self) -> usize {
        self.inner.max_datagram_size()
    }

    async fn send_on(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), TransportError> {
        self.inner.send_on(path, dst, datagram).await
    }

    async fn recv_on(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr, Path), TransportError> {
        tokio::select! {
            biased;
            error = self.fault.strike() => Err(error),
            received = self.inner.recv_on(buf) => received,
        }
    }
}
