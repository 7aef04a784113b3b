//! What a simulation counts: traffic per link class and role, per-host message rates, and the
//! latencies of joins, LSN failovers and moves, measured from the master's presence events
//! (and the children's own rejoin after a failover, from their events).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use super::NatKind;
use crate::{
    dht::{DhtEvent, QueryId},
    overlay::{NodeEvent, NodeState, PresenceEvent},
    NodeId, Timestamp,
};

/// Bytes on the wire per datagram beyond the payload: an IPv4 and a UDP header.
pub const HEADER_BYTES: u64 = 28;

/// Where a datagram travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkClass {
    /// Inside one subnet.
    Lan,
    /// Between subnets, or to and from the master.
    Wan,
}

/// What a host was when it sent or received a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The master.
    Master,
    /// A local super node.
    Lsn,
    /// A child of an LSN.
    Child,
    /// Anything else: starting, looking for an LSN, joining.
    Other,
}

impl Role {
    /// The role of a node in `state`.
    pub fn of(state: NodeState) -> Role {
        match state {
            NodeState::IsLsn => Role::Lsn,
            NodeState::HasLsn => Role::Child,
            _ => Role::Other,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// What a WAN datagram carried, for the report's breakdown of the WAN bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WanKind {
    /// A handshake message (every session opened costs at least two).
    Handshake = 0,
    /// A sealed frame to or from the master.
    Master = 1,
    /// A sealed frame between nodes of at most [`WanKind::SMALL`] bytes: keepalives, acks.
    PeerSmall = 2,
    /// A larger sealed frame between nodes.
    Peer = 3,
    /// Probes, cookie replies, stale-session notices.
    Other = 4,
}

impl WanKind {
    /// The largest datagram counted as [`WanKind::PeerSmall`]: a sealed frame of up to 16
    /// bytes of message.
    pub const SMALL: usize = crate::secure::DATA_OVERHEAD + 16;

    pub(super) fn of(datagram: &[u8], with_master: bool) -> WanKind {
        use crate::secure::PacketKind;
        match PacketKind::of(datagram) {
            PacketKind::Handshake => WanKind::Handshake,
            PacketKind::Data if with_master => WanKind::Master,
            PacketKind::Data if datagram.len() <= Self::SMALL => WanKind::PeerSmall,
            PacketKind::Data => WanKind::Peer,
            PacketKind::Other => WanKind::Other,
        }
    }
}

/// Datagrams and their bytes (payload plus [`HEADER_BYTES`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams.
    pub datagrams: u64,
    /// Bytes, headers included.
    pub bytes: u64,
}

impl Traffic {
    pub(super) fn add(&mut self, payload: usize) {
        self.datagrams += 1;
        self.bytes += payload as u64 + HEADER_BYTES;
    }
}

/// Messages (datagrams sent plus received) of one host per simulated second: the current
/// second's count, the busiest second so far and the total.
#[derive(Clone, Copy, Debug, Default)]
pub struct RateMeter {
    second: u64,
    count: u32,
    /// The busiest second so far.
    pub peak: u32,
    /// When it began (protocol time, seconds).
    pub peak_at: u64,
    /// Every message counted.
    pub total: u64,
}

impl RateMeter {
    /// Counts one message at `now`.
    pub fn tick(&mut self, now: Timestamp) {
        let second = now.as_micros() / 1_000_000;
        if second != self.second {
            self.second = second;
            self.count = 0;
        }
        self.count += 1;
        self.total += 1;
        if self.count > self.peak {
            self.peak = self.count;
            self.peak_at = second;
        }
    }
}

/// A failover being timed: the LSN crashed at `since`; `waiting` are its children not yet
/// present under another LSN at the master, `rejoining` those not yet joined to one (or
/// become one) themselves.
#[derive(Clone, Debug)]
struct Failover {
    since: Timestamp,
    old: NodeId,
    waiting: HashSet<NodeId>,
    rejoining: HashSet<NodeId>,
    /// `waiting` emptied (the recovery was counted).
    recovered: bool,
    /// `rejoining` emptied (the rejoin was counted).
    rejoined: bool,
}

/// Everything a [`Simulation`](super::Simulation) counts. All durations are simulated time.
#[derive(Clone, Debug, Default)]
pub struct Accounting {
    /// Inside subnets.
    pub lan: Traffic,
    /// Between subnets and to or from the master.
    pub wan: Traffic,
    /// The WAN traffic by what it carried (index with `WanKind as usize`).
    pub wan_by_kind: [Traffic; 5],
    /// Sent, per role of the sender (see [`Role`]; index with `Role as usize`).
    pub sent_by_role: [Traffic; 4],
    /// The master's message rate.
    pub master_rate: RateMeter,
    /// Every node's message rate, by slot.
    pub node_rate: Vec<RateMeter>,
    /// Node start → present at the master. Starts while the master is down, or while it still
    /// lists the node present from before a crash it has not noticed, are not timed.
    pub joins: Vec<Duration>,
    /// LSN crash → all its children present under another LSN at the master (the new LSN
    /// vouches for the children it adopted before they rejoin it).
    pub recoveries: Vec<Duration>,
    /// Failovers that had not completed within [`Accounting::FAILOVER_LIMIT`].
    pub recoveries_incomplete: u64,
    /// LSN crash → all its children actually joined to another LSN (or become one), from the
    /// nodes' own events.
    pub rejoins: Vec<Duration>,
    /// Failovers whose children had not all rejoined within [`Accounting::FAILOVER_LIMIT`].
    pub rejoins_incomplete: u64,
    /// Move to another subnet → present under an LSN of that subnet.
    pub moves: Vec<Duration>,
    /// Start → present for nodes whose subnet blocks UDP (not in `joins`).
    pub tcp_fallback: Vec<Duration>,
    /// DHT gets started through [`Simulation::dht_get`](super::Simulation::dht_get).
    pub dht: DhtStats,
    /// DHT traffic of nodes (and master instances) that have stopped; add the running ones'
    /// for the total (see [`Simulation::dht_traffic`](super::Simulation::dht_traffic)).
    pub dht_traffic_stopped: crate::dht::DhtTraffic,
    /// A hash of every delivery (time, addresses, length): equal for equal runs.
    pub trace: u64,
    /// Delivered datagrams.
    pub delivered: u64,
    /// The master's requests, as the nodes took them.
    pub requests: super::requests::RequestStats,
    /// The master's fleet-wide queries that ended: when, which, and their outcome.
    pub queries: Vec<(Timestamp, crate::overlay::RequestId, crate::overlay::QueryOutcome)>,
    pending_join: HashMap<NodeId, Timestamp>,
    tcp_nodes: HashSet<NodeId>,
    /// Queries being timed: true for a get, false for a put.
    /// DHT queries the simulation started: (slot, query) → (a get?, the asker's NAT).
    dht_pending: HashMap<(usize, QueryId), (bool, NatKind)>,
    pending_move: HashMap<NodeId, (Timestamp, u16)>,
    failovers: Vec<Failover>,
}

impl Accounting {
    /// How long a failover is waited for before it counts as incomplete.
    pub const FAILOVER_LIMIT: Duration = Duration::from_secs(120);

