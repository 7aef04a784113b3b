//! [`TcpTransport`]: the [`Transport`] impl, its connection table and its accept loop.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use async_trait::async_trait;
use fleetmesh_driver::{Transport, TransportError};
use tokio::{io::AsyncWriteExt, sync::mpsc, task::JoinSet};

use crate::{
    addr,
    config::TcpConfig,
    conn::Conn,
    error, frame,
    net::{Backend, BoxWrite, Listener},
    reader::{self, Origin},
    MAX_DATAGRAM_SIZE,
};

/// Pause after a failed `accept` (such as running out of file descriptors), so the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A received datagram and the listening address of the peer that sent it.
type Inbound = (SocketAddr, Vec<u8>);

/// A [`Transport`] that carries datagrams as length-prefixed frames over TCP connections.
///
/// One connection per peer serves both directions: a connection the peer dialed is filed
/// under the peer's *listening* address (announced in its hello), `recv_from` reports that
/// address as the source, and `send_to` to it reuses the connection. See the
/// [crate docs](crate) for the full behaviour.
///
/// Dropping the transport stops its tasks and closes its connections and listener; the
/// listening socket is released once the runtime has dropped the aborted accept task. Use
/// [`close`](Self::close) to wait for that, for example before binding the port again.
pub struct TcpTransport {
    shared: Arc<Shared>,
    /// Behind an async mutex so concurrent `recv_from` calls queue up; `mpsc::Receiver::recv`
    /// is cancel safe, so a dropped call loses nothing.
    inbound: tokio::sync::Mutex<mpsc::Receiver<Inbound>>,
}

/// Connection counters of a [`TcpTransport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Connections this transport dialed.
    pub dialed: u64,
    /// Connections peers dialed to this transport that completed their hello.
    pub accepted: u64,
    /// Connections closed on accept because a limit was reached
    /// ([`TcpConfig::with_accept_limits`]).
    pub refused: u64,
    /// Connections open now, one per peer, in either direction. A connection replaced by a
    /// newer one to the same peer is not counted while it winds down.
    pub open: usize,
}

/// State shared by the transport, its accept loop and its connection tasks.
pub(crate) struct Shared {
    config: TcpConfig,
    local: SocketAddr,
    backend: Backend,
    inbound: mpsc::Sender<Inbound>,
    table: Mutex<Table>,
    dialed: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    admitted: Mutex<Admitted>,
}

struct Table {
    /// Open connections by the peer's listening address.
    conns: HashMap<SocketAddr, Arc<Conn>>,
    /// The accept loop and every connection task; aborted together on shutdown.
    tasks: JoinSet<()>,
    next_id: u64,
    shut_down: bool,
}

/// Accepted connections open now, in all and by the IP they come from. Its own lock: a slot
/// is given back when its task is dropped, which may happen while the table is locked.
#[derive(Default)]
struct Admitted {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

impl TcpTransport {
    /// Listens on `addr` with real sockets and [`TcpConfig::default`].
    ///
    /// # Errors
    /// [`TransportError::Io`] if the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        Self::bind_with_config(addr, TcpConfig::default()).await
    }

    /// Listens on `addr` with real sockets and the given configuration.
    ///
    /// # Errors
    /// [`TransportError::Io`] if the address cannot be bound.
    pub async fn bind_with_config(
        addr: SocketAddr,
        config: TcpConfig,
    ) -> Result<Self, TransportError> {
        Self::start(Backend::Tokio, addr, config).await
    }

    /// Listens on `addr` in a turmoil simulation with [`TcpConfig::default`]. Must be called
    /// from a host inside the simulation; turmoil only supports the unspecified address or
    /// localhost, of the host's IP family.
    ///
    /// # Errors
    /// [`TransportError::Io`] if the port is taken or the address unsupported.
    #[cfg(feature = "turmoil")]
    pub async fn bind_turmoil(addr: SocketAddr) -> Result<Self, TransportError> {
        Self::bind_turmoil_with_config(addr, TcpConfig::default()).await
    }

    /// Listens on `addr` in a turmoil simulation with the given configuration.
    ///
    /// # Errors
    /// [`TransportError::Io`] if the port is taken or the address unsupported.
    #[cfg(feature = "turmoil")]
    pub async fn bind_turmoil_with_config(
        addr: SocketAddr,
        config: TcpConfig,
    ) -> Result<Self, TransportError> {
        Self::start(Backend::Turmoil, addr, config).await
    }

