//! Lanes of events under [`Simulation`](super::Simulation) (a thread works through a view of
//! them: `view.rs`).
//!
//! A *lane* holds the events of one part of the network: its datagrams in flight, its nodes'
//! timers, its random stream and what it counted. By default one lane holds everything and
//! events run one at a time in time order. With [`Simulation::parallel`] every subnet gets
//! its own lane and the master lane 0. Inside a subnet, datagrams take the LAN's latency;
//! between lanes they take at least half the WAN latency (the *lookahead*). So within a
//! lookahead no lane can affect another, and lanes can run on different threads
//! (`advance.rs`). What crosses lanes (datagrams for other lanes, counters, events the
//! accounting times) is merged in lane order, so a run is the same whatever the number of
//! threads.
//!
//! [`Simulation::parallel`]: super::Simulation::parallel

use std::{
    cmp::{Ordering, Reverse},
    collections::{BTreeSet, BinaryHeap, HashMap, HashSet},
    net::SocketAddr,
};

use super::{nat::NatKind, network::NetModel, stats::Traffic, UdpBlock};
use crate::{
    overlay::{NodeEvent, PresenceEvent},
    NodeId, Path, Timestamp,
};

/// Where a datagram in flight is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Master,
    Node(usize),
    /// A NAT's public address and port: the NAT decides on arrival.
    Nat(u16, u16),
}

/// A datagram in flight, ordered by arrival, then by its key (the sending lane and that
/// lane's sequence number: unique, and the same on every run).
pub(super) struct InFlight {
    pub(super) at: Timestamp,
    pub(super) key: u64,
    /// The source as the receiver sees it (after the sender's NAT).
    pub(super) src: SocketAddr,
    pub(super) target: Target,
    pub(super) path: Path,
    pub(super) bytes: Vec<u8>,
    /// It still has to queue on the receiving subnet's downlink (lanes: the sender cannot
    /// touch another lane's link, so the receiver applies it on arrival).
    pub(super) downlink: bool,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.key) == (other.at, other.key)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.key).cmp(&(other.at, other.key))
    }
}

/// What a lane counted since the last merge.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) lan: Traffic,
    pub(super) wan: Traffic,
    pub(super) wan_by_kind: [Traffic; 5],
    pub(super) by_role: [Traffic; 4],
    pub(super) delivered: u64,
    /// FNV-1a over this window's deliveries (time, addresses, length).
    pub(super) trace: u64,
    pub(super) events: u64,
}

/// Something the accounting times across lanes, applied between windows in time order.
pub(super) enum Logged {
    Presence(PresenceEvent),
    Node(NodeId, NodeEvent),
    Dht(usize, crate::dht::DhtEvent),
    Query(crate::overlay::RequestId, crate::overlay::QueryOutcome),
}

/// One lane: see the module docs.
pub(super) struct Lane {
    pub(super) queue: BinaryHeap<Reverse<InFlight>>,
    /// Its running nodes' next deadlines, with their slots.
    pub(super) timers: BTreeSet<(Timestamp, usize)>,
    pub(super) rng: rand_chacha::ChaCha8Rng,
    index: u64,
    seq: u64,
    /// Datagrams for other lanes, with their lane, sent since the last merge.
    pub(super) out: Vec<(usize, InFlight)>,
    pub(super) tally: Tally,
    pub(super) log: Vec<(Timestamp, Logged)>,
    /// Touched since the last merge: its counters, log and next event time need a look.
    pub(super) dirty: bool,
    /// The time of its latest event: a node may leave a deadline in the past, due at once,
    /// and the lane's time must not go back for it (what it sends would leave in the past).
    pub(super) clock: Timestamp,
}

/// FNV-1a's offset basis.
pub(super) const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `words` into the FNV-1a hash `h`.
pub(super) fn fnv(mut h: u64, words: &[u64]) -> u64 {
    for w in words {
        for b in w.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

impl Lane {
    pub(super) fn new(index: usize, rng: rand_chacha::ChaCha8Rng) -> Self {
        Lane {
            queue: BinaryHeap::new(),
            timers: BTreeSet::new(),
            rng,
            index: index as u64,
            seq: 0,
            out: Vec::new(),
            tally: Tally { trace: FNV_BASIS, ..Tally::default() },
            log: Vec::new(),
            dirty: false,
            clock: Timestamp::ZERO,
        }
    }

    /// When its next event is due (`master`: the master's deadline, for the master's lane).
    pub(super) fn next(&self, master: Option<Timestamp>) -> Option<Timestamp> {
        let q = self.queue.peek().map(|Reverse(d)| d.at);
        let n = self.timers.first().map(|(t, _)| *t);
        [q, master, n].into_iter().flatten().min()
    }

    pub(super) fn key(&mut self) -> u64 {
        self.seq += 1;
        self.index << 44 | self.seq
    }

    /// Files a datagram from another lane.
    pub(super) fn receive(&mut self, d: InFlight) {
        self.queue.push(Reverse(d));
        self.dirty = true;
    }

    /// Moves the datagrams for slot `i` to `to` (it moved to another subnet).
    pub(super) fn hand_over(&mut self, i: usize, to: &mut Lane) {
        let (mine, theirs): (Vec<_>, Vec<_>) =
            self.queue.drain().partition(|Reverse(d)| d.target != Target::Node(i));
        self.queue = mine.into_iter().collect();
        for Reverse(d) in theirs {
            to.receive(d);
        }
    }
}

/// The parts of a subnet that other lanes read: kept beside the subnet, which only its own
/// lane may change.
#[derive(Clone, Copy, Debug)]
pub(super) struct SubnetInfo {
    pub(super) nat: NatKind,
    pub(super) udp_blocked: bool,
    pub(super) wan_offset_us: i64,
}

/// What every lane reads and none changes during a window.
pub(super) struct Shared<'a> {
    pub(super) by_addr: &'a super::network::AddrBook,
    pub(super) cut: &'a HashSet<(SocketAddr, SocketAddr)>,
    pub(super) udp_blocks: &'a HashMap<usize, UdpBlock>,
    pub(super) net: &'a NetModel,
    pub(super) keep_events: bool,
    /// Whether the master's events are kept (`keep_events` or `keep_master_events`).
    pub(super) keep_master_events: bool,
    /// Nodes answer the requests they take at once.
    pub(super) answer_requests: bool,
    /// Each slot's subnet.
    pub(super) place: &'a [u16],
    /// Indexed by subnet.
    pub(super) info: &'a [SubnetInfo],
    /// One lane per subnet (else one for everything).
    pub(super) lanes: bool,
}

impl Shared<'_> {
    pub(super) fn lane_of(&self, target: Target) -> usize {
        match target {
            _ if !self.lanes => 0,
            Target::Master => 0,
            Target::Node(j) => usize::from(self.place[j]),
            Target::Nat(s, _) => usize::from(s),
        }
    }

    pub(super) fn slot_lane(&self, i: usize) -> usize {
        if self.lanes {
            usize::from(self.place[i])
        } else {
            0
        }
    }
}

impl Traffic {
    pub(super) fn add_all(&mut self, other: &Traffic) {
        self.datagrams += other.datagrams;
        self.bytes += other.bytes;
    }
}
