//! Reach across NATs (issue 16): for every pair of NAT kinds, whether a node behind one can
//! open a session with a node behind the other, and how long it takes, with and without
//! introductions by the master ([`nat_matrix`]). `fleetmesh simulate --nat-matrix` prints it.
//!
//! Each trial is a small simulation of its own: two nodes (an LSN and a child) in a subnet
//! behind each kind, and one node in a public subnet (the helper NAT classification needs).
//! Once everyone is present and has classified its NAT, the child of the first subnet dials
//! the child of the second at the address the master observed for it, as a DHT request
//! would ([`Node::reach`](crate::overlay::Node::reach)), and the run measures how long until
//! the session stands (at most [`REACH_WAIT`]), and whether it runs directly or through the
//! GSN the master named (the public node, appointed for taking unsolicited inbound).

use std::time::Duration;

use serde::Serialize;

use super::{quantile_ms, NatKind, Simulation};
use crate::overlay::{NodeState, OverlayConfig};

/// When a trial's unanswered dial asks for an introduction.
pub const INTRODUCE_AFTER: Duration = Duration::from_millis(500);

/// How long a trial waits for the session.
pub const REACH_WAIT: Duration = Duration::from_secs(10);

/// What stands at a trial subnet's edge: a NAT of some kind, or a firewall that drops UDP
/// (in and out) in front of a port-restricted NAT, as a corporate network that lets only TCP
/// out has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// A NAT of this kind, UDP allowed.
    Nat(NatKind),
    /// UDP dropped at the edge; TCP out through a port-restricted NAT.
    UdpBlocked,
}

impl Edge {
    /// The matrix's rows and columns: every [`NatKind`], then UDP-blocked.
    pub const ALL: [Edge; 8] = [
        Edge::Nat(NatKind::None),
        Edge::Nat(NatKind::EndpointIndependent),
        Edge::Nat(NatKind::AddressRestricted),
        Edge::Nat(NatKind::PortRestricted),
        Edge::Nat(NatKind::Symmetric),
        Edge::Nat(NatKind::SymmetricRandom),
        Edge::Nat(NatKind::Linux),
        Edge::UdpBlocked,
    ];

    /// Its name in reports (a [`NatKind`]'s, or `udp-blocked`).
    pub fn name(self) -> &'static str {
        match self {
            Edge::Nat(k) => k.name(),
            Edge::UdpBlocked => "udp-blocked",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Edge::Nat(NatKind::None) => "none",
            Edge::Nat(NatKind::EndpointIndependent) => "full-cone",
            Edge::Nat(NatKind::AddressRestricted) => "addr-restr",
            Edge::Nat(NatKind::PortRestricted) => "port-restr",
            Edge::Nat(NatKind::Symmetric) => "symmetric",
            Edge::Nat(NatKind::SymmetricRandom) => "sym-random",
            Edge::Nat(NatKind::Linux) => "linux",
            Edge::UdpBlocked => "udp-blocked",
        }
    }
}

impl From<NatKind> for Edge {
    fn from(k: NatKind) -> Self {
        Edge::Nat(k)
    }
}

/// One ordered pair of edges (NAT kinds or UDP-blocked): the dialler's and the target's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PairReach {
    /// The dialler's NAT.
    pub from: &'static str,
    /// The target's NAT.
    pub to: &'static str,
    /// Trials run.
    pub trials: u32,
    /// Fraction of trials whose session opened directly within [`REACH_WAIT`].
    pub direct: f64,
    /// Fraction whose session opened through a GSN (the relay) within [`REACH_WAIT`].
    pub relayed: f64,
    /// Fraction that found no path.
    pub unreachable: f64,
    /// Time from the dial to the session, of the successful trials, median (ms).
    pub time_ms_p50: u64,
    /// 99th percentile of it (ms).
    pub time_ms_p99: u64,
}

/// How a trial's session opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reached {
    /// Time from the dial to the session.
    pub took: Duration,
    /// Whether it runs through a GSN.
    pub relayed: bool,
}

