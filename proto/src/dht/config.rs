//! [`DhtConfig`]: the Kademlia parameters, with defaults from the paper and deployed DHTs.

use std::time::Duration;

/// Bucket size and lookup result size. Kademlia paper (Maymounkov and Mazières, 2002) §2.2:
/// "k is chosen such that any given k nodes are very unlikely to fail within an hour of each
/// other (for example k = 20)". DESIGN.md fixes k = 20.
pub const DEFAULT_K: usize = 20;

/// Lookup concurrency. Kademlia paper §2.3: "α is a system-wide concurrency parameter, such as
/// 3". DESIGN.md fixes α = 3.
pub const DEFAULT_ALPHA: usize = 3;

/// How long one DHT request may go unanswered before it counts as failed. Not from the paper
/// (which leaves it open): 2 s is ten times the 100–200 ms median lookup time measured on the
/// tuned BitTorrent DHT (DESIGN.md), so a live peer practically never times out while a dead
/// one costs a lookup little, because α − 1 other requests keep it moving meanwhile.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A bucket that saw no lookup for this long is refreshed. Kademlia paper §2.3: "each node
/// refreshes any bucket to which it has not performed a node lookup in the past hour".
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

/// A contact heard from within this window counts as alive: a full bucket whose least recently
/// seen contact was heard from this recently keeps it without pinging it, and drops the
/// newcomer. BitTorrent's DHT (BEP 5) uses the same 15 minutes: "a good node is a node has
/// responded to one of our queries within the last 15 minutes", or sent us one. Any `Kad*`
/// message on an authenticated session counts, so traffic that flows anyway (lookups, answers,
/// stores) proves liveness and the ping, with the handshake it may need, is saved.
pub const DEFAULT_LIVENESS_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A node that holds a record re-stores it at the k closest nodes this often. Kademlia paper
/// §2.3: every node republishes the pairs it holds once an hour; the optimisation of §2.5
/// skips a pair that another node stored here within the hour, and [`RecordStore`] does too.
///
/// [`RecordStore`]: super::RecordStore
pub const DEFAULT_REPUBLISH_INTERVAL: Duration = Duration::from_secs(3600);

/// A record lives at most this long after it was last stored, unless its publisher renews it.
/// Kademlia paper §2.3: pairs expire 24 hours after publication unless the original publisher
/// republishes them.
pub const DEFAULT_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// Largest record value accepted. BitTorrent's BEP 44 (arbitrary data in the DHT) caps values
/// at 1000 bytes; we allow 4 KiB so a contact record with several IPv6 addresses and relay
/// hints fits, while a record still fits a single datagram with room to spare.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 4096;

/// Records one publisher may keep at this node. Bounds what a single misbehaving (but admitted)
/// node can make every other node store: 64 × 4 KiB = 256 KiB per publisher.
pub const DEFAULT_MAX_RECORDS_PER_PUBLISHER: usize = 64;

/// Records this node holds in total (all publishers): 16,384 × 4 KiB = 64 MiB at most.
pub const DEFAULT_MAX_RECORDS: usize = 16_384;

/// Contacts from one subnet (IPv4 /24, IPv6 /64) one bucket may hold. BitTorrent practice
/// (libtorrent restricts routing-table entries whose addresses are close in CIDR terms; BEP 42
/// ties DHT ids to address prefixes) against Sybil and eclipse attacks: addresses in one subnet
/// are cheap to get, so one operator must not fill a bucket. Private, loopback and link-local
/// addresses are exempt (see [`routing`](super::routing)).
pub const DEFAULT_MAX_PER_SUBNET: usize = 2;

/// How long a record cached at the closest node that lacked it (a find_value side effect) is
/// kept. Kademlia paper §2.3 makes the cache lifetime "exponentially inversely proportional to
/// the number of nodes between the current node and the node whose ID is closest to the key";
/// we use one short fixed lifetime instead, so a cached copy can be at most this stale.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);

/// How long a session that carried a DHT message stays open while silent
/// ([`DhtConfig::session_linger`]): the republish interval, so a neighbourhood's hourly
/// republishes and refreshes reuse the sessions of the hour before.
pub const DEFAULT_SESSION_LINGER: Duration = Duration::from_secs(3600);

/// How many silent DHT sessions a node keeps open at once ([`DhtConfig::max_lingering`]),
/// about 1 KB of memory each.
pub const DEFAULT_MAX_LINGERING: usize = 64;

