//! [`UdpTransport`]: the [`Transport`] impl over a UDP socket.

use std::net::SocketAddr;

use async_trait::async_trait;
use fleetmesh_driver::{Transport, TransportError};
use tokio::sync::Mutex;

use crate::{addr, error, socket::Socket, MAX_DATAGRAM_SIZE, RECV_SCRATCH_LEN};

/// A [`Transport`] over one UDP socket.
///
/// See the [crate docs](crate) for address-family and receive-buffer behaviour.
#[derive(Debug)]
pub struct UdpTransport {
    socket: Socket,
    local: SocketAddr,
    /// Receive buffer for callers whose buffer might truncate; allocated on first use. Held
    /// across the receive, which is cancel safe, so a cancelled call leaves it untouched.
    scratch: Mutex<Vec<u8>>,
}

impl UdpTransport {
    /// Binds a tokio UDP socket to `addr` (port 0 for any free port).
    ///
    /// Binding `[::]` gives a dual-stack socket where the OS allows it (Linux by default); see
    /// the [crate docs](crate).
    ///
    /// # Errors
    /// [`TransportError::Io`] if the socket cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        Self::from_socket(Socket::Tokio(crate::socket::Real::new(socket)))
    }

    /// Binds a turmoil simulated UDP socket to `addr`. Must be called from a host inside a
    /// turmoil simulation; turmoil only supports the unspecified address or localhost, of the
    /// host's IP family.
    ///
    /// # Errors
    /// [`TransportError::Io`] if the port is taken or the address unsupported.
    #[cfg(feature = "turmoil")]
    pub async fn bind_turmoil(addr: SocketAddr) -> Result<Self, TransportError> {
        let socket = turmoil::net::UdpSocket::bind(addr).await?;
        Self::from_socket(Socket::Turmoil(socket))
    }

    fn from_socket(socket: Socket) -> Result<Self, TransportError> {
        let local = socket.local_addr()?;
        tracing::debug!(%local, "udp transport bound");
        Ok(Self { socket, local, scratch: Mutex::new(Vec::new()) })
    }

    /// The address the socket is bound to (with the OS-assigned port for a port-0 bind).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn send_ttl(
        &self,
        dst: SocketAddr,
        datagram: &[u8],
        ttl: Option<u8>,
    ) -> Result<(), TransportError> {
        if datagram.len() > MAX_DATAGRAM_SIZE {
            return Err(TransportError::TooLarge { size: datagram.len(), max: MAX_DATAGRAM_SIZE });
        }
        let target = addr::outbound(self.local, dst, self.socket.dual_stack())
            .ok_or(TransportError::AddressFamily(dst))?;
        let sent = (self.socket.send_to(datagram, target, ttl).await)
            .map_err(|e| error::send_error(e, dst))?;
        // A UDP send is all or nothing; a short count would mean a broken socket layer.
        if sent != datagram.len() {
            return Err(std::io::Error::other(format!(
                "short udp send: {sent} of {} bytes",
                datagram.len()
            ))
            .into());
        }
        Ok(())
    }

    /// Receives one datagram, skipping stale ICMP reports.
    async fn recv_raw(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        loop {
            match self.socket.recv_from(buf).await {
                Ok(received) => return Ok(received),
                Err(e) if error::is_stale_icmp(&e) => {
                    tracing::debug!(local = %self.local, error = %e, "ignoring icmp error on receive");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[async_trait]
impl Transport for UdpTransport {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        self.send_ttl(dst, datagram, None).await
    }

    /// With a real socket the datagram leaves with IP TTL `ttl` (IPv6: hop limit); the
    /// socket's own TTL is back to what it was when this returns.
    async fn send_limited(
        &self,
        _path: fleetmesh_driver::Path,
        dst: SocketAddr,
        datagram: &[u8],
        ttl: u8,
    ) -> Result<(), TransportError> {
        self.send_ttl(dst, datagram, Some(ttl)).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        if buf.len() >= RECV_SCRATCH_LEN {
            let (len, src) = self.recv_raw(buf).await?;
            return Ok((len, addr::canonical(src)));
        }
        let mut scratch = self.scratch.lock().await;
        if scratch.is_empty() {
            scratch.resize(RECV_SCRATCH_LEN, 0);
        }
        let (len, src) = self.recv_raw(&mut scratch).await?;
        // `len == RECV_SCRATCH_LEN` means the scratch buffer itself truncated (turmoil only):
        // the real size is unknown but larger than any caller buffer on this path.
        match buf.get_mut(..len) {
            Some(dest) if len < RECV_SCRATCH_LEN => {
                dest.copy_from_slice(&scratch[..len]);
                Ok((len, addr::canonical(src)))
            }
            _ => Err(TransportError::TooLarge { size: len, max: buf.len() }),
        }
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        vec![self.local]
    }

    fn max_datagram_size(&self) -> usize {
        MAX_DATAGRAM_SIZE
    }
}