    pub(super) fn new() -> Self {
        Accounting { trace: 0xcbf2_9ce4_8422_2325, ..Default::default() }
    }

    pub(super) fn expect_join(&mut self, node: NodeId, since: Timestamp) {
        self.pending_join.insert(node, since);
    }

    pub(super) fn expect_move(&mut self, node: NodeId, since: Timestamp, subnet: u16) {
        self.pending_move.insert(node, (since, subnet));
    }

    pub(super) fn expect_failover(&mut self, since: Timestamp, old: NodeId, children: Vec<NodeId>) {
        if !children.is_empty() {
            let waiting: HashSet<NodeId> = children.into_iter().collect();
            let rejoining = waiting.clone();
            self.failovers.push(Failover {
                since,
                old,
                waiting,
                rejoining,
                recovered: false,
                rejoined: false,
            });
        }
    }

    /// Keeps `old`'s TCP marks (the rest of it is dropped).
    pub(super) fn adopt_marks(&mut self, old: Accounting) {
        self.tcp_nodes = old.tcp_nodes;
    }

    /// Times `node`'s joins as TCP fallbacks (its subnet blocks UDP).
    pub fn time_as_tcp(&mut self, node: NodeId) {
        self.tcp_nodes.insert(node);
    }

    pub(super) fn expect_dht(&mut self, slot: usize, query: QueryId, get: bool, nat: NatKind) {
        self.dht.lookups += u64::from(get);
        self.dht_pending.insert((slot, query), (get, nat));
    }

