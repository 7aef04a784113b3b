//! [`OverlayBuilder`]: the settings of an [`OverlayFleet`].

use std::{sync::Arc, time::Duration};

use fleetmesh::{
    overlay::{MasterConfig, OverlayConfig},
    trust::Authority,
    Timestamp,
};

use super::{host::Tune, OverlayFleet};
use crate::seeds;

/// Configures an [`OverlayFleet`]. Made by [`OverlayFleet::builder`].
#[derive(Clone)]
pub struct OverlayBuilder {
    pub(crate) seed: u64,
    pub(crate) duration: Duration,
    pub(crate) start: Timestamp,
    pub(crate) lan: Duration,
    pub(crate) wan: Duration,
    pub(crate) tick: Option<Duration>,
    pub(crate) tune: Tune,
    pub(crate) master: MasterConfig,
    pub(crate) tcp_fallback: Option<Duration>,
    pub(crate) ipv6: bool,
    pub(crate) loss: f64,
    pub(crate) burst_loss: f64,
}

impl std::fmt::Debug for OverlayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlayBuilder")
            .field("seed", &self.seed)
            .field("duration", &self.duration)
            .field("start", &self.start)
            .field("lan", &self.lan)
            .field("wan", &self.wan)
            .field("tick", &self.tick)
            .field("master", &self.master)
            .field("loss", &self.loss)
            .field("burst_loss", &self.burst_loss)
            .finish_non_exhaustive()
    }
}

impl OverlayBuilder {
    pub(crate) fn new(seed: u64) -> Self {
        OverlayBuilder {
            seed,
            duration: Duration::from_secs(3600),
            start: Timestamp::from_secs(1_700_000_000),
            lan: Duration::from_millis(1),
            wan: Duration::from_millis(20),
            tick: None,
            tune: Arc::new(|c| c),
            master: MasterConfig::default(),
            tcp_fallback: None,
            ipv6: false,
            loss: 0.0,
            burst_loss: 0.0,
        }
    }

    /// The longest the simulation may run. Default one hour of simulated time.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Protocol time at the start of the run (certificates are issued at this time).
    pub fn start(mut self, t: Timestamp) -> Self {
        self.start = t;
        self
    }

    /// Latency (fixed, each way) between two hosts of one subnet. Default 1 ms.
    pub fn lan_latency(mut self, d: Duration) -> Self {
        self.lan = d;
        self
    }

    /// Latency (fixed, each way) between subnets and to the master. Default 20 ms.
    pub fn wan_latency(mut self, d: Duration) -> Self {
        self.wan = d;
        self
    }

    /// Simulated time per simulation step (turmoil's tick). Default turmoil's 1 ms; a longer
    /// tick runs faster but rounds every latency and timer up to it.
    pub fn tick(mut self, d: Duration) -> Self {
        self.tick = Some(d);
        self
    }

    /// Adjusts every node's [`OverlayConfig`] (timers) before it starts. Default: the
    /// configuration's own defaults.
    pub fn overlay_config(
        mut self,
        tune: impl Fn(OverlayConfig) -> OverlayConfig + Send + Sync + 'static,
    ) -> Self {
        self.tune = Arc::new(tune);
        self
    }

    /// Every host also listens on TCP (same port) and falls back to it when a handshake over
    /// UDP has no answer for `after` ([`EndpointConfig::tcp_fallback`]). Default: UDP only.
    ///
    /// [`EndpointConfig::tcp_fallback`]: fleetmesh::EndpointConfig::tcp_fallback
    pub fn tcp_fallback(mut self, after: Duration) -> Self {
        self.tcp_fallback = Some(after);
        self
    }

    /// An IPv6-only fleet: the master is [`MASTER_HOST_V6`](crate::MASTER_HOST_V6), node `i`
    /// of subnet `s` is `fd00:s::i` (hexadecimal), local networks are /64s, and every socket
    /// binds `[::]`. Default IPv4.
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Independent per-datagram loss: every UDP datagram any host sends (LAN and WAN, the
    /// master's too) is dropped with probability `p`, on its own, drawn from an RNG seeded
    /// from the fleet's seed and the host, so the same seed drops the same datagrams. TCP
    /// (with [`tcp_fallback`](Self::tcp_fallback)) is reliable and never dropped. Change it
    /// while running with [`OverlayFleet::set_loss`]. Default 0.
    ///
    /// ```
    /// # use fleetmesh_testkit::OverlayFleet;
    /// let fleet = OverlayFleet::builder(7).loss(0.2).build();
    /// assert_eq!(fleet.loss(), 0.2);
    /// ```
    pub fn loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Burst loss, turmoil's link failure model (its *fail rate*): each datagram sent fails
    /// its link with probability `p`, and a failed link drops that datagram **and every
    /// datagram in flight on the link, both ways**; the link works again from the next one
    /// sent. Losses therefore come in bursts, and more so on busy links. For independent loss
    /// use [`loss`](Self::loss). Change it while running with
    /// [`OverlayFleet::set_burst_loss`]. Default 0.
    ///
    /// ```
    /// # use fleetmesh_testkit::OverlayFleet;
    /// let fleet = OverlayFleet::builder(7).burst_loss(0.05).build();
    /// ```
    pub fn burst_loss(mut self, p: f64) -> Self {
        self.burst_loss = p;
        self
    }

    /// The master's configuration. Default [`MasterConfig::default`].
    pub fn master_config(mut self, config: MasterConfig) -> Self {
        self.master = config;
        self
    }

    /// Builds the fleet: a simulation, an authority derived from the seed, and the master host.
    pub fn build(self) -> OverlayFleet<'static> {
        let mut builder = turmoil::Builder::new();
        builder.rng_seed(self.seed).simulation_duration(self.duration);
        // Real sockets buffer far more than turmoil's default of 64 datagrams; the master
        // must not drop a burst of registrations as if it were overloaded.
        builder.udp_capacity(4096);
        if self.burst_loss > 0.0 {
            builder.fail_rate(self.burst_loss);
        }
        if self.ipv6 {
            builder.ip_version(turmoil::IpVersion::V6);
        }
        if let Some(tick) = self.tick {
            builder.tick_duration(tick);
        }
        let authority = Authority::new(seeds::identity(self.seed, 0));
        OverlayFleet::new(builder.build(), authority, self)
    }
}
