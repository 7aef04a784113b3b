//! [`Nat`]: a NAT in front of one host's UDP, for networks that have none (turmoil has no
//! address translation; loopback neither). Two behaviours (RFC 4787 terms):
//!
//! * [`NatKind::PortRestricted`]: endpoint-independent mapping (the host's own port serves
//!   every destination), address-and-port-dependent filtering: a datagram from outside gets in
//!   only from an address the host sent to in the last [`FILTER_TIMEOUT`]. Hole punching
//!   works through it.
//! * [`NatKind::Symmetric`]: address-and-port-dependent mapping and filtering: the host's
//!   datagrams to each outside address leave from a port of their own (a socket bound for
//!   that destination), and only that address's answers come back through it. Two such hosts
//!   cannot punch through to each other; they need a relay.
//!
//! The host's LAN (an address prefix) is inside the NAT: datagrams to and from it pass as
//! they are. Only the port changes, never the address: what a peer observes differs from
//! what the host binds exactly as it would behind a real NAT of that kind.

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use fleetmesh::{Transport, TransportError};
use tokio::{sync::mpsc, time::Instant};

/// How long a datagram the host sent keeps the way open for answers from that address.
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(120);
/// Outside addresses a NAT keeps state for; beyond it the oldest are forgotten.
pub const MAX_MAPPINGS: usize = 1024;

/// What a [`Nat`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// A port per destination, and only its answers.
    Symmetric,
}

/// Binds a fresh UDP transport on an ephemeral port (a symmetric NAT's mapping).
pub type Bind<T> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send>> + Send + Sync>;

/// A NAT of `kind` in front of a host on `lan` (address, prefix length).
pub struct Nat<T> {
    kind: NatKind,
    lan: (IpAddr, u8),
    inner: Arc<T>,
    bind: Bind<T>,
    state: Mutex<State<T>>,
    tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    rx: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
}

struct State<T> {
    /// Outside addresses sent to, and when.
    sent: HashMap<SocketAddr, Instant>,
    /// (Symmetric) the socket each outside address gets our datagrams from.
    ports: HashMap<SocketAddr, Arc<T>>,
}

impl<T: Transport> Nat<T> {
    /// `inner` (the host's socket) behind a NAT of `kind`; `bind` opens the ports a
    /// symmetric NAT maps to (unused by a port-restricted one).
    pub fn new(kind: NatKind, lan: (IpAddr, u8), inner: T, bind: Bind<T>) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        Nat {
            kind,
            lan,
            inner: Arc::new(inner),
            bind,
            state: Mutex::new(State { sent: HashMap::new(), ports: HashMap::new() }),
            tx,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    fn inside(&self, ip: IpAddr) -> bool {
        let (net, len) = self.lan;
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a datagram to `dst`; returns the port it leaves from (symmetric), if mapped.
    fn note_sent(&self, dst: SocketAddr) -> Option<Arc<T>> {
        let now = Instant::now();
        let mut s = self.state();
        if s.sent.len() >= MAX_MAPPINGS && !s.sent.contains_key(&dst) {
            s.sent.retain(|_, t| now.duration_since(*t) < FILTER_TIMEOUT);
            if s.sent.len() >= MAX_MAPPINGS {
                // Forget the oldest half: a NAT under pressure drops mappings.
                let mut times: Vec<Instant> = s.sent.values().copied().collect();
                times.sort_unstable();
                let cut = times[times.len() / 2];
                s.sent.retain(|_, t| *t > cut);
                let kept: Vec<SocketAddr> = s.sent.keys().copied().collect();
                s.ports.retain(|a, _| kept.contains(a));
            }
        }
        s.sent.insert(dst, now);
        s.ports.get(&dst).cloned()
    }

    /// Whether a datagram from outside, from `src`, gets in on the host's own port.
    fn admits(&self, src: SocketAddr) -> bool {
        if self.inside(src.ip()) {
            return true;
        }
        if self.kind == NatKind::Symmetric {
            return false;
        }
        let s = self.state();
        s.sent.get(&src).is_some_and(|t| t.elapsed() < FILTER_TIMEOUT)
    }

    /// Opens the port for `dst` and passes on what comes back through it from `dst` only.
    async fn map(&self, dst: SocketAddr) -> Result<Arc<T>, TransportError> {
        let socket = Arc::new((self.bind)().await?);
        let mut s = self.state();
        if let Some(existing) = s.ports.get(&dst) {
            return Ok(existing.clone());
        }
        s.ports.insert(dst, socket.clone());
        drop(s);
        let (reader, tx) = (socket.clone(), self.tx.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, src)) = reader.recv_from(&mut buf).await {
                if src == dst && tx.send((buf[..n].to_vec(), src)).await.is_err() {
                    break;
                }
            }
        });
        Ok(socket)
    }
}

#[async_trait]
impl<T: Transport> Transport for Nat<T> {
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        if self.inside(dst.ip()) {
            return self.inner.send_to(dst, datagram).await;
        }
        let mapped = self.note_sent(dst);
        match self.kind {
            NatKind::PortRestricted => self.inner.send_to(dst, datagram).await,
            NatKind::Symmetric => {
                let port = match mapped {
                    Some(port) => port,
                    None => self.map(dst).await?,
                };
                port.send_to(dst, datagram).await
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        let mut rx = self.rx.lock().await;
        loop {
            // Both arms are cancel safe: the inner receive as the transport's, the channel's.
            tokio::select! {
                got = self.inner.recv_from(buf) => {
                    let (n, src) = got?;
                    if self.admits(src) {
                        return Ok((n, src));
                    }
                }
                Some((datagram, src)) = rx.recv() => {
                    let n = datagram.len().min(buf.len());
                    buf[..n].copy_from_slice(&datagram[..n]);
                    return Ok((n, src));
                }
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
