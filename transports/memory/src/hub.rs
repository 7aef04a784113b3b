//! The shared state of an in-memory network: who is bound where, how each link behaves, and
//! the seeded RNG that decides losses.

use std::{
    collections::{HashMap, HashSet},
    fmt, io,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use fleetmesh_driver::TransportError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

use crate::{link::LinkConfig, transport::MemoryTransport, DEFAULT_QUEUE_CAPACITY};

/// The first port handed out for a bind to port 0 (the IANA dynamic range).
const EPHEMERAL_START: u16 = 49_152;

/// One datagram in flight or queued at a receiver.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) src: SocketAddr,
    pub(crate) payload: Vec<u8>,
}

/// A simulated network that [`MemoryTransport`]s bind to.
///
/// Cloning a hub gives another handle to the same network. All configuration takes effect for
/// datagrams sent after the call.
#[derive(Clone)]
pub struct MemoryHub {
    state: Arc<Mutex<HubState>>,
}

struct HubState {
    rng: ChaCha8Rng,
    default_link: LinkConfig,
    links: HashMap<(SocketAddr, SocketAddr), LinkConfig>,
    /// Partitioned address pairs, smaller address first: a partition cuts both directions.
    partitions: HashSet<(SocketAddr, SocketAddr)>,
    bound: HashMap<SocketAddr, mpsc::Sender<Datagram>>,
    queue_capacity: usize,
    next_ephemeral: u16,
}

