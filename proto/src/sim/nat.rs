//! NAT boxes in front of simulated subnets (RFC 4787 terms): how outbound datagrams are
//! mapped to the subnet's public address, and which inbound datagrams a mapping lets through.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::conntrack::Conntrack;
use crate::Timestamp;

/// How a subnet reaches the internet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum NatKind {
    /// No NAT: the hosts' addresses are public.
    None,
    /// Endpoint-independent mapping and filtering ("full cone"): once a host has sent out, anyone
    /// may reach it at its mapped port.
    EndpointIndependent,
    /// Endpoint-independent mapping, address-dependent filtering: only addresses the host has
    /// sent to may answer.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// A new mapping (public port) for every destination; only that destination may answer.
    /// Ports are handed out in sequence, so the next one can be predicted.
    Symmetric,
    /// [`Symmetric`](Self::Symmetric) with every new port drawn at random (as Linux
    /// `MASQUERADE --random-fully` does): no prediction finds it.
    SymmetricRandom,
    /// Linux `MASQUERADE` (conntrack): endpoint-independent mapping and port-restricted
    /// filtering, as [`PortRestricted`](Self::PortRestricted), except that a datagram
    /// arriving before the host has sent to its source holds that port towards it for 30 s,
    /// and the host's own flow there takes a random port (see `conntrack.rs`).
    Linux,
}

impl NatKind {
    /// Every kind, in a fixed order (for mixes and reports).
    pub const ALL: [NatKind; 7] = [
        NatKind::None,
        NatKind::EndpointIndependent,
        NatKind::AddressRestricted,
        NatKind::PortRestricted,
        NatKind::Symmetric,
        NatKind::SymmetricRandom,
        NatKind::Linux,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::None => "none",
            NatKind::EndpointIndependent => "endpoint-independent",
            NatKind::AddressRestricted => "address-restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
            NatKind::SymmetricRandom => "symmetric-random",
            NatKind::Linux => "linux",
        }
    }

    /// Whether it gives every destination a mapping of its own.
    pub fn per_destination(self) -> bool {
        matches!(self, NatKind::Symmetric | NatKind::SymmetricRandom)
    }
}

/// One mapping: the private host behind it and whom it has talked to.
#[derive(Clone, Debug)]
struct Mapping {
    private: SocketAddr,
    /// Remote endpoints the host sent to through this mapping, with the last time.
    peers: Vec<(SocketAddr, Timestamp)>,
    last_out: Timestamp,
}

/// The NAT of one subnet: its kind, public address and mapping table.
#[derive(Clone, Debug)]
pub struct Nat {
    kind: NatKind,
    public: IpAddr,
    /// How long an idle mapping survives (RFC 4787 asks for at least 2 minutes; many home
    /// routers keep UDP mappings for 30–60 s).
    pub idle_timeout: Duration,
    by_port: HashMap<u16, Mapping>,
    /// (private, remote or none) → public port.
    by_private: HashMap<(SocketAddr, Option<SocketAddr>), u16>,
    next_port: u16,
    /// Where [`NatKind::SymmetricRandom`] and [`NatKind::Linux`] draw their ports: seeded
    /// from the public address, so the same run draws the same ports.
    rng: ChaCha8Rng,
    /// [`NatKind::Linux`]'s flows.
    conntrack: Conntrack,
}

