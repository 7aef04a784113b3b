//! [`Tap`]: a wiretap on one host's transport, recording the datagrams it receives while on.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use fleetmesh::{Path, Transport, TransportError};

#[derive(Debug, Default)]
struct TapState {
    on: bool,
    received: Vec<(SocketAddr, Vec<u8>)>,
}

/// Records every datagram a host receives while switched on. Clones share the recording, which
/// survives the host's restarts.
#[derive(Debug, Clone, Default)]
pub struct Tap {
    inner: Arc<Mutex<TapState>>,
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        // Every update is one push or flag write; a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts recording.
    pub fn start(&self) {
        self.lock().on = true;
    }

    /// Stops recording (what was recorded stays).
    pub fn stop(&self) {
        self.lock().on = false;
    }

    /// Every datagram received while on: source and bytes, in order.
    pub fn received(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.lock().received.clone()
    }

    /// Whether `needle` occurs in any recorded datagram.
    pub fn saw_bytes(&self, needle: &[u8]) -> bool {
        !needle.is_empty()
            && self
                .lock()
                .received
                .iter()
                .any(|(_, d)| d.windows(needle.len()).any(|w| w == needle))
    }

    /// `transport`, with what it receives recorded here.
    pub fn wrap<T: Transport>(&self, transport: T) -> Tapped<T> {
        Tapped { inner: transport, tap: self.clone() }
    }
}

/// A [`Transport`] whose received datagrams a [`Tap`] records.
#[derive(Debug)]
pub struct Tapped<T> {
    inner: T,
    tap: Tap,
}

#[async_trait]
impl<T: Transport> Transport for Tapped<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        self.inner.send_to(dst, datagram).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        // Cancel safe as the inner receive is: the record is made only once it completed.
        let (n, src) = self.inner.recv_from(buf).await?;
        let mut state = self.tap.lock();
        if state.on {
            state.received.push((src, buf[..n].to_vec()));
        }
        Ok((n, src))
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
        let (n, src, path) = self.inner.recv_on(buf).await?;
        let mut state = self.tap.lock();
        if state.on {
            state.received.push((src, buf[..n].to_vec()));
        }
        Ok((n, src, path))
    }
}