/// How a trial runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrialOptions {
    /// Whether nodes ask the master for introductions (hole punching). Default on.
    pub introductions: bool,
    /// Whether nodes may serve as GSNs (the relay). Default on.
    pub gsn: bool,
    /// Datagrams lost on the way (each, independently) from the measured dial on; the fleet
    /// forms without loss. Default 0.
    pub loss: f64,
}

impl Default for TrialOptions {
    fn default() -> Self {
        TrialOptions { introductions: true, gsn: true, loss: 0.0 }
    }
}

/// The whole matrix.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NatMatrix {
    /// Whether nodes had introductions (hole punching by the master).
    pub introductions: bool,
    /// Datagram loss during the trials.
    pub loss: f64,
    /// Every ordered pair of [`Edge::ALL`], dialler major.
    pub pairs: Vec<PairReach>,
}

impl NatMatrix {
    /// The entry for `from` dialling `to`.
    pub fn get(&self, from: impl Into<Edge>, to: impl Into<Edge>) -> Option<&PairReach> {
        let (from, to) = (from.into().name(), to.into().name());
        self.pairs.iter().find(|p| p.from == from && p.to == to)
    }

    /// Ordered pairs with a session (direct or relayed) in every trial, and in all.
    pub fn reached(&self) -> (usize, usize) {
        let all = self.pairs.iter().filter(|p| p.unreachable == 0.0 && p.trials > 0).count();
        (all, self.pairs.len())
    }

    /// The matrix as a text grid: per pair direct % and, if any, relayed % (rows: dialler,
    /// columns: target), then a summary line.
    pub fn grid(&self) -> String {
        let mut out = format!("{:<12}", "from \\ to");
        for k in Edge::ALL {
            out.push_str(&format!("{:>12}", k.short()));
        }
        out.push('\n');
        for a in Edge::ALL {
            out.push_str(&format!("{:<12}", a.short()));
            for b in Edge::ALL {
                let cell = self.get(a, b).map_or("-".to_string(), |p| {
                    if p.relayed > 0.0 {
                        format!("{:.0}+{:.0}r %", p.direct * 100.0, p.relayed * 100.0)
                    } else {
                        format!("{:.0} %", p.direct * 100.0)
                    }
                });
                out.push_str(&format!("{cell:>12}"));
            }
            out.push('\n');
        }
        let (reached, all) = self.reached();
        let mut times: Vec<u64> = self.pairs.iter().map(|p| p.time_ms_p99).collect();
        times.sort_unstable();
        out.push_str(&format!(
            "pairs reaching each other in every trial (direct or relayed, \"r\"): {reached} of \
             {all}; worst pair's p99 time to session {} ms\n",
            times.last().copied().unwrap_or(0)
        ));
        out
    }
}

/// Runs `trials` trials of every ordered pair of [`Edge::ALL`], seeded from `seed`.
pub fn nat_matrix(seed: u64, trials: u32, options: TrialOptions) -> NatMatrix {
    let mut pairs = Vec::new();
    for (ai, a) in Edge::ALL.into_iter().enumerate() {
        for (bi, b) in Edge::ALL.into_iter().enumerate() {
            let mut times = Vec::new();
            let mut relayed = 0;
            for t in 0..trials {
                let s = seed.wrapping_mul(1_000_003) ^ ((ai * 8 + bi) as u64) << 16 ^ u64::from(t);
                if let Some(r) = trial_with(s, a, b, options) {
                    times.push(r.took);
                    relayed += usize::from(r.relayed);
                }
            }
            let n = trials.max(1) as f64;
            pairs.push(PairReach {
                from: a.name(),
                to: b.name(),
                trials,
                direct: (times.len() - relayed) as f64 / n,
                relayed: relayed as f64 / n,
                unreachable: (trials as usize - times.len()) as f64 / n,
                time_ms_p50: quantile_ms(&times, 0.5),
                time_ms_p99: quantile_ms(&times, 0.99),
            });
        }
    }
    NatMatrix { introductions: options.introductions, loss: options.loss, pairs }
}

