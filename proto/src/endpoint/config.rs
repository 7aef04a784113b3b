use std::{fmt, time::Duration};

use crate::{
    trust::{Authority, Certificate, EnrollmentPolicy, NetworkKey, TrustStore},
    Identity,
};

/// The default [`EndpointConfig::punch_ttl`]: one router passed (it decrements to 1 and
/// forwards), dropped at the next hop.
pub const DEFAULT_PUNCH_TTL: u8 = 2;

/// How an [`Endpoint`](super::Endpoint) behaves. Plain data with defaults; `new` takes what has
/// no sensible default.
pub struct EndpointConfig {
    pub(crate) identity: Identity,
    pub(crate) trust: TrustStore,
    pub(crate) certificate: Option<Certificate>,
    pub(crate) enroll_token: Option<String>,
    pub(crate) enrollment: Option<(Authority, Box<dyn EnrollmentPolicy>)>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) handshake_rto: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_queued: usize,
    pub(crate) max_accepting: usize,
    pub(crate) handshake_per_source: super::RateLimit,
    pub(crate) handshake_per_prefix: super::RateLimit,
    pub(crate) unvalidated_handshakes: super::RateLimit,
    pub(crate) tcp_fallback: Option<Duration>,
    pub(crate) udp_probe_interval: Duration,
    pub(crate) punch_ttl: Option<u8>,
}

impl EndpointConfig {
    /// A node with `identity` in the network named by `network`. Without a
    /// [`certificate`](Self::certificate) it must enroll with the master before it can open
    /// sessions with anyone else.
    pub fn new(identity: Identity, network: NetworkKey) -> Self {
        EndpointConfig {
            identity,
            trust: TrustStore::new(network),
            certificate: None,
            enroll_token: None,
            enrollment: None,
            handshake_timeout: Duration::from_secs(10),
            handshake_rto: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(180),
            max_queued: 64,
            max_accepting: 4096,
            handshake_per_source: super::DEFAULT_PER_SOURCE,
            handshake_per_prefix: super::DEFAULT_PER_PREFIX,
            unvalidated_handshakes: super::DEFAULT_UNVALIDATED,
            tcp_fallback: None,
            udp_probe_interval: Duration::from_secs(30),
            punch_ttl: Some(DEFAULT_PUNCH_TTL),
        }
    }

    /// The master's configuration: its identity is the `authority`'s, it holds a certificate
    /// the authority issues it, and it answers enrollment requests with `policy`.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::{Authority, OpenEnrollment}, Identity, Timestamp};
    /// # use rand_core::SeedableRng;
    /// let identity = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(7));
    /// let config = EndpointConfig::master(Authority::new(identity), OpenEnrollment::default(), Timestamp::from_secs(1_700_000_000));
    /// ```
    pub fn master(
        mut authority: Authority,
        policy: impl EnrollmentPolicy + 'static,
        now: crate::Timestamp,
    ) -> Self {
        let cert = authority.master_certificate(now, Duration::from_secs(10 * 365 * 86_400));
        let mut config = Self::new(authority.identity().clone(), authority.network_key());
        config.certificate = Some(cert);
        config.enrollment = Some((authority, Box::new(policy)));
        config
    }

    /// The node's admission certificate.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::*, Identity, Timestamp};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let mut master = Authority::new(Identity::generate(&mut rng));
    /// let node = Identity::generate(&mut rng);
    /// let now = Timestamp::from_secs(1_700_000_000);
    /// let cert = master.issue(&node.verifying_key(), node.x25519_public(), CertFlags::NONE, now, std::time::Duration::from_secs(86_400));
    /// let config = EndpointConfig::new(node, master.network_key()).certificate(cert);
    /// ```
    pub fn certificate(mut self, certificate: Certificate) -> Self {
        self.certificate = Some(certificate);
        self
    }

    /// The one-time token to present when enrolling.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network).enroll_token("install-42");
    /// ```
    pub fn enroll_token(mut self, token: impl Into<String>) -> Self {
        self.enroll_token = Some(token.into());
        self
    }

    /// How long a handshake may take, retransmissions included, before it fails. Default 10 s.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .handshake_timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// First handshake retransmission delay; doubles on each retry. Default 500 ms.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .handshake_rto(std::time::Duration::from_millis(200));
    /// ```
    pub fn handshake_rto(mut self, rto: Duration) -> Self {
        self.handshake_rto = rto.max(Duration::from_millis(1));
        self
    }

