//! The simulator's Linux `MASQUERADE` ([`NatKind::Linux`](super::NatKind::Linux)): a NAT that
//! tracks flows as Linux conntrack does, with the behaviour that decides hole punching
//! through it.
//!
//! * **Mapping.** A new flow (host, remote) takes the public port the host's latest flow has
//!   (so one port for every destination: endpoint-independent), else the host's own source
//!   port, as long as no other flow holds that port towards the same remote; otherwise a
//!   random one.
//! * **Filtering.** Only the flow's remote gets in (address and port dependent).
//! * **Early packets.** A datagram from a remote no flow expects is dropped and remembered as
//!   a flow of its own for [`UNREPLIED`], refreshed by each further one. While it lives, a
//!   host's new flow to that remote cannot take that port (the reply tuple is taken) and gets
//!   a random one, which the remote, expecting the old port, filters. This is why a punch
//!   that reaches the peer's router before the peer has sent shuts the pair out.
//!
//! Observed on Linux 6.18 in `cli/tests/reach.rs`, from the routers' `/proc/net/nf_conntrack`.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Timestamp;

/// How long an inbound datagram nobody expected is kept as a flow (Linux's
/// `nf_conntrack_udp_timeout`).
pub(super) const UNREPLIED: Duration = Duration::from_secs(30);

/// Entries past which a table is swept of expired ones (a fleet's NAT sees a few per host).
const SWEEP_AT: usize = 4096;

/// The flow table of one [`NatKind::Linux`](super::NatKind::Linux) NAT.
#[derive(Clone, Debug, Default)]
pub(super) struct Conntrack {
    /// (public port, remote) → (host, last packet).
    flows: HashMap<(u16, SocketAddr), (SocketAddr, Timestamp)>,
    /// (host, remote) → public port.
    by_flow: HashMap<(SocketAddr, SocketAddr), u16>,
    /// Host → the public port of its latest new flow.
    latest: HashMap<SocketAddr, u16>,
    /// Inbound datagrams no flow expected: (public port, remote) → last seen.
    unreplied: HashMap<(u16, SocketAddr), Timestamp>,
}

impl Conntrack {
    /// The public port `host`'s datagram to `remote` leaves from.
    pub(super) fn outbound(
        &mut self,
        now: Timestamp,
        host: SocketAddr,
        remote: SocketAddr,
        idle: Duration,
        rng: &mut ChaCha8Rng,
    ) -> u16 {
        let live = |t: Timestamp, ttl: Duration| now.saturating_since(t) < ttl;
        if let Some(&port) = self.by_flow.get(&(host, remote)) {
            if let Some(f) = self.flows.get_mut(&(port, remote)).filter(|f| f.0 == host) {
                if live(f.1, idle) {
                    f.1 = now;
                    return port;
                }
            }
        }
        if self.flows.len() >= SWEEP_AT {
            self.flows.retain(|_, f| live(f.1, idle));
            self.by_flow.retain(|(h, r), p| self.flows.get(&(*p, *r)).is_some_and(|f| f.0 == *h));
        }
        let (flows, unreplied) = (&self.flows, &self.unreplied);
        let free = |port: u16| {
            !flows.get(&(port, remote)).is_some_and(|f| live(f.1, idle))
                && !unreplied.get(&(port, remote)).is_some_and(|t| live(*t, UNREPLIED))
        };
        let preferred = [self.latest.get(&host).copied(), Some(host.port())];
        let port = match preferred.into_iter().flatten().find(|p| free(*p)) {
            Some(port) => port,
            None => loop {
                let port = rng.gen_range(1024..=u16::MAX);
                if free(port) {
                    break port;
                }
            },
        };
        self.flows.insert((port, remote), (host, now));
        self.by_flow.insert((host, remote), port);
        self.latest.insert(host, port);
        port
    }

    /// Where a datagram from `remote` to public `port` goes: to the host whose flow expects
    /// it; none expecting it, it is dropped and remembered ([`UNREPLIED`]).
    pub(super) fn inbound(
        &mut self,
        now: Timestamp,
        remote: SocketAddr,
        port: u16,
        idle: Duration,
    ) -> Option<SocketAddr> {
        let live = |t: Timestamp, ttl: Duration| now.saturating_since(t) < ttl;
        if let Some(f) = self.flows.get_mut(&(port, remote)).filter(|f| live(f.1, idle)) {
            f.1 = now;
            return Some(f.0);
        }
        if self.unreplied.len() >= SWEEP_AT {
            self.unreplied.retain(|_, t| live(*t, UNREPLIED));
        }
        self.unreplied.insert((port, remote), now);
        None
    }

    /// Live flows (for reports and tests).
    pub(super) fn flows(&self, now: Timestamp, idle: Duration) -> usize {
        self.flows.values().filter(|f| now.saturating_since(f.1) < idle).count()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Nat, NatKind};
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const T0: Timestamp = Timestamp::from_secs(1_000);

    #[test]
    fn one_port_for_every_destination_and_only_the_flows_remote_gets_in() {
        let mut n = Nat::new(NatKind::Linux, "100.64.0.1".parse().unwrap());
        let host = a("10.1.0.1:4000");
        let (master, peer) = (a("192.0.2.1:7946"), a("203.0.113.9:5000"));
        let p1 = n.outbound(T0, host, master);
        assert_eq!(p1, a("100.64.0.1:4000"), "the host's own port kept");
        assert_eq!(n.outbound(T0, host, peer), p1, "the same port for another destination");
        assert_eq!(n.inbound(T0, master, 4000), Some(host));
        assert_eq!(n.inbound(T0, a("192.0.2.1:7947"), 4000), None, "another port of it");
        // A second host with the same source port shares the public port towards others.
        let other = a("10.1.0.2:4000");
        assert_eq!(n.outbound(T0, other, a("198.51.100.1:1")).port(), 4000);
        assert_ne!(n.outbound(T0, other, master).port(), 4000, "taken towards the master");
    }

    #[test]
    fn a_datagram_before_the_host_sent_holds_the_port_for_thirty_seconds() {
        let mut n = Nat::new(NatKind::Linux, "100.64.0.1".parse().unwrap());
        let (host, peer) = (a("10.1.0.1:4000"), a("203.0.113.9:5000"));
        n.outbound(T0, host, a("192.0.2.1:7946"));
        // The peer's punch arrives first: dropped, and remembered.
        assert_eq!(n.inbound(T0, peer, 4000), None);
        let moved = n.outbound(T0, host, peer);
        assert_ne!(moved.port(), 4000, "the host's flow to the peer takes another port");
        assert_eq!(n.inbound(T0, peer, 4000), None, "the peer, punching the old port, is out");
        assert_eq!(n.inbound(T0, peer, moved.port()), Some(host));
        // Thirty seconds after the peer's last packet to the old port, a new flow keeps it.
        let mut fresh = Nat::new(NatKind::Linux, "100.64.0.1".parse().unwrap());
        fresh.outbound(T0, host, a("192.0.2.1:7946"));
        assert_eq!(fresh.inbound(T0, peer, 4000), None);
        let later = T0 + UNREPLIED;
        assert_eq!(fresh.outbound(later, host, peer).port(), 4000);
        assert_eq!(fresh.inbound(later, peer, 4000), Some(host));
    }
}