    /// Feeds a node's DHT event: the result of a get started by the simulation is counted.
    pub(super) fn dht_event(&mut self, slot: usize, event: &DhtEvent) {
        let Some((_, nat)) = self.dht_pending.remove(&(slot, event.query())) else { return };
        if let DhtEvent::Put { result, .. } = event {
            match result {
                Ok(n) => self.dht.put_holders.push(*n),
                Err(e) => {
                    *self.dht.failures.entry(format!("put {}", variant(e))).or_default() += 1;
                }
            }
            return;
        }
        let DhtEvent::Got { result, stats, .. } = event else { return };
        if let Err(e) = result {
            *self.dht.failures.entry(variant(e)).or_default() += 1;
        }
        let found = result.as_ref().is_ok_and(|r| !r.is_empty());
        let class = self.dht.by_nat.entry(nat.name()).or_default();
        class.0 += 1;
        class.1 += u64::from(found);
        if found {
            self.dht.succeeded += 1;
            if stats.hops > 0 {
                self.dht.hops.push(stats.hops);
                self.dht.latency.push(stats.elapsed);
            } else {
                self.dht.local += 1;
            }
        }
    }

    /// A node stopped: nothing it was part of can be timed any more.
    pub(super) fn forget(&mut self, now: Timestamp, slot: usize, node: &NodeId) {
        // A lookup cut short by its own node's crash is not the DHT's failure.
        let gone = self.dht_pending.iter().filter(|((s, _), (get, _))| *s == slot && *get).count();
        self.dht_pending.retain(|(s, _), _| *s != slot);
        self.dht.lookups -= gone as u64;
        self.pending_join.remove(node);
        self.pending_move.remove(node);
        for f in &mut self.failovers {
            f.waiting.remove(node);
            f.rejoining.remove(node);
        }
        self.settle_failovers(now);
    }

    /// The master went down: joins and failovers under way cannot complete on their own.
    pub(super) fn master_down(&mut self) {
        self.pending_join.clear();
        self.pending_move.clear();
        self.recoveries_incomplete += self.failovers_open() as u64;
        self.rejoins_incomplete += self.rejoins_open() as u64;
        self.failovers.clear();
    }

    /// Feeds an event of `node`: a join to (or becoming) another LSN ends its part in the
    /// failovers being timed.
    pub(super) fn node_event(&mut self, now: Timestamp, node: &NodeId, event: &NodeEvent) {
        let lsn = match event {
            NodeEvent::JoinedLsn { lsn } => *lsn,
            NodeEvent::BecameLsn { .. } => *node,
            NodeEvent::Request { id, .. } => return self.requests.took(now, node, *id),
            _ => return,
        };
        let mut changed = false;
        for f in self.failovers.iter_mut().filter(|f| f.old != lsn) {
            changed |= f.rejoining.remove(node);
        }
        if changed {
            self.settle_failovers(now);
        }
    }

