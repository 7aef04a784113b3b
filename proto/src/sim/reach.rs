//! Reach across NATs (issue 16): for every pair of NAT kinds, whether a node behind one can
//! open a session with a node behind the other, and how long it takes, with and without
//! introductions by the master ([`nat_matrix`]). `fleetmesh simulate --nat-matrix` prints it.
//!
//! Each trial is a small simulation of its own: two nodes (an LSN and a child) in a subnet
//! behind each kind, and one node in a public subnet (the helper NAT classification needs).
//! Once everyone is present and has classified its NAT, the child of the first subnet dials
//! the child of the second at the address the master observed for it, as a DHT request
//! would ([`Node::reach`](crate::overlay::Node::reach)), and the run measures how long until
//! the session stands (at most [`REACH_WAIT`]).

use std::time::Duration;

use serde::Serialize;

use super::{quantile_ms, NatKind, Simulation};
use crate::overlay::{NodeState, OverlayConfig};

/// When a trial's unanswered dial asks for an introduction.
pub const INTRODUCE_AFTER: Duration = Duration::from_millis(500);

/// How long a trial waits for the session.
pub const REACH_WAIT: Duration = Duration::from_secs(10);

/// One ordered pair of NAT kinds: the dialler's and the target's.
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
    /// Fraction that found no path (there is no relay yet: issue 16, phase 2).
    pub unreachable: f64,
    /// Time from the dial to the session, of the successful trials, median (ms).
    pub time_ms_p50: u64,
    /// 99th percentile of it (ms).
    pub time_ms_p99: u64,
}

/// The whole matrix.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NatMatrix {
    /// Whether nodes had introductions (hole punching by the master).
    pub introductions: bool,
    /// Every ordered pair of [`NatKind::ALL`], dialler major.
    pub pairs: Vec<PairReach>,
}

impl NatMatrix {
    /// The entry for `from` dialling `to`.
    pub fn get(&self, from: NatKind, to: NatKind) -> Option<&PairReach> {
        self.pairs.iter().find(|p| p.from == from.name() && p.to == to.name())
    }

    /// The matrix as a text grid: direct % per pair (rows: dialler, columns: target).
    pub fn grid(&self) -> String {
        let short = |k: NatKind| match k {
            NatKind::None => "none",
            NatKind::EndpointIndependent => "full-cone",
            NatKind::AddressRestricted => "addr-restr",
            NatKind::PortRestricted => "port-restr",
            NatKind::Symmetric => "symmetric",
        };
        let mut out = format!("{:<12}", "from \\ to");
        for k in NatKind::ALL {
            out.push_str(&format!("{:>12}", short(k)));
        }
        out.push('\n');
        for a in NatKind::ALL {
            out.push_str(&format!("{:<12}", short(a)));
            for b in NatKind::ALL {
                let cell = self
                    .get(a, b)
                    .map_or("-".to_string(), |p| format!("{:.0} %", p.direct * 100.0));
                out.push_str(&format!("{cell:>12}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Runs `trials` trials of every ordered pair of NAT kinds, seeded from `seed`, with
/// introductions on or off.
pub fn nat_matrix(seed: u64, trials: u32, introductions: bool) -> NatMatrix {
    let mut pairs = Vec::new();
    for (ai, a) in NatKind::ALL.into_iter().enumerate() {
        for (bi, b) in NatKind::ALL.into_iter().enumerate() {
            let mut times = Vec::new();
            for t in 0..trials {
                let s = seed.wrapping_mul(1_000_003) ^ ((ai * 5 + bi) as u64) << 16 ^ u64::from(t);
                if let Some(took) = trial(s, a, b, introductions) {
                    times.push(took);
                }
            }
            let n = trials.max(1) as f64;
            pairs.push(PairReach {
                from: a.name(),
                to: b.name(),
                trials,
                direct: times.len() as f64 / n,
                unreachable: (trials as usize - times.len()) as f64 / n,
                time_ms_p50: quantile_ms(&times, 0.5),
                time_ms_p99: quantile_ms(&times, 0.99),
            });
        }
    }
    NatMatrix { introductions, pairs }
}

/// One trial: how long the child behind `a` took to open a session with the child behind
/// `b`, or `None` if it did not within [`REACH_WAIT`].
pub fn trial(seed: u64, a: NatKind, b: NatKind, introductions: bool) -> Option<Duration> {
    let mut sim = Simulation::new(seed);
    sim.keep_events = false;
    // No DHT: its traffic would open NAT mappings between the two before the measured dial.
    sim.tune = if introductions {
        |c| OverlayConfig { dht: c.dht.enabled(false), introduce_after: Some(INTRODUCE_AFTER), ..c }
    } else {
        |c| OverlayConfig { dht: c.dht.enabled(false), introduce_after: None, ..c }
    };
    sim.master_cfg.dht = sim.master_cfg.dht.clone().enabled(false);
    sim.set_nat(1, a);
    sim.set_nat(2, b);
    sim.set_nat(3, NatKind::None);
    let helper = sim.add(3);
    sim.run_until(Duration::from_secs(30), |s| s.all_present());
    let nodes: Vec<usize> = [1, 1, 2, 2].into_iter().map(|s| sim.add(s)).collect();
    sim.run_until(Duration::from_secs(60), |s| {
        s.all_present() && nodes.iter().chain([&helper]).all(|&i| s.node(i).nat_checked())
    });
    let child = |sim: &Simulation, pair: &[usize]| {
        pair.iter().copied().find(|&i| sim.node(i).state() == NodeState::HasLsn)
    };
    let (from, to) = (child(&sim, &nodes[..2])?, child(&sim, &nodes[2..])?);
    let target = sim.id(to);
    let addr = sim.node(to).observed_addr()?;
    let start = sim.now;
    sim.node_do(from, |n, now| n.reach(now, target, addr));
    let step = Duration::from_millis(10);
    while sim.now.saturating_since(start) < REACH_WAIT {
        if sim.node(from).endpoint().is_connected(&target) {
            return Some(sim.now.saturating_since(start));
        }
        sim.run_for(step);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Mapping;

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
        assert_eq!(shown, 6, "every node's class is in the topology");
    }

    #[test]
    fn an_introduction_opens_sessions_that_a_plain_dial_cannot() {
        use NatKind::{AddressRestricted, PortRestricted};
        for (a, b) in [(PortRestricted, PortRestricted), (AddressRestricted, PortRestricted)] {
            assert_eq!(trial(11, a, b, false), None, "{a:?} -> {b:?} without introductions");
            let took = trial(11, a, b, true).unwrap_or_else(|| panic!("{a:?} -> {b:?}"));
            assert!(took < Duration::from_secs(2), "{a:?} -> {b:?} took {took:?}");
        }
    }

    #[test]
    fn connection_reversal_when_the_dialler_takes_inbound() {
        // A full-cone dialler takes unsolicited inbound: the master only tells the target
        // to dial it.
        let took = trial(12, NatKind::EndpointIndependent, NatKind::PortRestricted, true);
        assert!(took.is_some_and(|t| t < Duration::from_secs(2)), "{took:?}");
    }

    #[test]
    fn symmetric_to_symmetric_still_fails_without_a_relay() {
        assert_eq!(trial(13, NatKind::Symmetric, NatKind::Symmetric, true), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_trial() {
        let a = trial(14, NatKind::PortRestricted, NatKind::AddressRestricted, true);
        let b = trial(14, NatKind::PortRestricted, NatKind::AddressRestricted, true);
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}