impl MemoryHub {
    /// A network with perfect links whose losses are drawn from an RNG seeded with `seed`.
    ///
    /// ```
    /// let hub = fleetmesh_memory::MemoryHub::new(42);
    /// let a = hub.bind("10.0.0.1:1".parse().unwrap()).unwrap();
    /// ```
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(HubState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                default_link: LinkConfig::default(),
                links: HashMap::new(),
                partitions: HashSet::new(),
                bound: HashMap::new(),
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                next_ephemeral: EPHEMERAL_START,
            })),
        }
    }

    /// Binds `addr` on this network.
    ///
    /// Port 0 picks a free port from 49152 upwards. The address stays bound until the returned
    /// transport is dropped.
    ///
    /// # Errors
    /// [`TransportError::Io`] with [`io::ErrorKind::AddrInUse`] if the address is already bound
    /// (or no ephemeral port is free on that IP), and with [`io::ErrorKind::AddrNotAvailable`]
    /// for an unspecified IP (`0.0.0.0`, `::`), since the hub routes by exact address.
    ///
    /// ```
    /// use std::io;
    ///
    /// use fleetmesh_driver::TransportError;
    ///
    /// let hub = fleetmesh_memory::MemoryHub::new(0);
    /// let addr = "10.0.0.1:4000".parse().unwrap();
    /// let _a = hub.bind(addr).unwrap();
    /// assert!(matches!(
    ///     hub.bind(addr),
    ///     Err(TransportError::Io(e)) if e.kind() == io::ErrorKind::AddrInUse
    /// ));
    /// ```
    pub fn bind(&self, addr: SocketAddr) -> Result<MemoryTransport, TransportError> {
        if addr.ip().is_unspecified() {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("cannot bind {addr}: the in-memory network has no wildcard address"),
            )
            .into());
        }
        let mut state = self.lock();
        let addr = if addr.port() == 0 { state.ephemeral(addr)? } else { addr };
        if state.bound.contains_key(&addr) {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{addr} is bound")).into());
        }
        let (tx, rx) = mpsc::channel(state.queue_capacity);
        state.bound.insert(addr, tx);
        drop(state);
        tracing::trace!(%addr, "memory transport bound");
        Ok(MemoryTransport::new(addr, self.clone(), rx))
    }

    /// Sets the link used between addresses with no [`set_link`](Self::set_link) override.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use fleetmesh_memory::{LinkConfig, MemoryHub};
    ///
    /// let hub = MemoryHub::new(0);
    /// hub.set_default_link(LinkConfig::new(Duration::from_millis(10), 0.01));
    /// assert_eq!(hub.default_link().loss, 0.01);
    /// ```
    pub fn set_default_link(&self, link: LinkConfig) {
        self.lock().default_link = link;
    }

    /// The link used between addresses with no override.
    pub fn default_link(&self) -> LinkConfig {
        self.lock().default_link
    }

    /// Overrides the link from `src` to `dst` (one direction only).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use fleetmesh_memory::{LinkConfig, MemoryHub};
    ///
    /// let hub = MemoryHub::new(0);
    /// let (a, b) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
    /// hub.set_link(a, b, LinkConfig::new(Duration::from_millis(300), 0.0));
    /// assert_eq!(hub.link(a, b).latency, Duration::from_millis(300));
    /// assert_eq!(hub.link(b, a).latency, Duration::ZERO);
    /// ```
    pub fn set_link(&self, src: SocketAddr, dst: SocketAddr, link: LinkConfig) {
        self.lock().links.insert((src, dst), link);
    }

    /// Removes the override from `src` to `dst`, so the default link applies again.
    pub fn clear_link(&self, src: SocketAddr, dst: SocketAddr) {
        self.lock().links.remove(&(src, dst));
    }

    /// The link from `src` to `dst`: its override, or the default. Partitions are separate
    /// and not reflected here.
    pub fn link(&self, src: SocketAddr, dst: SocketAddr) -> LinkConfig {
        self.lock().link(src, dst)
    }

    /// Cuts both directions between `a` and `b` until [`heal`](Self::heal); datagrams sent
    /// meanwhile are lost. Link overrides are kept and apply again after healing.
    ///
    /// ```
    /// let hub = fleetmesh_memory::MemoryHub::new(0);
    /// let (a, b) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
    /// hub.partition(a, b);
    /// assert!(hub.is_partitioned(b, a));
    /// hub.heal(a, b);
    /// assert!(!hub.is_partitioned(a, b));
    /// ```
    pub fn partition(&self, a: SocketAddr, b: SocketAddr) {
        self.lock().partitions.insert(unordered(a, b));
    }

    /// Undoes [`partition`](Self::partition) between `a` and `b`.
    pub fn heal(&self, a: SocketAddr, b: SocketAddr) {
        self.lock().partitions.remove(&unordered(a, b));
    }

    /// Whether `a` and `b` are partitioned.
    pub fn is_partitioned(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.lock().partitions.contains(&unordered(a, b))
    }

    /// Sets the receive queue length, in datagrams, of transports bound from now on (minimum
    /// 1). The default is [`DEFAULT_QUEUE_CAPACITY`].
    ///
    /// ```
    /// let hub = fleetmesh_memory::MemoryHub::new(0);
    /// hub.set_queue_capacity(16);
    /// ```
    pub fn set_queue_capacity(&self, capacity: usize) {
        self.lock().queue_capacity = capacity.max(1);
    }

    /// Decides the fate of a datagram from `src` to `dst`: `None` if it is lost, otherwise
    /// the latency it travels with.
    pub(crate) fn admit(&self, src: SocketAddr, dst: SocketAddr) -> Option<Duration> {
        let mut state = self.lock();
        // One draw per send whatever the outcome, so the losses depend only on the seed and
        // the order of sends, not on which links happen to be lossy or cut.
        let sample: f64 = state.rng.gen();
        if state.partitions.contains(&unordered(src, dst)) {
            tracing::trace!(%src, %dst, "datagram dropped: partitioned");
            return None;
        }
        let link = state.link(src, dst);
        if link.drops(sample) {
            tracing::trace!(%src, %dst, "datagram dropped: link loss");
            return None;
        }
        Some(link.latency)
    }

    /// Hands a datagram to whoever has `dst` bound now; drops it if nobody does or their
    /// queue is full.
    pub(crate) fn deliver(&self, dst: SocketAddr, datagram: Datagram) {
        let state = self.lock();
        let Some(inbox) = state.bound.get(&dst) else {
            tracing::trace!(src = %datagram.src, %dst, "datagram dropped: destination unbound");
            return;
        };
        if inbox.try_send(datagram).is_err() {
            tracing::trace!(%dst, "datagram dropped: receive queue full");
        }
    }

    /// Frees `addr` for binding again.
    pub(crate) fn unbind(&self, addr: SocketAddr) {
        self.lock().bound.remove(&addr);
        tracing::trace!(%addr, "memory transport unbound");
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // The state stays consistent even if a holder panicked: every critical section is a
        // single map or RNG operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HubState {
    fn link(&self, src: SocketAddr, dst: SocketAddr) -> LinkConfig {
        self.links.get(&(src, dst)).copied().unwrap_or(self.default_link)
    }

    /// A free port on `addr`'s IP, searching the dynamic range from where the last search
    /// stopped.
    fn ephemeral(&mut self, addr: SocketAddr) -> Result<SocketAddr, TransportError> {
        let range_len = usize::from(u16::MAX - EPHEMERAL_START) + 1;
        for _ in 0..range_len {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == u16::MAX { EPHEMERAL_START } else { port + 1 };
            let candidate = SocketAddr::new(addr.ip(), port);
            if !self.bound.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free ephemeral port on {}", addr.ip()),
        )
        .into())
    }
}

impl fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        let mut bound: Vec<_> = state.bound.keys().collect();
        bound.sort();
        f.debug_struct("MemoryHub")
            .field("bound", &bound)
            .field("default_link", &state.default_link)
            .field("links", &state.links.len())
            .field("partitions", &state.partitions.len())
            .finish_non_exhaustive()
    }
}

/// An address pair in a fixed order, so `(a, b)` and `(b, a)` name the same partition.
fn unordered(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}
