//! A crate-private virtual-time harness: a set of sans-IO endpoints on a simulated network,
//! stepped to the earliest deadline (a delivery or an endpoint timer). No tasks, no clocks.

use std::{cmp::Reverse, collections::BinaryHeap, net::SocketAddr, time::Duration};

use rand_core::SeedableRng;

use crate::{
    endpoint::{Endpoint, EndpointConfig, Event},
    trust::{Authority, CertFlags, Certificate},
    Identity, Timestamp,
};

/// The time every harness run starts at (certificates are valid from here).
pub(crate) const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
pub(crate) const DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

pub(crate) fn seed(n: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

/// A master authority and helpers to make certified endpoints of its network.
pub(crate) struct Fixture {
    pub(crate) authority: Authority,
    next: u64,
}

impl Fixture {
    pub(crate) fn new(seed: u64) -> Self {
        Fixture { authority: Authority::new(Identity::generate(&mut rng(seed))), next: seed * 1000 }
    }

    pub(crate) fn identity(&mut self) -> Identity {
        self.next += 1;
        Identity::generate(&mut rng(self.next))
    }

    pub(crate) fn certify(&mut self, id: &Identity, validity: Duration) -> Certificate {
        self.authority.issue(&id.verifying_key(), id.x25519_public(), CertFlags::NONE, T0, validity)
    }

    /// A node of this network with a valid certificate.
    pub(crate) fn node(&mut self) -> EndpointConfig {
        let id = self.identity();
        let cert = self.certify(&id, DAY);
        EndpointConfig::new(id, self.authority.network_key()).certificate(cert)
    }
}

/// What the filter decides for a datagram in flight.
pub(crate) enum Verdict {
    Deliver,
    Drop,
}

/// A datagram on the wire: (delivery time, sequence for a stable order, src, dst, bytes).
type InFlight = (Timestamp, u64, SocketAddr, SocketAddr, Vec<u8>);

type Filter = Box<dyn FnMut(SocketAddr, SocketAddr, &mut Vec<u8>) -> Verdict>;

pub(crate) struct Node {
    pub(crate) addr: SocketAddr,
    pub(crate) endpoint: Endpoint,
    pub(crate) events: Vec<Event>,
}

/// The simulated network.
pub(crate) struct Net {
    pub(crate) now: Timestamp,
    pub(crate) nodes: Vec<Node>,
    pub(crate) latency: Duration,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    filter: Option<Filter>,
    /// Every datagram delivered: (time, src, dst, bytes).
    pub(crate) log: Vec<(Timestamp, SocketAddr, SocketAddr, Vec<u8>)>,
}

impl Net {
    pub(crate) fn new() -> Self {
        Net {
            now: T0,
            nodes: Vec::new(),
            latency: Duration::from_millis(10),
            in_flight: BinaryHeap::new(),
            seq: 0,
            filter: None,
            log: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, config: EndpointConfig, seed_n: u64) -> usize {
        let addr: SocketAddr = format!("10.0.0.{}:4000", self.nodes.len() + 1).parse().unwrap();
        self.nodes.push(Node {
            addr,
            endpoint: Endpoint::new(config, seed(seed_n)),
            events: Vec::new(),
        });
        self.nodes.len() - 1
    }

    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    pub(crate) fn set_filter(
        &mut self,
        f: impl FnMut(SocketAddr, SocketAddr, &mut Vec<u8>) -> Verdict + 'static,
    ) {
        self.filter = Some(Box::new(f));
    }

    pub(crate) fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Datagrams on the wire to `dst`, not delivered yet.
    pub(crate) fn in_flight_to(&self, dst: SocketAddr) -> usize {
        self.in_flight.iter().filter(|Reverse((_, _, _, d, _))| *d == dst).count()
    }

    /// Puts raw bytes on the wire, as an attacker or a duplicating network would.
    pub(crate) fn inject(&mut self, src: SocketAddr, dst: SocketAddr, bytes: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(Reverse((self.now + self.latency, self.seq, src, dst, bytes)));
    }

    /// Lets node `i` act through a closure, then collects what it produced.
    pub(crate) fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut Endpoint, Timestamp) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].endpoint, now);
        self.drain(i);
        r
    }

    fn drain(&mut self, i: usize) {
        let src = self.nodes[i].addr;
        while let Some(t) = self.nodes[i].endpoint.poll_transmit() {
            let mut bytes = t.payload;
            let keep = match &mut self.filter {
                Some(f) => matches!(f(src, t.dst, &mut bytes), Verdict::Deliver),
                None => true,
            };
            if keep {
                self.inject(src, t.dst, bytes);
            }
        }
        while let Some(e) = self.nodes[i].endpoint.poll_event() {
            self.nodes[i].events.push(e);
        }
    }

    /// Advances to the earliest deadline and handles it. Returns false when nothing is pending
    /// before `limit`.
    pub(crate) fn step(&mut self, limit: Timestamp) -> bool {
        let next_packet = self.in_flight.peek().map(|Reverse((t, ..))| *t);
        let next_timer = self.nodes.iter().filter_map(|n| n.endpoint.poll_timeout()).min();
        let Some(next) = next_packet.into_iter().chain(next_timer).min() else { return false };
        if next > limit {
            return false;
        }
        self.now = self.now.max(next);
        if next_packet == Some(next) {
            let Reverse((_, _, src, dst, bytes)) = self.in_flight.pop().unwrap();
            if let Some(i) = self.nodes.iter().position(|n| n.addr == dst) {
                self.log.push((self.now, src, dst, bytes.clone()));
                let now = self.now;
                self.nodes[i].endpoint.handle_datagram(now, src, &bytes);
                self.drain(i);
            }
        } else {
            for i in 0..self.nodes.len() {
                if self.nodes[i].endpoint.poll_timeout().is_some_and(|t| t <= self.now) {
                    let now = self.now;
                    self.nodes[i].endpoint.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
        true
    }

    /// Runs for `d` of virtual time.
    pub(crate) fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until `cond` holds, or panics after `max` of virtual time.
    pub(crate) fn run_until(&mut self, max: Duration, mut cond: impl FnMut(&Net) -> bool) {
        let limit = self.now + max;
        while !cond(self) {
            assert!(self.step(limit), "condition not reached within {max:?}");
        }
    }

    /// Takes node `i`'s events so far.
    pub(crate) fn events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[i].events)
    }
}