/// One trial: how long the child behind `a` took to open a session with the child behind
/// `b` and whether it is relayed, or `None` if it did not within [`REACH_WAIT`].
pub fn trial(
    seed: u64,
    a: impl Into<Edge>,
    b: impl Into<Edge>,
    introductions: bool,
) -> Option<Reached> {
    let options = TrialOptions { introductions, ..TrialOptions::default() };
    trial_with(seed, a.into(), b.into(), options)
}

/// [`trial`], with every option.
pub fn trial_with(seed: u64, a: Edge, b: Edge, options: TrialOptions) -> Option<Reached> {
    let TrialOptions { introductions, gsn, loss } = options;
    let mut sim = Simulation::new(seed);
    sim.keep_events = false;
    // No DHT: its traffic would open NAT mappings between the two before the measured dial.
    // Children check their own NAT (by default they take their LSN's): the trial dials the
    // target at the address the master saw for it.
    sim.tune = match (introductions, gsn) {
        (true, true) => |c| OverlayConfig {
            dht: c.dht.enabled(false),
            introduce_after: Some(INTRODUCE_AFTER),
            nat_check_as_child: true,
            ..c
        },
        (true, false) => |c| OverlayConfig {
            dht: c.dht.enabled(false),
            introduce_after: Some(INTRODUCE_AFTER),
            gsn: false,
            nat_check_as_child: true,
            ..c
        },
        (false, _) => |c| OverlayConfig {
            dht: c.dht.enabled(false),
            introduce_after: None,
            nat_check_as_child: true,
            ..c
        },
    };
    sim.master_cfg.dht = sim.master_cfg.dht.clone().enabled(false);
    // As the front door and the day set it: a dial unanswered over UDP for 1 s goes on over TCP.
    sim.tcp_fallback = Some(Duration::from_secs(1));
    for (subnet, edge) in [(1, a), (2, b)] {
        match edge {
            Edge::Nat(kind) => sim.set_nat(subnet, kind),
            Edge::UdpBlocked => {
                sim.set_nat(subnet, NatKind::PortRestricted);
                sim.block_subnet_udp(subnet, true);
            }
        }
    }
    sim.set_nat(3, NatKind::None);
    let helper = sim.add(3);
    sim.run_until(Duration::from_secs(30), |s| s.all_present());
    let nodes: Vec<usize> = [1, 1, 2, 2].into_iter().map(|s| sim.add(s)).collect();
    // Behind a UDP-blocked edge the class cannot be tested (the check runs over UDP).
    let checks = |i: usize| match i {
        0 | 1 => a != Edge::UdpBlocked,
        2 | 3 => b != Edge::UdpBlocked,
        _ => true,
    };
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_present()
            && nodes.iter().enumerate().all(|(k, &i)| !checks(k) || s.node(i).nat_checked())
            && s.node(helper).nat_checked()
    });
    let child = |sim: &Simulation, pair: &[usize]| {
        pair.iter().copied().find(|&i| sim.node(i).state() == NodeState::HasLsn)
    };
    let (from, to) = (child(&sim, &nodes[..2])?, child(&sim, &nodes[2..])?);
    let target = sim.id(to);
    let addr = sim.node(to).observed_addr()?;
    sim.net.loss = loss;
    let start = sim.now;
    sim.node_do(from, |n, now| n.reach(now, target, addr));
    let step = Duration::from_millis(10);
    while sim.now.saturating_since(start) < REACH_WAIT {
        if sim.node(from).endpoint().is_connected(&target) {
            let relayed = sim.node(from).relayed_via(&target).is_some();
            return Some(Reached { took: sim.now.saturating_since(start), relayed });
        }
        sim.run_for(step);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Mapping;

    const NO_GSN: TrialOptions = TrialOptions { introductions: true, gsn: false, loss: 0.0 };

    #[test]
    fn nodes_learn_their_nat_class_and_the_master_shows_it() {
        let mut sim = Simulation::new(3);
        sim.tune = |c| OverlayConfig { dht: c.dht.enabled(false), ..c };
        sim.master_cfg.dht = sim.master_cfg.dht.clone().enabled(false);
        let kinds = [
            (6, NatKind::None, Mapping::Public, Some(true)),
            (2, NatKind::EndpointIndependent, Mapping::EndpointIndependent, Some(true)),
            (3, NatKind::AddressRestricted, Mapping::EndpointIndependent, Some(false)),
            (4, NatKind::PortRestricted, Mapping::EndpointIndependent, Some(false)),
            (5, NatKind::Symmetric, Mapping::EndpointDependent, Some(false)),
            (7, NatKind::Linux, Mapping::EndpointIndependent, Some(false)),
        ];
        for (s, kind, ..) in kinds {
            sim.set_nat(s, kind);
        }
        // The first public node learns it is public without a helper; then it is everyone's
        // helper (the other public node is in another subnet: never its LSN's child).
        sim.set_nat(1, NatKind::None);
        let first = sim.add(1);
        sim.run_until(Duration::from_secs(30), |s| s.node(first).nat_checked());
        let mut nodes = vec![];
        for (s, ..) in kinds {
            nodes.push(sim.add(s));
        }
        sim.run_until(Duration::from_secs(60), |s| {
            s.all_present() && nodes.iter().all(|&i| s.node(i).nat_checked())
        });
        sim.run_for(Duration::from_secs(1)); // The last reports on their way.
        let first_class = sim.node(first).nat_class();
        assert_eq!(first_class.mapping, Mapping::Public);
        assert_eq!(first_class.inbound, None, "no helper was known when it asked");
        for (&i, (_, kind, mapping, inbound)) in nodes.iter().zip(kinds) {
            let class = sim.node(i).nat_class();
            assert_eq!((class.mapping, class.inbound), (mapping, inbound), "{kind:?}");
            let seen = sim.master().nat_class(&sim.id(i)).map(|(c, _)| c);
            assert_eq!(seen, Some(class), "the master keeps what {kind:?} reported");
        }
        let topology = sim.master().topology();
        let shown = topology
            .subnets
            .iter()
            .flat_map(|s| &s.lsns)
            .flat_map(|l| l.nat.into_iter().chain(l.children.iter().filter_map(|c| c.nat)))
            .count();
        assert_eq!(shown, nodes.len() + 1, "every node's class is in the topology");
    }

    #[test]
    fn an_introduction_opens_sessions_that_a_plain_dial_cannot() {
        use NatKind::{AddressRestricted, PortRestricted};
        for (a, b) in [(PortRestricted, PortRestricted), (AddressRestricted, PortRestricted)] {
            assert_eq!(trial(11, a, b, false), None, "{a:?} -> {b:?} without introductions");
            let r = trial(11, a, b, true).unwrap_or_else(|| panic!("{a:?} -> {b:?}"));
            assert!(r.took < Duration::from_secs(2) && !r.relayed, "{a:?} -> {b:?}: {r:?}");
        }
    }

    #[test]
    fn connection_reversal_when_the_dialler_takes_inbound() {
        // A full-cone dialler takes unsolicited inbound: the master only tells the target
        // to dial it.
        let r = trial(12, NatKind::EndpointIndependent, NatKind::PortRestricted, true);
        assert!(r.is_some_and(|r| r.took < Duration::from_secs(2) && !r.relayed), "{r:?}");
    }

    #[test]
    fn port_prediction_opens_port_restricted_and_symmetric_directly() {
        use NatKind::{PortRestricted, Symmetric};
        // Each way, without GSNs: only a direct session can open. Before port prediction
        // neither did (the symmetric side's port towards the peer is a new one).
        for (a, b) in [(PortRestricted, Symmetric), (Symmetric, PortRestricted)] {
            let r = trial_with(15, a.into(), b.into(), NO_GSN);
            let r = r.unwrap_or_else(|| panic!("{a:?} -> {b:?} not reached"));
            assert!(!r.relayed && r.took < Duration::from_secs(2), "{a:?} -> {b:?}: {r:?}");
        }
    }

    #[test]
    fn linux_nats_punch_through_each_other_and_symmetric_ones_directly() {
        use NatKind::{Linux, PortRestricted, Symmetric};
        // Without GSNs: only a direct session can open. Linux NATs hold a port against an
        // early packet (`conntrack.rs`): before punching ahead with a low TTL (and the NAT
        // check's wait after a kept-out probe) every one of these was relayed or failed.
        for (a, b) in
            [(Linux, Linux), (Linux, Symmetric), (Symmetric, Linux), (PortRestricted, Linux)]
        {
            let r = trial_with(16, a.into(), b.into(), NO_GSN);
            let r = r.unwrap_or_else(|| panic!("{a:?} -> {b:?} not reached"));
            assert!(!r.relayed && r.took < Duration::from_secs(2), "{a:?} -> {b:?}: {r:?}");
        }
    }

    #[test]
    fn pairs_prediction_cannot_open_fail_without_a_gsn_and_are_relayed_with_one() {
        use NatKind::{PortRestricted, Symmetric, SymmetricRandom};
        for (a, b) in [
            (Symmetric, Symmetric),
            (PortRestricted, SymmetricRandom),
            (SymmetricRandom, PortRestricted),
            (SymmetricRandom, Symmetric),
        ] {
            let (a, b) = (Edge::from(a), Edge::from(b));
            assert_eq!(trial_with(13, a, b, NO_GSN), None, "{a:?} -> {b:?}: no GSN allowed");
            let r = trial(13, a, b, true).unwrap_or_else(|| panic!("{a:?} -> {b:?} not reached"));
            assert!(r.relayed, "{a:?} -> {b:?}: {r:?}");
            assert!(r.took < Duration::from_secs(3), "{a:?} -> {b:?} took {:?}", r.took);
        }
    }

    #[test]
    fn a_udp_blocked_subnet_is_reached_over_tcp_and_through_the_relay() {
        use NatKind::{None as Public, Symmetric};
        let blocked = Edge::UdpBlocked;
        // Its node dials a public one over TCP once UDP gets no answer; between two blocked
        // subnets the punch runs over TCP (the simulator's NATs pass TCP as they pass UDP).
        for (a, b) in [(blocked, Public.into()), (Public.into(), blocked), (blocked, blocked)] {
            let r = trial(16, a, b, true).unwrap_or_else(|| panic!("{a:?} -> {b:?}"));
            assert!(!r.relayed && r.took < Duration::from_secs(3), "{a:?} -> {b:?}: {r:?}");
        }
        // Against a symmetric NAT no direct path opens: the GSN relays, over TCP on the
        // blocked side.
        for (a, b) in [(blocked, Symmetric.into()), (Symmetric.into(), blocked)] {
            assert_eq!(trial_with(16, a, b, NO_GSN), None, "{a:?} -> {b:?} without a GSN");
            let r = trial(16, a, b, true).unwrap_or_else(|| panic!("{a:?} -> {b:?}"));
            assert!(r.relayed && r.took < Duration::from_secs(3), "{a:?} -> {b:?}: {r:?}");
        }
    }

    #[test]
    fn with_loss_every_pair_still_reaches_the_other() {
        // 2 % of datagrams lost from the dial on: an introduction is five datagrams (ask,
        // to the target's LSN, to the target, check-in, back), so without asking again about
        // one introduction in ten was lost, and its pair with it.
        let options = TrialOptions { loss: 0.02, ..TrialOptions::default() };
        let m = nat_matrix(7, 4, options);
        let failing: Vec<_> = m.pairs.iter().filter(|p| p.unreachable > 0.0).collect();
        assert!(failing.is_empty(), "{failing:#?}");
        let predicted = m.get(NatKind::PortRestricted, NatKind::Symmetric).expect("in the matrix");
        assert!(predicted.direct >= 0.75, "{predicted:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_trial() {
        let a = trial(14, NatKind::PortRestricted, NatKind::AddressRestricted, true);
        let b = trial(14, NatKind::PortRestricted, NatKind::AddressRestricted, true);
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}
