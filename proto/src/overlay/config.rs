use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

/// The local network a node is on, as it sees it: the key (with the public address the master
/// observes) of its subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalNetwork {
    /// The node's own address on that network.
    pub addr: IpAddr,
    /// The network's prefix length.
    pub prefix_len: u8,
}

impl LocalNetwork {
    /// Whether `ip` is on this network (same family, same prefix; an IPv4-mapped IPv6
    /// address counts as IPv4, as a dual-stack socket reports one).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let (ours, ip) = (self.addr.to_canonical(), ip.to_canonical());
        let mask = |a| super::subnet::masked(a, self.prefix_len);
        ours.is_ipv4() == ip.is_ipv4() && mask(ours) == mask(ip)
    }
}

/// How a [`Node`](super::Node) behaves. Defaults meet the project's targets (LSN failover
/// ≤ 1 s median, ≤ 50 messages per second at an LSN of 50 children, ≤ 500 non-local bytes per
/// node per hour); tests shorten them.
#[derive(Clone, Debug)]
pub struct OverlayConfig {
    /// The master's address.
    pub master: SocketAddr,
    /// Where subnet peers reach this node (its listening address).
    pub listen: SocketAddr,
    /// The node's local network.
    pub local: LocalNetwork,
    /// LSN → child ping period. Default 45 s: 49 children cost the LSN ~2.2 messages per
    /// second (LAN only), and a child that dies silently is reported lost within about 57 s
    /// (this period plus the quick re-pings below), inside issue 19's minute; one that shuts
    /// down says so at once. The standby's
    /// heartbeat, not these pings, carries failover, so a longer period costs no failover
    /// time; it halves the wake-ups of an idle child (a laptop on battery) and the LSN's
    /// upkeep. Keep `lsn_silence` above it, or children probe their LSN between its pings.
    pub child_ping_interval: Duration,
    /// Unanswered pings before the LSN reports a child lost; after a miss the LSN re-pings
    /// every `probe_timeout`. Default 12: at 20 % loss each way a ping round trip fails 36 % of
    /// the time, eight in a row 3·10⁻⁴ (a live child parted about every 4,000 pings: several
    /// times a day in a lossy subnet of 50), twelve 5·10⁻⁶. Costs 4 s more to notice a dead
    /// child than 8 did.
    pub child_missed_pings: u32,
    /// A child that hears nothing from its LSN this long probes it: the fallback when the
    /// standby could not announce a takeover. Default 90 s (the LSN's pings arrive every
    /// 60 s, so one lost ping does not start a probe).
    pub lsn_silence: Duration,
    /// How long a probe (a ping expecting a pong) waits. Default 1 s.
    pub probe_timeout: Duration,
    /// Unanswered re-probes before the peer is declared dead. Default 4.
    pub probe_retries: u32,
    /// LSN → hot standby heartbeat period (one-way: the standbys do not answer, so it costs
    /// the LSN one message per period for each of its two hot standbys). Default 1 s: with suspicion after a single missed
    /// heartbeat (below), a crash is suspected 0.1–1.1 s after it happens, 0.6 s on average:
    /// sooner than the 300 ms period did with two missed beats (0.4–0.7 s, 0.55 s), at a third
    /// of the messages.
    pub standby_heartbeat: Duration,
    /// After this much silence (one missed heartbeat and the next 100 ms late) the standby
    /// suspects the LSN is dead. A single lost heartbeat is enough to suspect: the quick
    /// confirming pings below make a false suspicion cheap (one ping, one pong). Default
    /// 1.1 s.
    pub standby_dead_after: Duration,
    /// A suspecting standby confirms with this many quick pings, this far apart, before it
    /// takes over; any answer clears the suspicion. Default 10 × 12 ms (a LAN round trip takes
    /// a few milliseconds): 120 ms in all as the former 6 × 20 ms, so a crash costs no longer
    /// and a round trip of up to 120 ms still clears it.
    /// Every lost heartbeat starts a confirmation, so the count is what keeps a run of lost
    /// datagrams from passing for a death: at 20 % loss each way a round trip fails 36 % of the
    /// time, six in a row 0.2 % (with a heartbeat lost every five seconds, a live LSN taken
    /// over every twenty minutes per subnet: measured, it cost presence checks in a fifth of
    /// the 3-minute, 4-subnet loss runs), ten 3.7·10⁻⁵ (every 38 hours per subnet). Such a
    /// takeover is handed back within seconds (`node/rival.rs`), but its children notice.
    pub standby_confirm: (u32, Duration),
    /// How long other children wait for the standby's takeover before joining it themselves,
    /// at least: each adds a share, by its id, of 50 `takeover_pace` turns, since the
    /// announcements come one child at a time. Default 1 s.
    pub takeover_wait: Duration,
    /// Gap between two `Takeover` announcements of a new LSN to the children it adopted from
    /// the dead one (best-ranked first; a child that rejoins on its own takes a turn too). Each
    /// rejoin costs the new LSN about ten datagrams (takeover, handshake, join, ack, list),
    /// on top of its upkeep (heartbeats, pings: ~3 per second for 50 children): 400 ms means
    /// two or three rejoins in a second, under the 50 messages per second target with room
    /// for children that rejoin on their own. The master
    /// counts the adopted children present at once; only their own rejoin takes longer (49
    /// children: up to ~20 s). Default 400 ms.
    pub takeover_pace: Duration,
    /// LSN → master keepalive period until a longer one is proven safe: short enough for the
    /// NATs that drop idle UDP mappings soonest (WireGuard's choice too). Default 25 s.
    /// Keepalives are one-way; see `overlay/node/keepalive.rs`.
    pub master_keepalive: Duration,
    /// The longest keepalive period an LSN moves to once an echo from the master showed that
    /// its NAT mapping outlives that much silence. Default 45 s: well inside the two minutes
    /// RFC 4787 asks NATs to keep idle mappings, and short enough that the master, pinging an
    /// LSN this late by 2 s (`overlay/master/overdue.rs`), finds a vanished one absent within
    /// 55 s.
    /// `max_keepalive ≤ master_keepalive` disables the test.
    pub max_keepalive: Duration,
    /// How long after a failed echo test the LSN tries again (a NAT rarely changes; a move
    /// to another network starts afresh). Default 1 h.
    pub keepalive_retest: Duration,
    /// Period of the LSN's liveness check of the master (a Ping it answers, retried quickly
    /// when the Pong is missing), sent instead of the first keepalive due after it and skipped
    /// while anything else from the master proves it alive: how soon an LSN notices a master
    /// that lost its state, or that UDP to the master stopped working, and acts. Default
    /// 120 s: inside the session idle timeout (180 s) even at the first keepalive after it,
    /// and a Pong every 135 s instead of every 90 s saves the standard day's presence about
    /// 33 bytes per node-hour. A durable master tells its LSNs at once when it restarts
    /// (`LSNS_TABLE`), so this only bounds how soon they notice one that kept nothing.
    pub master_check: Duration,
    /// How long a Join (after the secure session is up) waits for its answer. Default 2 s.
    pub join_timeout: Duration,
    /// How long an LSN waits before sending a batch of presence changes. Default 50 ms.
    pub update_batch: Duration,
    /// How long an LSN waits for the master's Ack before resending an update; the first three
    /// waits are this long, later ones double, to eight times this. Default 500 ms: at 20 %
    /// loss each way a third of the updates need a resend, and a child waits that long to show
    /// up under its new LSN (1 s doubling from the first resend left 4 % of a 1,000-seed
    /// two-crash sweep past 5 s; with 500 ms, and Joins that go twice once one was lost,
    /// 0.7 %), while a master that answers slowly, as after its restart, gets a resend every
    /// 4 s.
    pub update_retransmit: Duration,
    /// How often an LSN sends its child-set digest even without changes. Default 10 min.
    pub digest_interval: Duration,
    /// Shortest gap between two neighbour-list pushes to the standby candidates: short, since
    /// a standby can only announce a takeover to the children it has heard of. Default 200 ms.
    pub neighbour_batch: Duration,
    /// Backoff ceiling for retrying the master or LSN discovery. Default 30 s.
    pub max_backoff: Duration,
    /// The DHT's parameters (k, α, timeouts, record limits).
    pub dht: crate::dht::DhtConfig,
    /// Reach (issue 16, `overlay/node/introduce.rs`): a dial to a peer that got no answer
    /// this long is helped by an introduction from the master (hole punching). `None`: never.
    /// Default 500 ms, the value measured in `sim::reach`: one handshake retransmission
    /// period, well beyond any WAN round trip, and early enough for the punched session to
    /// answer a DHT request (2 s).
    pub introduce_after: Option<Duration>,
    /// Whether the node learns its NAT class once joined (`overlay/node/nat.rs`). Default
    /// `true`.
    pub nat_check: bool,
    /// Whether a child checks its NAT itself rather than taking its LSN's class (the hosts
    /// of one LAN share its NAT; `overlay/node/nat.rs`). A check costs a child about 3 KB of
    /// WAN (sessions with the master and a helper); set it on a host with a way out of its
    /// own (a port forward, its own uplink). Default `false`.
    pub nat_check_as_child: bool,
    /// Whether this node may serve as a GSN (relay for other members) when the master finds
    /// it takes unsolicited inbound (`overlay/node/gsn.rs`). Default `true`.
    pub gsn: bool,
    /// What this node lets through while it serves as a GSN.
    pub relay_limits: RelayLimits,
    /// The chunk size of our bulk transfers (`overlay/node/bulk/`). Default 1,100 bytes: a
    /// chunk with its headers, relayed through a GSN inside a second session, still fits
    /// IPv6's minimum MTU (1,280), so no path fragments it. At most
    /// [`MAX_BULK_CHUNK`](crate::overlay::node::MAX_BULK_CHUNK) (larger is taken as that).
    pub bulk_chunk: u32,
    /// The largest bulk transfer we accept from a peer; 0 refuses them all. Default 64 MiB.
    pub bulk_max: u64,
}