impl Nat {
    /// A NAT of `kind` with public address `public`.
    pub fn new(kind: NatKind, public: IpAddr) -> Self {
        Nat {
            kind,
            public,
            idle_timeout: Duration::from_secs(120),
            by_port: HashMap::new(),
            by_private: HashMap::new(),
            next_port: 20_000,
            rng: ChaCha8Rng::seed_from_u64(match public {
                IpAddr::V4(a) => u64::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a) as u64,
            }),
            conntrack: Conntrack::default(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    /// Its public address.
    pub fn public_ip(&self) -> IpAddr {
        self.public
    }

    /// Maps an outbound datagram from `private` to `remote`: the source address the remote
    /// side sees ([`NatKind::None`] returns `private` unchanged).
    pub fn outbound(
        &mut self,
        now: Timestamp,
        private: SocketAddr,
        remote: SocketAddr,
    ) -> SocketAddr {
        match self.kind {
            NatKind::None => return private,
            NatKind::Linux => {
                let (idle, rng) = (self.idle_timeout, &mut self.rng);
                let port = self.conntrack.outbound(now, private, remote, idle, rng);
                return SocketAddr::new(self.public, port);
            }
            _ => {}
        }
        let key = (private, self.kind.per_destination().then_some(remote));
        let port = match self.by_private.get(&key) {
            Some(&p) if self.by_port.get(&p).is_some_and(|m| self.alive(now, m)) => p,
            _ => {
                if let Some(old) = self.by_private.remove(&key) {
                    self.by_port.remove(&old);
                }
                let p = self.fresh_port(now);
                self.by_private.insert(key, p);
                self.by_port.insert(p, Mapping { private, peers: Vec::new(), last_out: now });
                p
            }
        };
        let m = self.by_port.get_mut(&port).expect("mapping just ensured");
        m.last_out = now;
        match m.peers.iter_mut().find(|(r, _)| *r == remote) {
            Some(entry) => entry.1 = now,
            None => m.peers.push((remote, now)),
        }
        SocketAddr::new(self.public, port)
    }

    /// Where an inbound datagram from `remote` to public `port` goes, if the NAT lets it in.
    pub fn inbound(&mut self, now: Timestamp, remote: SocketAddr, port: u16) -> Option<SocketAddr> {
        if self.kind == NatKind::Linux {
            return self.conntrack.inbound(now, remote, port, self.idle_timeout);
        }
        let m = self.by_port.get(&port)?;
        if !self.alive(now, m) {
            return None;
        }
        let fresh = |t: &Timestamp| now.saturating_since(*t) < self.idle_timeout;
        let allowed = match self.kind {
            NatKind::None | NatKind::EndpointIndependent => true,
            NatKind::AddressRestricted => {
                m.peers.iter().any(|(r, t)| r.ip() == remote.ip() && fresh(t))
            }
            NatKind::PortRestricted
            | NatKind::Symmetric
            | NatKind::SymmetricRandom
            | NatKind::Linux => m.peers.iter().any(|(r, t)| *r == remote && fresh(t)),
        };
        allowed.then_some(m.private)
    }

    /// Drops every mapping, as a router reboot does: hosts reappear at new public ports.
    #[cfg(test)]
    pub(crate) fn rebind(&mut self) {
        self.by_port.clear();
        self.by_private.clear();
        self.conntrack = Conntrack::default();
    }

    /// Replaces this NAT by one of `kind` (a router swapped or reconfigured): every mapping
    /// is dropped, and new ones take ports the old box did not hand out last, so a host's
    /// old public port does not come back by chance.
    pub fn replace(&mut self, kind: NatKind) {
        let (next_port, rng) = (self.next_port, self.rng.clone());
        *self =
            Nat { next_port, rng, idle_timeout: self.idle_timeout, ..Nat::new(kind, self.public) };
    }

    /// Live mappings (for reports and tests).
    pub fn mappings(&self, now: Timestamp) -> usize {
        if self.kind == NatKind::Linux {
            return self.conntrack.flows(now, self.idle_timeout);
        }
        self.by_port.values().filter(|m| self.alive(now, m)).count()
    }

    fn alive(&self, now: Timestamp, m: &Mapping) -> bool {
        now.saturating_since(m.last_out) < self.idle_timeout
    }

    fn fresh_port(&mut self, now: Timestamp) -> u16 {
        // Ports are recycled once their mapping has expired; a full table evicts nothing and
        // wraps (65k live mappings behind one address does not happen in our fleets).
        for _ in 0..u16::MAX {
            let p = if self.kind == NatKind::SymmetricRandom {
                self.rng.gen_range(1024..=u16::MAX)
            } else {
                let p = self.next_port;
                self.next_port = if p == u16::MAX { 20_000 } else { p + 1 };
                p
            };
            match self.by_port.get(&p) {
                Some(m) if self.alive(now, m) => continue,
                Some(_) => {
                    self.by_port.remove(&p);
                    self.by_private.retain(|_, v| *v != p);
                    return p;
                }
                None => return p,
            }
        }
        self.next_port
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const T0: Timestamp = Timestamp::from_secs(1_000);

    fn nat(kind: NatKind) -> Nat {
        Nat::new(kind, "100.64.0.1".parse().unwrap())
    }

    #[test]
    fn no_nat_leaves_addresses_alone() {
        let mut n = nat(NatKind::None);
        assert_eq!(n.outbound(T0, a("10.1.0.1:4000"), a("192.0.2.1:4000")), a("10.1.0.1:4000"));
    }

    #[test]
    fn filtering_follows_the_kind() {
        let host = a("10.1.0.1:4000");
        let (master, master_other_port, stranger) =
            (a("192.0.2.1:4000"), a("192.0.2.1:5000"), a("203.0.113.9:4000"));
        let expect = [
            (NatKind::EndpointIndependent, [true, true, true]),
            (NatKind::AddressRestricted, [true, true, false]),
            (NatKind::PortRestricted, [true, false, false]),
            (NatKind::Symmetric, [true, false, false]),
        ];
        for (kind, allowed) in expect {
            let mut n = nat(kind);
            let public = n.outbound(T0, host, master);
            for (remote, ok) in [master, master_other_port, stranger].into_iter().zip(allowed) {
                let got = n.inbound(T0, remote, public.port());
                assert_eq!(got.is_some(), ok, "{kind:?} from {remote}");
                if ok {
                    assert_eq!(got, Some(host));
                }
            }
        }
    }

    #[test]
    fn symmetric_maps_each_destination_to_its_own_port() {
        let host = a("10.1.0.1:4000");
        let mut sym = nat(NatKind::Symmetric);
        let p1 = sym.outbound(T0, host, a("192.0.2.1:4000"));
        let p2 = sym.outbound(T0, host, a("203.0.113.9:4000"));
        assert_ne!(p1, p2);
        assert_eq!(p2.port(), p1.port() + 1, "in sequence");
        let mut random = nat(NatKind::SymmetricRandom);
        let ports: Vec<u16> = (0..8u16)
            .map(|k| random.outbound(T0, host, SocketAddr::new([192, 0, 2, 1].into(), k)).port())
            .collect();
        let steps = ports.windows(2).filter(|w| w[1].abs_diff(w[0]) <= 256).count();
        assert!(steps <= 1, "random ports are not near each other: {ports:?}");
        assert_eq!(random.inbound(T0, a("192.0.2.1:3"), ports[3]), Some(host));
        let mut cone = nat(NatKind::PortRestricted);
        let q1 = cone.outbound(T0, host, a("192.0.2.1:4000"));
        let q2 = cone.outbound(T0, host, a("203.0.113.9:4000"));
        assert_eq!(q1, q2);
    }

    #[test]
    fn idle_mappings_expire_and_outbound_traffic_keeps_them() {
        let host = a("10.1.0.1:4000");
        let master = a("192.0.2.1:4000");
        let mut n = nat(NatKind::PortRestricted);
        let p = n.outbound(T0, host, master).port();
        let later = T0 + Duration::from_secs(100);
        assert!(n.inbound(later, master, p).is_some());
        n.outbound(later, host, master);
        assert!(n.inbound(later + Duration::from_secs(100), master, p).is_some());
        assert!(n.inbound(later + Duration::from_secs(121), master, p).is_none());
        assert_eq!(n.mappings(later + Duration::from_secs(121)), 0);
    }
}