    /// The IP time-to-live of the NAT opener (a one-byte packet) sent in place of the first
    /// copy of message 1 when we punch ahead of the peer
    /// ([`Endpoint::punch_ahead`](super::Endpoint::punch_ahead)); `None` sends message 1
    /// like any other. Default [`DEFAULT_PUNCH_TTL`]: enough to pass a home router, too
    /// little to reach the peer's. The opener opens our NAT towards the peer without arriving early at the
    /// peer's NAT: a Linux router (conntrack) that sees a packet from us before its host has
    /// sent to us keeps that entry for 30 s, and the host's own packet towards us then leaves
    /// from another public port, which our NAT does not let in. The retransmission, after
    /// [`handshake_rto`](Self::handshake_rto), goes with the full TTL. Behind a carrier-grade
    /// NAT further away, set the hops to the outermost NAT plus one.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network).punch_ttl(Some(4));
    /// ```
    pub fn punch_ttl(mut self, ttl: Option<u8>) -> Self {
        self.punch_ttl = ttl.filter(|t| *t > 0);
        self
    }

    /// A session that receives nothing for this long is closed. Default 180 s; the overlay's
    /// keepalives run well inside it.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .idle_timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Messages queued per address while its handshake runs; beyond this, sends fail with
    /// [`SendError::QueueFull`](super::SendError::QueueFull). Default 64.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network).max_queued(16);
    /// ```
    pub fn max_queued(mut self, n: usize) -> Self {
        self.max_queued = n;
        self
    }

    /// Responder handshakes held at once (half-open state costs memory, so it is bounded);
    /// further first messages are dropped until some complete or expire. Default 4096.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network).max_accepting(256);
    /// ```
    pub fn max_accepting(mut self, n: usize) -> Self {
        self.max_accepting = n;
        self
    }

    /// Handshake rate limits per source IP and per source /24 (IPv4) or /48 (IPv6), applied
    /// while the responder is under load: a quarter of [`max_accepting`](Self::max_accepting)
    /// half-open. A message 1 over a limit is dropped unanswered. Defaults
    /// [`DEFAULT_PER_SOURCE`](super::DEFAULT_PER_SOURCE) and
    /// [`DEFAULT_PER_PREFIX`](super::DEFAULT_PER_PREFIX).
    pub fn handshake_rate_limits(
        mut self,
        per_source: super::RateLimit,
        per_prefix: super::RateLimit,
    ) -> Self {
        self.handshake_per_source = per_source;
        self.handshake_per_prefix = per_prefix;
        self
    }

    /// Messages 1 answered in all, per second, before the source proved its address with a
    /// cookie; beyond this (or once a quarter of [`max_accepting`](Self::max_accepting) is
    /// half-open) a message 1 without a valid cookie gets a 21-byte cookie reply and no
    /// public-key work. Default [`DEFAULT_UNVALIDATED`](super::DEFAULT_UNVALIDATED).
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::{EndpointConfig, RateLimit}, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .unvalidated_handshakes(RateLimit { per_sec: 64, burst: 128 });
    /// ```
    pub fn unvalidated_handshakes(mut self, limit: super::RateLimit) -> Self {
        self.unvalidated_handshakes = limit;
        self
    }

    /// When a handshake we open over UDP has had no answer for this long, it is retried over
    /// TCP to the same address (see [`Path`](crate::Path)); `None` never falls back. Default
    /// `None`: enable it when the driver runs both a UDP and a TCP transport (the
    /// `fleetmesh` crate's `DualTransport`).
    /// Sessions on TCP keep probing UDP every [`udp_probe_interval`](Self::udp_probe_interval)
    /// and move back once it works both ways.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .tcp_fallback(Some(std::time::Duration::from_secs(1)));
    /// ```
    pub fn tcp_fallback(mut self, after: Option<Duration>) -> Self {
        self.tcp_fallback = after;
        self
    }

    /// How often a session that fell back to TCP probes UDP. Default 30 s.
    ///
    /// ```
    /// # use fleetmesh_proto::{endpoint::EndpointConfig, trust::Authority, Identity};
    /// # use rand_core::SeedableRng;
    /// # let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    /// # let network = Authority::new(Identity::generate(&mut rng)).network_key();
    /// let config = EndpointConfig::new(Identity::generate(&mut rng), network)
    ///     .udp_probe_interval(std::time::Duration::from_secs(10));
    /// ```
    pub fn udp_probe_interval(mut self, every: Duration) -> Self {
        self.udp_probe_interval = every.max(Duration::from_millis(1));
        self
    }

    /// The node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("identity", &self.identity)
            .field("network", self.trust.network())
            .field("has_certificate", &self.certificate.is_some())
            .field("accepts_enrollment", &self.enrollment.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("punch_ttl", &self.punch_ttl)
            .finish_non_exhaustive()
    }
}
