//! An LSN's timers always move on: after `handle_timeout(now)`, `poll_timeout()` is later than
//! `now`. A deadline left in the past makes the driver spin at one instant forever (under
//! turmoil, simulated time then stops). Sans-IO: one master, one node, an instant network.

use std::{net::SocketAddr, time::Duration};

use fleetmesh::{
    overlay::{Master, MasterConfig, Node, NodeEvent, NodeState, OverlayConfig},
    trust::{Authority, CertFlags, OpenEnrollment},
    DiscoveryRequest, Endpoint, EndpointConfig, Identity, Timestamp,
};
use rand_core::SeedableRng;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

struct Net {
    now: Timestamp,
    master: Master,
    node: Node,
    master_addr: SocketAddr,
    node_addr: SocketAddr,
    /// Drop everything the master sends to the node.
    cut: bool,
    node_events: Vec<NodeEvent>,
}

impl Net {
    fn new() -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let mut authority = Authority::new(Identity::generate(&mut rng));
        let id = Identity::generate(&mut rng);
        let cert = authority.issue(
            &id.verifying_key(),
            id.x25519_public(),
            CertFlags::NONE,
            T0,
            Duration::from_secs(86_400),
        );
        let (master_addr, node_addr) =
            ("10.0.0.1:4000".parse().unwrap(), "10.1.0.1:4000".parse().unwrap());
        let network = authority.network_key();
        let master_ep = Endpoint::new(
            EndpointConfig::master(authority, OpenEnrollment::default(), T0),
            [1; 32],
        );
        let node_ep = Endpoint::new(EndpointConfig::new(id, network).certificate(cert), [2; 32]);
        Net {
            now: T0,
            master: Master::new(master_ep, MasterConfig::default()),
            node: Node::new(node_ep, OverlayConfig::new(master_addr, node_addr)),
            master_addr,
            node_addr,
            cut: false,
            node_events: Vec::new(),
        }
    }

    /// Delivers everything in flight, at once, until both sides are quiet.
    fn settle(&mut self) {
        loop {
            let mut quiet = true;
            while let Some(r) = self.node.poll_request() {
                if r == DiscoveryRequest::Discover {
                    self.node.handle_candidates(self.now, Vec::new());
                }
                quiet = false;
            }
            while let Some(t) = self.node.poll_transmit() {
                if t.dst == self.master_addr {
                    self.master.handle_datagram(self.now, self.node_addr, &t.payload);
                }
                quiet = false;
            }
            while let Some(t) = self.master.poll_transmit() {
                if t.dst == self.node_addr && !self.cut {
                    self.node.handle_datagram(self.now, self.master_addr, &t.payload);
                }
                quiet = false;
            }
            while let Some(e) = self.node.poll_event() {
                self.node_events.push(e);
            }
            while self.master.poll_event().is_some() {}
            if quiet {
                return;
            }
        }
    }

    /// Jumps to the earliest deadline and handles it, as the driver would: the node's timeout
    /// again while its deadline is due. A machine that makes no progress is caught here.
    fn step(&mut self) {
        let next =
            [self.node.poll_timeout(), self.master.poll_timeout()].into_iter().flatten().min();
        self.now = self.now.max(next.expect("something is always scheduled"));
        if self.master.poll_timeout().is_some_and(|t| t <= self.now) {
            self.master.handle_timeout(self.now);
            self.settle();
        }
        let mut rounds = 0;
        while self.node.poll_timeout().is_some_and(|t| t <= self.now) {
            rounds += 1;
            assert!(
                rounds < 100,
                "the node's deadline {:?} stays due at {:?} in state {:?}: the driver would spin",
                self.node.poll_timeout(),
                self.now,
                self.node.state()
            );
            self.node.handle_timeout(self.now);
            self.settle();
        }
    }

    fn run_until(&mut self, max: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let end = self.now + max;
        while !cond(self) {
            assert!(self.now < end, "not reached within {max:?}: {:?}", self.node_events);
            self.step();
        }
    }
}

#[test]
fn an_lsn_without_children_that_registers_again_does_not_spin() {
    let mut net = Net::new();
    net.settle();
    // Alone in its subnet, the node becomes the LSN, registers and reports its (empty) set.
    net.run_until(Duration::from_secs(10), |n| n.node.state() == NodeState::IsLsn);
    net.run_until(Duration::from_secs(10), |n| n.master.topology().lsn_count() == 1);
    net.run_for(Duration::from_secs(5));
    // The master's answers stop: keepalives go unanswered until the node gives the master up:
    // its liveness check comes `master_check` (120 s) after the master's last word, then
    // five tries 2 s apart. (The cut comes at the first deadline 5 s on, which may be soon.)
    net.cut = true;
    net.run_until(Duration::from_secs(150), |n| {
        n.node_events.contains(&NodeEvent::MasterUnreachable)
    });
    net.cut = false;
    // It registers again, and keeps running: keepalives, digests, everything moves on.
    let lost_at = net.node_events.len();
    net.run_for(Duration::from_secs(120));
    assert_eq!(net.node.state(), NodeState::IsLsn);
    assert!(!net.node_events[lost_at..].contains(&NodeEvent::MasterUnreachable));
}

impl Net {
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }
}