    async fn start(
        backend: Backend,
        addr: SocketAddr,
        config: TcpConfig,
    ) -> Result<Self, TransportError> {
        let listener = Listener::bind(backend, addr).await?;
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(config.recv_queue());
        let shared = Arc::new(Shared {
            config,
            local,
            backend,
            inbound: tx,
            table: Mutex::new(Table {
                conns: HashMap::new(),
                tasks: JoinSet::new(),
                next_id: 0,
                shut_down: false,
            }),
            admitted: Mutex::new(Admitted::default()),
            dialed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        shared.spawn(accept_loop(shared.clone(), listener));
        tracing::debug!(%local, "tcp transport listening");
        Ok(Self { shared, inbound: tokio::sync::Mutex::new(rx) })
    }

    /// The address the listener is bound to (with the OS-assigned port for a port-0 bind).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// The configuration this transport runs with.
    pub fn config(&self) -> &TcpConfig {
        &self.shared.config
    }

    /// Connection counters.
    pub fn stats(&self) -> TcpStats {
        TcpStats {
            dialed: self.shared.dialed.load(Ordering::Relaxed),
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            open: self.shared.table().conns.len(),
        }
    }

    /// Shuts the transport down and waits until its tasks, connections and listening socket
    /// are gone, so the port can be bound again at once.
    pub async fn close(self) {
        let mut tasks = self.shared.shutdown();
        while tasks.join_next().await.is_some() {}
    }

    /// Opens a connection to `dst` and sends the hello.
    async fn dial(&self, dst: SocketAddr) -> Result<Arc<Conn>, TransportError> {
        let shared = &self.shared;
        let hello = frame::hello(shared.local.port());
        let connect = async {
            let (read, mut write) =
                shared.backend.connect(dst, addr::dial_source(shared.local, dst)).await?;
            write.write_all(&hello).await?;
            write.flush().await?;
            Ok::<_, io::Error>((read, write))
        };
        let (read, write) =
            match tokio::time::timeout(shared.config.connect_timeout(), connect).await {
                Ok(Ok(halves)) => halves,
                Ok(Err(e)) => {
                    tracing::debug!(%dst, error = %e, "tcp dial failed");
                    return Err(error::connect_error(e, dst));
                }
                Err(_) => {
                    tracing::debug!(%dst, "tcp dial timed out");
                    return Err(TransportError::Unreachable(dst));
                }
            };
        let conn =
            shared.register(dst, dst, write, Origin::Dialed).ok_or(TransportError::Closed)?;
        if !shared.spawn(reader::run_dialed(shared.clone(), conn.clone(), read)) {
            conn.close();
            shared.forget(&conn);
            return Err(TransportError::Closed);
        }
        tracing::debug!(%dst, id = conn.id(), "tcp connection dialed");
        Ok(conn)
    }
}

#[async_trait]
impl Transport for TcpTransport {
    /// Sends over the open connection to `dst`, or dials one. If writing to an existing
    /// connection fails (the peer restarted, say), it is dropped and one new connection is
    /// tried before giving up.
    async fn send_to(&self, dst: SocketAddr, datagram: &[u8]) -> Result<(), TransportError> {
        let too_large =
            || TransportError::TooLarge { size: datagram.len(), max: MAX_DATAGRAM_SIZE };
        if datagram.len() > MAX_DATAGRAM_SIZE {
            return Err(too_large());
        }
        let shared = &self.shared;
        if !addr::compatible(shared.local, dst, shared.backend.dual_stack()) {
            return Err(TransportError::AddressFamily(dst));
        }
        let frame = frame::encode(datagram, MAX_DATAGRAM_SIZE).map_err(|_| too_large())?;
        let write_timeout = shared.config.write_timeout();

        if let Some(conn) = shared.connection(dst) {
            match conn.write_frame(&frame, write_timeout).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(%dst, id = conn.id(), error = %e, "tcp write failed, redialing");
                    shared.forget(&conn);
                }
            }
        }
        let conn = self.dial(dst).await?;
        conn.write_frame(&frame, write_timeout).await.map_err(|e| {
            shared.forget(&conn);
            error::send_error(e, dst)
        })
    }