/// Whether a node serves the DHT (answers, holds records, appears in routing tables) or only
/// uses it (a client, as libp2p's Kademlia client mode after AutoNAT).
///
/// A server must take unsolicited inbound: any node that learns it from a routing table
/// dials it cold. A node behind a NAT that filters cannot, so every contact with it costs an
/// introduction by the master and hole punching, and behind a Linux NAT an early datagram
/// spoils the punch for 30 s. Measured in the simulator's day (BENCHMARKS.md, "The DHT"),
/// handshakes and introductions were most of a node's WAN bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DhtMode {
    /// Serve only when the node's NAT check finds no NAT and inbound not filtered; a client
    /// until then. With NAT checks switched off nothing is known, and the node serves (as
    /// before client mode).
    #[default]
    Auto,
    /// Always serve (a node known to be reachable, or a closed network without NATs).
    Server,
    /// Never serve: queries and puts only.
    Client,
}

/// Kademlia parameters. Plain data: start from [`Default`] and change what you need.
///
/// ```
/// use fleetmesh_proto::dht::DhtConfig;
/// use std::time::Duration;
///
/// let config = DhtConfig::default().k(8).request_timeout(Duration::from_millis(500));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtConfig {
    pub(crate) k: usize,
    pub(crate) alpha: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) liveness_window: Duration,
    pub(crate) republish_interval: Duration,
    pub(crate) record_ttl: Duration,
    pub(crate) max_record_size: usize,
    pub(crate) max_records_per_publisher: usize,
    pub(crate) max_records: usize,
    pub(crate) max_per_subnet: usize,
    pub(crate) cache_ttl: Duration,
    pub(crate) enabled: bool,
    pub(crate) join_transfer: bool,
    pub(crate) mode: DhtMode,
    pub(crate) session_linger: Duration,
    pub(crate) max_lingering: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            k: DEFAULT_K,
            alpha: DEFAULT_ALPHA,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            liveness_window: DEFAULT_LIVENESS_WINDOW,
            republish_interval: DEFAULT_REPUBLISH_INTERVAL,
            record_ttl: DEFAULT_RECORD_TTL,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            max_records_per_publisher: DEFAULT_MAX_RECORDS_PER_PUBLISHER,
            max_records: DEFAULT_MAX_RECORDS,
            max_per_subnet: DEFAULT_MAX_PER_SUBNET,
            cache_ttl: DEFAULT_CACHE_TTL,
            enabled: true,
            join_transfer: false,
            mode: DhtMode::Auto,
            session_linger: DEFAULT_SESSION_LINGER,
            max_lingering: DEFAULT_MAX_LINGERING,
        }
    }
}

impl DhtConfig {
    /// Bucket size and number of closest nodes a lookup returns (at least 1). Default
    /// [`DEFAULT_K`] = 20.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().k(8);
    /// ```
    pub fn k(mut self, k: usize) -> Self {
        self.k = k.max(1);
        self
    }

    /// Requests a lookup keeps in flight (at least 1). Default [`DEFAULT_ALPHA`] = 3.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().alpha(5);
    /// ```
    pub fn alpha(mut self, alpha: usize) -> Self {
        self.alpha = alpha.max(1);
        self
    }

