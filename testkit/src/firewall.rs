//! [`Firewall`]: a host firewall that drops UDP in one direction or both, as the thesis
//! prototype met in the field (section 6). TCP is left alone: wrap only the UDP transport.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, Ordering},
        Arc,
    },
};

use async_trait::async_trait;
use fleetmesh::{Transport, TransportError};

/// Which direction of a host's UDP a [`Firewall`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UdpBlock {
    /// Nothing dropped.
    #[default]
    Open,
    /// Datagrams arriving at the host are dropped (it can send but not receive).
    Inbound,
    /// Datagrams the host sends are dropped.
    Outbound,
    /// Both.
    Both,
}

impl UdpBlock {
    fn code(self) -> u8 {
        match self {
            UdpBlock::Open => 0,
            UdpBlock::Inbound => 1,
            UdpBlock::Outbound => 2,
            UdpBlock::Both => 3,
        }
    }
}

/// A switchable UDP firewall for one host. Clones share the setting, which survives the host's
/// restarts.
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    code: Arc<AtomicU8>,
}

impl Firewall {
    /// Sets what is dropped from now on.
    pub fn set(&self, block: UdpBlock) {
        self.code.store(block.code(), Ordering::SeqCst);
    }

    fn drops_inbound(&self) -> bool {
        matches!(self.code.load(Ordering::SeqCst), 1 | 3)
    }

    fn drops_outbound(&self) -> bool {
        matches!(self.code.load(Ordering::SeqCst), 2 | 3)
    }

    /// `transport` behind this firewall.
    pub fn wrap<T: Transport>(&self, transport: T) -> Firewalled<T> {
        Firewalled { inner: transport, firewall: self.clone() }
    }
}

/// A [`Transport`] behind a [`Firewall`].
#[derive(Debug)]
pub struct Firewalled<T> {
    inner: T,
    firewall: Firewall,
}

#[async_trait]
impl<T: Transport> Transport for Firewalled<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        if self.firewall.drops_outbound() {
            // A firewall drops silently, as the network would.
            return Ok(());
        }
        self.inner.send_to(dst, datagram).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        loop {
            // Cancel safe as the inner receive is: a dropped datagram was consumed on purpose.
            let (n, src) = self.inner.recv_from(buf).await?;
            if !self.firewall.drops_inbound() {
                return Ok((n, src));
            }
        }
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.inner.local_addrs()
    }

    fn max_datagram_size(&self) -> usize {
        self.inner.max_datagram_size()
    }
}