    /// Receives the next datagram from any connection. A datagram longer than `buf` is
    /// consumed and reported as [`TransportError::TooLarge`] with `max` set to `buf.len()`.
    async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), TransportError> {
        let mut inbound = self.inbound.lock().await;
        // `Shared` keeps a sender for as long as `self` exists, so `None` cannot happen here;
        // map it anyway rather than assume.
        let (src, payload) = inbound.recv().await.ok_or(TransportError::Closed)?;
        let Some(dest) = buf.get_mut(..payload.len()) else {
            return Err(TransportError::TooLarge { size: payload.len(), max: buf.len() });
        };
        dest.copy_from_slice(&payload);
        Ok((payload.len(), src))
    }

    /// The listening address, as bound (unspecified for a wildcard bind).
    fn local_addrs(&self) -> Vec<SocketAddr> {
        vec![self.shared.local]
    }

    fn max_datagram_size(&self) -> usize {
        MAX_DATAGRAM_SIZE
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        // Dropping the task set aborts every task; they hold `Arc<Shared>`, so this also
        // breaks the reference cycle through the table.
        drop(self.shared.shutdown());
    }
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("local", &self.shared.local)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Files a new connection under `peer`, replacing (not closing) any older one: the older
    /// connection keeps delivering what it receives until it goes idle or fails. `None` once
    /// the transport is shut down.
    ///
    /// A connection we accepted names `peer` itself (its hello's port), which nothing
    /// authenticates: hosts behind one NAT share an IP, and one could announce another's
    /// port. So it may not displace a live connection: it is filed under `remote`, the
    /// address it really comes from, and reported from there (replies follow it).
    pub(crate) fn register(
        &self,
        peer: SocketAddr,
        remote: SocketAddr,
        write: BoxWrite,
        origin: Origin,
    ) -> Option<Arc<Conn>> {
        let mut table = self.table();
        if table.shut_down {
            return None;
        }
        let taken = table.conns.get(&peer).is_some_and(|c| !c.is_closed());
        let peer = if origin == Origin::Accepted && taken { remote } else { peer };
        let id = table.next_id;
        table.next_id += 1;
        let conn = Arc::new(Conn::new(id, peer, write));
        table.conns.insert(peer, conn.clone());
        drop(table);
        let counter = match origin {
            Origin::Dialed => &self.dialed,
            Origin::Accepted => &self.accepted,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    /// Removes `conn` from the table unless a newer connection to the same peer replaced it.
    pub(crate) fn forget(&self, conn: &Conn) {
        let mut table = self.table();
        if table.conns.get(&conn.peer()).is_some_and(|c| c.id() == conn.id()) {
            table.conns.remove(&conn.peer());
        }
    }

    /// Hands a received datagram to `recv_from`, waiting while the queue is full. `false` if
    /// the transport is gone.
    pub(crate) async fn deliver(&self, src: SocketAddr, payload: Vec<u8>) -> bool {
        self.inbound.send((src, payload)).await.is_ok()
    }

    /// The open connection to `peer`, if any.
    fn connection(&self, peer: SocketAddr) -> Option<Arc<Conn>> {
        self.table().conns.get(&peer).filter(|c| !c.is_closed()).cloned()
    }

    /// Runs `task` until the transport shuts down. `false` (and `task` dropped) if it already
    /// has.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> bool {
        let mut table = self.table();
        if table.shut_down {
            return false;
        }
        // Reap finished tasks so the set does not grow with every connection ever made.
        while table.tasks.try_join_next().is_some() {}
        table.tasks.spawn(task);
        true
    }

    /// Stops accepting work, closes every connection and returns the aborted tasks for the
    /// caller to await or drop.
    fn shutdown(&self) -> JoinSet<()> {
        let mut table = self.table();
        table.shut_down = true;
        for conn in table.conns.values() {
            conn.close();
        }
        table.conns.clear();
        let mut tasks = std::mem::take(&mut table.tasks);
        tasks.abort_all();
        tasks
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table consistent, so a panic elsewhere while it
        // was held does not make it unusable.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts connections until the transport shuts down, one task per connection.
async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        match listener.accept().await {
            Ok((read, write, remote)) => {
                let Some(slot) = Slot::take(&shared, remote.ip()) else {
                    // Dropping both halves closes it before anything is read.
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, "tcp connection refused: accept limit reached");
                    continue;
                };
                let conn = reader::run_accepted(shared.clone(), read, write, remote);
                let task = async move {
                    conn.await;
                    drop(slot);
                };
                if !shared.spawn(task) {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(local = %shared.local, error = %e, "tcp accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One accepted connection's place under the accept limits, given back when it ends.
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Slot {
    fn take(shared: &Arc<Shared>, ip: IpAddr) -> Option<Slot> {
        let (total, per_ip) = shared.config.max_accepted();
        let mut admitted = shared.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        let from_ip = admitted.by_ip.get(&ip).copied().unwrap_or(0);
        if admitted.total >= total || from_ip >= per_ip {
            return None;
        }
        admitted.total += 1;
        admitted.by_ip.insert(ip, from_ip + 1);
        Some(Slot { shared: shared.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut admitted = self.shared.admitted.lock().unwrap_or_else(PoisonError::into_inner);
        admitted.total = admitted.total.saturating_sub(1);
        if let Some(n) = admitted.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                admitted.by_ip.remove(&self.ip);
            }
        }
    }
}