    /// How long a request (lookup step or liveness ping) may go unanswered. Default
    /// [`DEFAULT_REQUEST_TIMEOUT`] = 2 s.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().request_timeout(std::time::Duration::from_millis(800));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// A bucket without a lookup for this long is refreshed. Default
    /// [`DEFAULT_REFRESH_INTERVAL`] = 1 h.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().refresh_interval(std::time::Duration::from_secs(900));
    /// ```
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval.max(Duration::from_secs(1));
        self
    }

    /// How recently a contact must have been heard from to count as alive without a ping
    /// (see [`DEFAULT_LIVENESS_WINDOW`], the default). Zero pings every time.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().liveness_window(std::time::Duration::from_secs(300));
    /// ```
    pub fn liveness_window(mut self, window: Duration) -> Self {
        self.liveness_window = window;
        self
    }

    /// How often a held record is re-stored at the k closest nodes. Default
    /// [`DEFAULT_REPUBLISH_INTERVAL`] = 1 h.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().republish_interval(std::time::Duration::from_secs(1800));
    /// ```
    pub fn republish_interval(mut self, interval: Duration) -> Self {
        self.republish_interval = interval.max(Duration::from_secs(1));
        self
    }

    /// Longest a stored record lives without being stored again. Default
    /// [`DEFAULT_RECORD_TTL`] = 24 h.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().record_ttl(std::time::Duration::from_secs(6 * 3600));
    /// ```
    pub fn record_ttl(mut self, ttl: Duration) -> Self {
        self.record_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Largest record value accepted, in bytes. Default [`DEFAULT_MAX_RECORD_SIZE`] = 4096.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().max_record_size(1000);
    /// ```
    pub fn max_record_size(mut self, bytes: usize) -> Self {
        self.max_record_size = bytes;
        self
    }

    /// Records one publisher may keep at this node. Default
    /// [`DEFAULT_MAX_RECORDS_PER_PUBLISHER`] = 64.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().max_records_per_publisher(16);
    /// ```
    pub fn max_records_per_publisher(mut self, n: usize) -> Self {
        self.max_records_per_publisher = n;
        self
    }

    /// Records this node holds in total. Default [`DEFAULT_MAX_RECORDS`] = 16,384.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().max_records(1024);
    /// ```
    pub fn max_records(mut self, n: usize) -> Self {
        self.max_records = n;
        self
    }

    /// Contacts with public addresses in one subnet (IPv4 /24, IPv6 /64) one bucket may hold
    /// (at least 1; `usize::MAX` turns the limit off). Default [`DEFAULT_MAX_PER_SUBNET`] = 2.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().max_per_subnet(usize::MAX);
    /// ```
    pub fn max_per_subnet(mut self, n: usize) -> Self {
        self.max_per_subnet = n.max(1);
        self
    }

    /// Whether this node takes part in the DHT at all. A node that does not keeps no routing
    /// table, ignores DHT requests and answers its own queries with
    /// [`DhtError::NoPeers`](super::DhtError::NoPeers). Default `true`.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().enabled(false);
    /// assert!(!config.is_enabled());
    /// ```
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = on;
        self
    }

    /// Whether the DHT is on (see [`enabled`](Self::enabled)).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// How long a record cached as a find_value side effect is kept. Default
    /// [`DEFAULT_CACHE_TTL`] = 10 min.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().cache_ttl(std::time::Duration::from_secs(60));
    /// ```
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Whether held records are handed to a node that joins near them or asks a self-lookup
    /// after a restart (Kademlia's join transfer, `dht/service/transfer.rs`). Default `false`:
    /// in the 1,000-node simulation at 20 %/h churn it left the success rate unchanged and
    /// raised the upkeep (BENCHMARKS.md, "The DHT"), for reasons not yet traced.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().join_transfer(true);
    /// ```
    pub fn join_transfer(mut self, on: bool) -> Self {
        self.join_transfer = on;
        self
    }

    /// Whether this node serves the DHT or only uses it (see [`DhtMode`]). Default
    /// [`DhtMode::Auto`].
    ///
    /// ```
    /// # use fleetmesh_proto::dht::{DhtConfig, DhtMode};
    /// let config = DhtConfig::default().mode(DhtMode::Server);
    /// assert_eq!(config.get_mode(), DhtMode::Server);
    /// ```
    pub fn mode(mut self, mode: DhtMode) -> Self {
        self.mode = mode;
        self
    }

    /// How long a session that carried a DHT message stays open while silent, past the
    /// endpoint's idle timeout. Default [`DEFAULT_SESSION_LINGER`] = 1 h; zero keeps the idle
    /// timeout. A silent session sends nothing (no keepalives), and a fresh one costs a Noise
    /// handshake: across the WAN the handshakes of short DHT sessions were most of a node's
    /// bytes (BENCHMARKS.md, "The DHT"). Behind a NAT whose mapping expired meanwhile, our
    /// next request opens a new mapping and the session moves to it; the peer, a server, never
    /// sends to us first.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().session_linger(std::time::Duration::from_secs(600));
    /// ```
    pub fn session_linger(mut self, linger: Duration) -> Self {
        self.session_linger = linger;
        self
    }

    /// How many silent sessions [`session_linger`](Self::session_linger) keeps open at once
    /// (the most recently used; the others fall back to the idle timeout). Default
    /// [`DEFAULT_MAX_LINGERING`] = 64.
    ///
    /// ```
    /// # use fleetmesh_proto::dht::DhtConfig;
    /// let config = DhtConfig::default().max_lingering(16);
    /// ```
    pub fn max_lingering(mut self, n: usize) -> Self {
        self.max_lingering = n;
        self
    }

    /// The configured [`DhtMode`].
    pub fn get_mode(&self) -> DhtMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_paper() {
        let c = DhtConfig::default();
        assert_eq!((c.k, c.alpha), (20, 3));
        assert_eq!(c.refresh_interval, Duration::from_secs(3600));
        assert_eq!(c.republish_interval, Duration::from_secs(3600));
        assert_eq!(c.record_ttl, Duration::from_secs(86_400));
        assert!(c.cache_ttl < c.republish_interval);
    }

    #[test]
    fn setters_clamp_nonsense() {
        let c =
            DhtConfig::default().k(0).alpha(0).max_per_subnet(0).request_timeout(Duration::ZERO);
        assert_eq!((c.k, c.alpha, c.max_per_subnet), (1, 1, 1));
        assert!(c.request_timeout > Duration::ZERO);
        let c = DhtConfig::default().k(8).alpha(4).max_record_size(100);
        assert_eq!((c.k, c.alpha, c.max_record_size), (8, 4, 100));
    }
}
