//! [`DualTransport`]: one UDP-like and one TCP-like transport behind one [`Transport`], so the
//! driver can send each [`Transmit`](crate::Transmit) over the [`Path`] the core chose and
//! tell the core which path each datagram came over.

use std::net::SocketAddr;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::{transport::Path, Transport, TransportError};

/// Two transports as one: `udp` carries [`Path::Udp`], `tcp` carries [`Path::Tcp`].
///
/// Bind both to the same port (UDP and TCP ports are separate namespaces), so a peer has one
/// address whichever path reaches it: the TCP transport reports a peer's *listening* address
/// as the source of its datagrams, which then equals the peer's UDP address.
///
/// Plain [`send_to`](Transport::send_to) and [`recv_from`](Transport::recv_from) use the UDP
/// transport only; the driver uses [`send_on`](Transport::send_on) and
/// [`recv_on`](Transport::recv_on).
#[derive(Debug)]
pub struct DualTransport<U, T> {
    udp: U,
    tcp: T,
    /// Where a TCP datagram lands while the caller's buffer waits for UDP.
    scratch: Mutex<Vec<u8>>,
}

impl<U: Transport, T: Transport> DualTransport<U, T> {
    /// `udp` and `tcp` as one transport.
    pub fn new(udp: U, tcp: T) -> Self {
        let scratch = Mutex::new(vec![0u8; tcp.max_datagram_size()]);
        DualTransport { udp, tcp, scratch }
    }

    /// The UDP transport.
    pub fn udp(&self) -> &U {
        &self.udp
    }

    /// The TCP transport.
    pub fn tcp(&self) -> &T {
        &self.tcp
    }
}

#[async_trait]
impl<U: Transport, T: Transport> Transport for DualTransport<U, T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        self.udp.send_to(dst, datagram).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        self.udp.recv_from(buf).await
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = self.udp.local_addrs();
        addrs.extend(self.tcp.local_addrs());
        addrs.sort_unstable();
        addrs.dedup();
        addrs
    }

    fn max_datagram_size(&self) -> usize {
        self.udp.max_datagram_size().min(self.tcp.max_datagram_size())
    }

    async fn send_on(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), TransportError> {
        match path {
            Path::Udp => self.udp.send_to(dst, datagram).await,
            Path::Tcp => self.tcp.send_to(dst, datagram).await,
            // A path this build's core may name but the pair does not carry (`Path` grows).
            _ => Err(TransportError::Unreachable(dst)),
        }
    }

    async fn send_limited(
        &self,
        path: Path,
        dst: SocketAddr,
        datagram: &[u8],
        ttl: u8,
    ) -> Result<(), TransportError> {
        match path {
            Path::Udp => self.udp.send_limited(path, dst, datagram, ttl).await,
            // A TTL means nothing to a TCP frame.
            _ => self.send_on(path, dst, datagram).await,
        }
    }

    async fn recv_on(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr, Path), TransportError> {
        let mut scratch = self.scratch.lock().await;
        // Cancel safe: both receives are, and a TCP datagram is copied out in the same poll
        // that completes it. UDP first, in a fixed order, so seeded runs repeat.
        tokio::select! {
            biased;
            r = self.udp.recv_from(buf) => r.map(|(n, src)| (n, src, Path::Udp)),
            r = self.tcp.recv_from(&mut scratch[..]) => {
                let (n, src) = r?;
                let max = buf.len();
                let out = buf.get_mut(..n).ok_or(TransportError::TooLarge { size: n, max })?;
                out.copy_from_slice(&scratch[..n]);
                Ok((n, src, Path::Tcp))
            }
        }
    }
}
