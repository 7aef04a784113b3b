//! One address bound on a [`MemoryHub`].

use std::net::SocketAddr;

use async_trait::async_trait;
use fleetmesh_driver::{Transport, TransportError};
use tokio::sync::{mpsc, Mutex};

use crate::{
    hub::{Datagram, MemoryHub},
    MAX_DATAGRAM_SIZE,
};

/// A [`Transport`] on an in-memory network, made by [`MemoryHub::bind`].
///
/// Dropping it unbinds its address; datagrams still in flight to the address are then dropped
/// on arrival (or delivered to whoever binds it next).
#[derive(Debug)]
pub struct MemoryTransport {
    addr: SocketAddr,
    hub: MemoryHub,
    /// Behind an async mutex so that concurrent `recv_from` calls queue up rather than fail;
    /// `mpsc::Receiver::recv` is cancel safe, so dropping a waiting call loses nothing.
    inbox: Mutex<mpsc::Receiver<Datagram>>,
}

impl MemoryTransport {
    pub(crate) fn new(addr: SocketAddr, hub: MemoryHub, inbox: mpsc::Receiver<Datagram>) -> Self {
        Self { addr, hub, inbox: Mutex::new(inbox) }
    }

    /// The address this transport is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub this transport is bound on.
    pub fn hub(&self) -> &MemoryHub {
        &self.hub
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    /// Sends `datagram` to `dst` through the hub.
    ///
    /// Loss and partitions drop the datagram silently, as does an unbound `dst`. A link with
    /// latency needs a tokio runtime (for the delivery timer); without one this returns
    /// [`TransportError::Io`].
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        if datagram.len() > MAX_DATAGRAM_SIZE {
            return Err(TransportError::TooLarge { size: datagram.len(), max: MAX_DATAGRAM_SIZE });
        }
        let Some(latency) = self.hub.admit(self.addr, dst) else {
            return Ok(());
        };
        let datagram = Datagram { src: self.addr, payload: datagram.to_vec() };
        if latency.is_zero() {
            self.hub.deliver(dst, datagram);
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        // The deadline is fixed now, not when the task first runs, so a busy runtime does not
        // add to the simulated latency.
        let deadline = tokio::time::Instant::now() + latency;
        let hub = self.hub.clone();
        runtime.spawn(async move {
            tokio::time::sleep_until(deadline).await;
            hub.deliver(dst, datagram);
        });
        Ok(())
    }

    /// Receives the next datagram. A datagram longer than `buf` is consumed and reported as
    /// [`TransportError::TooLarge`] with `max` set to `buf.len()`.
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        let mut inbox = self.inbox.lock().await;
        // The hub holds the sender until this transport is dropped, so `None` cannot happen
        // while `self` exists; map it anyway rather than assume.
        let datagram = inbox.recv().await.ok_or(TransportError::Closed)?;
        let len = datagram.payload.len();
        let Some(dest) = buf.get_mut(..len) else {
            return Err(TransportError::TooLarge { size: len, max: buf.len() });
        };
        dest.copy_from_slice(&datagram.payload);
        Ok((len, datagram.src))
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        vec![self.addr]
    }

    fn max_datagram_size(&self) -> usize {
        MAX_DATAGRAM_SIZE
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.hub.unbind(self.addr);
    }
}