/// What a GSN lets through (`overlay/node/gsn.rs`): a token bucket per circuit (an ordered
/// pair of members) and one per sending member across all its circuits, so that a member
/// cannot take the GSN's whole uplink by opening many circuits, and every member keeps its
/// share. A datagram beyond either bucket is dropped, as a full link drops it: the end-to-end
/// session retransmits, and no queue grows. No circuit has a limit on its time or its total
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Sustained bytes per second per circuit. Default 1 MiB/s: far above control traffic
    /// (a few KB/s), a modest bulk flow.
    pub circuit_rate: u64,
    /// Burst per circuit, bytes. Default 256 KiB.
    pub circuit_burst: u64,
    /// Sustained bytes per second one member may send through us, all its circuits
    /// together. Default 4 MiB/s.
    pub member_rate: u64,
    /// Burst per member, bytes. Default 1 MiB.
    pub member_burst: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            circuit_rate: 1024 * 1024,
            circuit_burst: 256 * 1024,
            member_rate: 4 * 1024 * 1024,
            member_burst: 1024 * 1024,
        }
    }
}

impl OverlayConfig {
    /// Defaults for a node listening on `listen`, with the master at `master`. The local
    /// network defaults to the listening address in a /24 (IPv4) or /64 (IPv6).
    pub fn new(master: SocketAddr, listen: SocketAddr) -> Self {
        let prefix_len = if listen.is_ipv4() { 24 } else { 64 };
        OverlayConfig {
            master,
            listen,
            local: LocalNetwork { addr: listen.ip(), prefix_len },
            child_ping_interval: Duration::from_secs(45),
            child_missed_pings: 12,
            lsn_silence: Duration::from_secs(90),
            probe_timeout: Duration::from_secs(1),
            probe_retries: 4,
            standby_heartbeat: Duration::from_millis(1000),
            standby_dead_after: Duration::from_millis(1100),
            standby_confirm: (10, Duration::from_millis(12)),
            takeover_wait: Duration::from_secs(1),
            takeover_pace: Duration::from_millis(400),
            master_keepalive: Duration::from_secs(25),
            max_keepalive: Duration::from_secs(45),
            keepalive_retest: Duration::from_secs(3600),
            master_check: Duration::from_secs(120),
            join_timeout: Duration::from_secs(2),
            update_batch: Duration::from_millis(50),
            update_retransmit: Duration::from_millis(500),
            digest_interval: Duration::from_secs(600),
            neighbour_batch: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            dht: crate::dht::DhtConfig::default(),
            introduce_after: Some(Duration::from_millis(500)),
            nat_check: true,
            nat_check_as_child: false,
            gsn: true,
            relay_limits: RelayLimits::default(),
            bulk_chunk: 1_100,
            bulk_max: 64 * 1024 * 1024,
        }
    }