    /// Feeds a presence event; `subnet_of` names the subnet a node (an LSN) is in.
    pub(super) fn presence(
        &mut self,
        now: Timestamp,
        event: &PresenceEvent,
        subnet_of: impl Fn(&NodeId) -> Option<u16>,
    ) {
        let (node, lsn) = match event {
            PresenceEvent::Joined { node, lsn } => (node, lsn),
            PresenceEvent::Moved { node, to, .. } | PresenceEvent::Rerouted { node, to, .. } => {
                (node, to)
            }
            _ => return,
        };
        if let Some(since) = self.pending_join.remove(node) {
            let took = now.saturating_since(since);
            if self.tcp_nodes.contains(node) {
                self.tcp_fallback.push(took);
            } else {
                self.joins.push(took);
            }
        }
        if let Some(&(since, subnet)) = self.pending_move.get(node) {
            if subnet_of(lsn) == Some(subnet) {
                self.pending_move.remove(node);
                self.moves.push(now.saturating_since(since));
            }
        }
        for f in &mut self.failovers {
            if *lsn != f.old {
                f.waiting.remove(node);
            }
        }
        self.settle_failovers(now);
    }

    fn settle_failovers(&mut self, now: Timestamp) {
        let limit = Self::FAILOVER_LIMIT;
        let mut i = 0;
        while i < self.failovers.len() {
            let f = &mut self.failovers[i];
            let took = now.saturating_since(f.since);
            if f.waiting.is_empty() && !f.recovered {
                f.recovered = true;
                self.recoveries.push(took);
            }
            if f.rejoining.is_empty() && !f.rejoined {
                f.rejoined = true;
                self.rejoins.push(took);
            }
            if (f.recovered && f.rejoined) || took > limit {
                self.recoveries_incomplete += u64::from(!f.recovered);
                self.rejoins_incomplete += u64::from(!f.rejoined);
                self.failovers.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Failovers whose recovery is still being timed (children not all present yet).
    pub fn failovers_open(&self) -> usize {
        self.failovers.iter().filter(|f| !f.recovered).count()
    }

    /// Failovers whose rejoin is still being timed (children not all rejoined yet).
    pub fn rejoins_open(&self) -> usize {
        self.failovers.iter().filter(|f| !f.rejoined).count()
    }
}

/// DHT gets timed by the simulation.
#[derive(Clone, Debug, Default)]
pub struct DhtStats {
    /// Gets started (on nodes that stayed up until the answer).
    pub lookups: u64,
    /// Gets that found the record.
    pub succeeded: u64,
    /// Of those, answered from the node's own store (no hops).
    pub local: u64,
    /// Hops of each successful network lookup.
    pub hops: Vec<u32>,
    /// Latency of each successful network lookup.
    pub latency: Vec<Duration>,
    /// Nodes holding each record after its put.
    pub put_holders: Vec<usize>,
    /// Failed gets (and puts, prefixed "put") by error.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Gets answered and, of those, found, by the NAT class of the asking node's subnet.
    pub by_nat: std::collections::BTreeMap<&'static str, (u64, u64)>,
}

impl DhtStats {
    /// Gets still waiting for an answer.
    pub fn pending(acc: &Accounting) -> usize {
        acc.dht_pending.values().filter(|(get, _)| *get).count()
    }
}

/// The variant name of a DHT error ("NotFound", "TimedOut", ...), for counting failures.
fn variant(e: &crate::dht::DhtError) -> String {
    let debug = format!("{e:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string()
}

/// The value at quantile `q` (0 to 1) of `values`, in milliseconds; 0 for none.
pub fn quantile_ms(values: &[Duration], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let mut ms: Vec<u64> = values.iter().map(|d| d.as_millis() as u64).collect();
    ms.sort_unstable();
    ms[((ms.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_keep_the_busiest_second() {
        let mut m = RateMeter::default();
        let t = Timestamp::from_secs(10);
        for i in 0..5 {
            m.tick(t + Duration::from_millis(i * 100));
        }
        m.tick(t + Duration::from_secs(1));
        assert_eq!((m.peak, m.total), (5, 6));
    }

    #[test]
    fn quantiles_pick_from_the_sorted_values() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51);
        assert_eq!(quantile_ms(&v, 0.99), 99);
        assert_eq!(quantile_ms(&v, 1.0), 100);
        assert_eq!(quantile_ms(&[], 0.5), 0);
    }

    #[test]
    fn a_restart_the_master_has_not_noticed_is_not_timed_as_a_join() {
        use crate::{overlay::NodeState, sim::Simulation};
        let sec = Duration::from_secs(1);
        let (mut w, _) = Simulation::settled_subnet(12, 4, Duration::ZERO);
        let timed = w.stats.joins.len();
        assert_eq!(timed, 4);
        let is_lsn = |w: &Simulation, i: usize| w.node(i).state() == NodeState::IsLsn;
        let lsn = (0..4).find(|&i| is_lsn(&w, i)).expect("an LSN");
        let child = (0..4).find(|&i| i != lsn).expect("a child");
        // Back before its LSN noticed: it rejoins the LSN the master still lists it under.
        w.crash(child);
        w.run_for(2 * sec);
        assert!(w.master().is_present(&w.id(child)));
        w.start(child);
        w.run_until(5 * sec, |w| w.node(child).state() == NodeState::HasLsn);
        w.run_for(60 * sec);
        // A failover then reroutes it: that is not the end of a join that began a minute ago.
        let old = w.id(lsn);
        w.crash(lsn);
        w.run_until(10 * sec, |w| {
            w.master().topology().lsn_of(&w.id(child)).is_some_and(|l| l != old)
        });
        w.run_for(5 * sec);
        assert!(w.master().is_present(&w.id(child)));
        assert_eq!(w.stats.joins.len(), timed, "{:?}", w.stats.joins);
        assert!(w.stats.joins.iter().all(|d| *d < 5 * sec), "{:?}", w.stats.joins);
    }

    #[test]
    fn a_failover_completes_when_every_child_is_under_another_lsn() {
        let id = |b: u8| NodeId::from_bytes([b; 20]);
        let t0 = Timestamp::from_secs(100);
        let mut a = Accounting::new();
        a.expect_failover(t0, id(1), vec![id(2), id(3)]);
        let at = |ms| t0 + Duration::from_millis(ms);
        a.presence(at(300), &PresenceEvent::Joined { node: id(2), lsn: id(2) }, |_| None);
        assert!(a.recoveries.is_empty());
        // Still under the old LSN: not recovered.
        a.presence(at(400), &PresenceEvent::Joined { node: id(3), lsn: id(1) }, |_| None);
        assert!(a.recoveries.is_empty());
        a.presence(
            at(700),
            &PresenceEvent::Rerouted { node: id(3), from: id(1), to: id(2) },
            |_| None,
        );
        assert_eq!(a.recoveries, vec![Duration::from_millis(700)]);
        assert_eq!(a.failovers_open(), 0);
    }

    #[test]
    fn a_rejoin_completes_when_every_child_joined_another_lsn_itself() {
        let id = |b: u8| NodeId::from_bytes([b; 20]);
        let t0 = Timestamp::from_secs(100);
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut a = Accounting::new();
        a.expect_failover(t0, id(1), vec![id(2), id(3), id(4)]);
        // The standby becomes the LSN and vouches for the others at once...
        a.node_event(at(600), &id(2), &NodeEvent::BecameLsn { takeover_from: Some(id(1)) });
        for n in [2, 3, 4] {
            let moved = PresenceEvent::Rerouted { node: id(n), from: id(1), to: id(2) };
            a.presence(at(800), &moved, |_| None);
        }
        assert_eq!(a.recoveries, vec![Duration::from_millis(800)]);
        assert!(a.rejoins.is_empty());
        // ...a join to the dead LSN does not count; one child rejoins, the other crashes.
        a.node_event(at(900), &id(3), &NodeEvent::JoinedLsn { lsn: id(1) });
        a.node_event(at(1000), &id(3), &NodeEvent::JoinedLsn { lsn: id(2) });
        assert!(a.rejoins.is_empty());
        assert_eq!((a.failovers_open(), a.rejoins_open()), (0, 1));
        a.forget(at(1500), 4, &id(4));
        assert_eq!(a.rejoins, vec![Duration::from_millis(1500)]);
        assert_eq!(a.rejoins_open(), 0);
    }
}