    /// Sets the local network (e.g. from the interface's address and mask).
    ///
    /// ```
    /// # use fleetmesh_proto::overlay::{LocalNetwork, OverlayConfig};
    /// let config = OverlayConfig::new("192.0.2.1:4000".parse().unwrap(), "10.1.2.3:4000".parse().unwrap())
    ///     .local(LocalNetwork { addr: "10.1.2.3".parse().unwrap(), prefix_len: 16 });
    /// assert_eq!(config.local.prefix_len, 16);
    /// ```
    pub fn local(mut self, local: LocalNetwork) -> Self {
        self.local = local;
        self
    }
}

/// How the [`Master`](super::Master) behaves.
#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// An LSN silent this long (no keepalive, no update) is lost, whatever pings say: the
    /// backstop. Default 150 s. An LSN late with its keepalive is pinged and lost much sooner
    /// if it does not answer (`overlay/master/overdue.rs`: within 55 s with the default
    /// keepalive period); this bound holds when the master doubts its own reach
    /// (`isolation.rs`) and no LSN is declared lost on silence alone. An LSN that announces a
    /// longer period is allowed two and a half of its own periods.
    pub lsn_timeout: Duration,
    /// Children of a lost LSN, and nodes reported moved, stay pending this long before they
    /// are reported parted. Longer than a child's own fallback (silence, probes, rejoin: about
    /// 51 s), so children the standby did not know are not reported lost. Default 75 s.
    pub grace: Duration,
    /// A node told to become its subnet's LSN is named to other queriers of that subnet for
    /// this long, so simultaneous starters do not all become LSNs. Default 10 s.
    pub designate_ttl: Duration,
    /// How long a subnet's LSN election stays open when no candidate has proven yet that
    /// unsolicited UDP reaches it (see `overlay/master/election.rs`): a proof ends it at once;
    /// without one the best available candidate is designated when it closes. `ZERO`
    /// designates the first querier at once, without probes. Default 500 ms: a probe costs one
    /// round trip to the master and a LAN hop.
    pub reach_probe_wait: Duration,
    /// How long an application message may take to be acknowledged. Default 10 s.
    pub delivery_timeout: Duration,
    /// A node that asks again within this window, after being told the subnet's LSNs, could
    /// not reach them: it is told to become an LSN itself (two LSNs then settle:
    /// the one registered first stays).
    /// Default 60 s.
    pub requery_window: Duration,
    /// The DHT's parameters: the master takes part as a bootstrap node every node meets.
    pub dht: crate::dht::DhtConfig,
    /// The longest keepalive period LSNs use ([`OverlayConfig::max_keepalive`]): with it
    /// the master tells a silence of all its LSNs that chance does not explain, and reports
    /// itself isolated (`overlay/master/isolation.rs`), and expects a keepalive from an LSN that
    /// has not announced its period yet (`overlay/master/overdue.rs`). Default 45 s.
    pub lsn_keepalive_max: Duration,
}

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            lsn_timeout: Duration::from_secs(150),
            grace: Duration::from_secs(75),
            designate_ttl: Duration::from_secs(10),
            reach_probe_wait: Duration::from_millis(500),
            delivery_timeout: Duration::from_secs(10),
            requery_window: Duration::from_secs(60),
            dht: crate::dht::DhtConfig::default(),
            lsn_keepalive_max: Duration::from_secs(45),
        }
    }
}
