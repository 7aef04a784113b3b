//! A view: what one thread may change during a window (a range of slots, subnets and their
//! lanes, and the master with lane 0), and the event handling that runs through it: delivery,
//! timers, the node's output, and the way a datagram travels (LAN or WAN, NAT, firewalls,
//! loss, bandwidth).

use std::{cmp::Reverse, net::SocketAddr};

use rand::Rng;

use super::{
    lane::{fnv, InFlight, Lane, Logged, Shared, Target},
    master_addr,
    nat::NatKind,
    network::{self, Subnet},
    stats::{LinkClass, RateMeter, Role, WanKind},
    Slot,
};
use crate::{
    dht::StoreOp,
    discovery::{Candidate, DiscoveryRequest, Source},
    overlay::{Master, MasterEvent, NodeEvent, NodeState, REQUESTS_TABLE},
    wire::ResponseStatus,
    Path, Timestamp, Transmit,
};

/// The master's part of the state, for the view that holds lane 0.
pub(super) struct MasterView<'a> {
    pub(super) master: &'a mut Option<Master>,
    pub(super) deadline: &'a mut Option<Timestamp>,
    pub(super) events: &'a mut Vec<(Timestamp, MasterEvent)>,
    pub(super) rate: &'a mut RateMeter,
}

/// What one thread may change: a range of slots, of subnets and of lanes (the same subnets'),
/// and the master if lane 0 is among them.
pub(super) struct View<'a> {
    pub(super) slots: &'a mut [Slot],
    pub(super) slot0: usize,
    pub(super) deadlines: &'a mut [Option<Timestamp>],
    pub(super) meters: &'a mut [RateMeter],
    pub(super) subnets: &'a mut [Subnet],
    pub(super) lanes: &'a mut [Lane],
    /// The first subnet and lane of the view (lane `l` is subnet `l`'s).
    pub(super) lane0: usize,
    pub(super) master: Option<MasterView<'a>>,
    pub(super) shared: &'a Shared<'a>,
    /// The simulation's time when the view was made: every lane's clock starts there.
    pub(super) base: Timestamp,
    pub(super) now: Timestamp,
    /// The latest event time handled.
    pub(super) latest: Option<Timestamp>,
    /// Lanes touched (see [`Lane::dirty`]).
    pub(super) touched: Vec<usize>,
    scratch: Vec<Transmit>,
}

impl<'a> View<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        slots: &'a mut [Slot],
        slot0: usize,
        deadlines: &'a mut [Option<Timestamp>],
        meters: &'a mut [RateMeter],
        subnets: &'a mut [Subnet],
        lanes: &'a mut [Lane],
        lane0: usize,
        master: Option<MasterView<'a>>,
        shared: &'a Shared<'a>,
        now: Timestamp,
    ) -> Self {
        debug_assert!(!shared.lanes || lanes.len() == subnets.len(), "a lane per subnet");
        View {
            slots,
            slot0,
            deadlines,
            meters,
            subnets,
            lanes,
            lane0,
            master,
            shared,
            base: now,
            now,
            latest: None,
            touched: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn slot(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i - self.slot0]
    }

    pub(super) fn lane(&mut self, l: usize) -> &mut Lane {
        let lane = &mut self.lanes[l - self.lane0];
        if !lane.dirty {
            lane.dirty = true;
            self.touched.push(l);
        }
        lane
    }

    /// Subnet `s` if this view holds it.
    fn subnet_mut(&mut self, s: u16) -> Option<&mut Subnet> {
        let k = usize::from(s).checked_sub(self.lane0)?;
        self.subnets.get_mut(k)
    }

    /// When lane `l`'s next event is due. A deadline already past is due at the lane's own
    /// time: a lane's time never goes back.
    pub(super) fn lane_next(&self, l: usize) -> Option<Timestamp> {
        let master = if l == 0 { self.master.as_ref().and_then(|m| *m.deadline) } else { None };
        let lane = &self.lanes[l - self.lane0];
        lane.next(master).map(|t| t.max(lane.clock).max(self.base))
    }

    /// Handles every event of lane `l` due before `before`.
    pub(super) fn run(&mut self, l: usize, before: Timestamp) {
        while self.step(l, before) {}
    }

    /// Handles everything due at lane `l`'s earliest time if that is before `before`: one
    /// datagram, or the master's timer and every node timer due then. False when nothing is.
    pub(super) fn step(&mut self, l: usize, before: Timestamp) -> bool {
        let master = if l == 0 { self.master.as_ref().and_then(|m| *m.deadline) } else { None };
        let Some(next) = self.lane_next(l) else { return false };
        if next >= before {
            return false;
        }
        // Each lane keeps its own time: another lane of this view may have run further.
        self.now = next;
        self.latest = self.latest.max(Some(self.now));
        let now = self.now;
        let lane = self.lane(l);
        lane.clock = now;
        if lane.queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Reverse(d) = lane.queue.pop().expect("peeked");
            if d.downlink {
                self.downlink(l, d);
            } else {
                self.deliver(l, d.src, d.target, d.path, d.bytes);
            }
            return true;
        }
        if master.is_some_and(|t| t <= now) {
            if let Some(m) = self.master.as_mut().and_then(|m| m.master.as_mut()) {
                m.handle_timeout(now);
                self.lane(0).tally.events += 1;
            }
            self.drain(None);
        }
        // Every node whose deadline has come, earliest (then lowest index) first.
        let mut handled: Vec<usize> = Vec::new();
        while let Some(&(t, i)) = self.lanes[l - self.lane0].timers.first() {
            if t > now {
                break;
            }
            // A machine that leaves its deadline in the past after handling it would make a
            // driver spin forever; fail loudly instead of hanging.
            assert!(
                !handled.contains(&i),
                "node {i} keeps its deadline {t:?} due at {now:?}: a driver would spin"
            );
            handled.push(i);
            if let Some(n) = self.slot(i).node.as_mut() {
                n.handle_timeout(now);
                self.lane(l).tally.events += 1;
            }
            self.drain(Some(i));
        }
        true
    }

    /// A datagram reached subnet `l`'s downlink: it queues there, then is delivered.
    fn downlink(&mut self, l: usize, mut d: InFlight) {
        let (net, len) = (self.shared.net, d.bytes.len());
        let Some(sub) = self.subnet_mut(l as u16) else { return };
        let at = net.downlink(d.at, len, sub);
        if at > d.at {
            d.at = at;
            d.downlink = false;
            self.lane(l).queue.push(Reverse(d));
        } else {
            self.deliver(l, d.src, d.target, d.path, d.bytes);
        }
    }

    /// Refiles node `i`'s next deadline after anything touched it.
    pub(super) fn reschedule(&mut self, i: usize) {
        let l = self.shared.slot_lane(i);
        let old = self.deadlines[i - self.slot0].take();
        let next = self.slot(i).node.as_ref().and_then(|n| n.poll_timeout());
        let lane = self.lane(l);
        if let Some(old) = old {
            lane.timers.remove(&(old, i));
        }
        if let Some(t) = next {
            lane.timers.insert((t, i));
        }
        self.deadlines[i - self.slot0] = next;
    }

    /// Sends one datagram from node `from` (`None`: the master) to `dst` through the model:
    /// LAN or WAN, NAT on the way out, bandwidth, loss, cuts. A datagram with a TTL
    /// ([`Transmit::ttl`](crate::Transmit::ttl)) crosses the sender's NAT, which maps it, and
    /// dies before the WAN (the model has no hops; the TTL is meant to end just there).
    fn send(&mut self, from: Option<usize>, t: crate::Transmit) {
        let crate::Transmit { dst, path, payload: bytes, ttl } = t;
        let now = self.now;
        let shared = self.shared;
        let (src, src_subnet, role, l) = match from {
            Some(i) => {
                let s = &self.slots[i - self.slot0];
                let role = s.node.as_ref().map_or(Role::Other, |n| Role::of(n.state()));
                let (addr, subnet) = (s.addr, s.subnet());
                self.meters[i - self.slot0].tick(now);
                (addr, Some(subnet), role, shared.slot_lane(i))
            }
            None => {
                if let Some(m) = self.master.as_mut() {
                    m.rate.tick(now);
                }
                (master_addr(), None, Role::Master, 0)
            }
        };
        let (target, dst_subnet) = if dst == master_addr() {
            (Target::Master, None)
        } else if let Some(j) = shared.by_addr.get(&dst) {
            (Target::Node(j), Some(shared.place[j]))
        } else if let Some(s) = network::subnet_of_public(dst.ip()) {
            (Target::Nat(s, dst.port()), Some(s))
        } else {
            return; // Nobody there.
        };
        let lan = src_subnet.is_some() && src_subnet == dst_subnet && target != Target::Master;
        let class = if lan { LinkClass::Lan } else { LinkClass::Wan };
        let tally = &mut self.lane(l).tally;
        match class {
            LinkClass::Lan => tally.lan.add(bytes.len()),
            LinkClass::Wan => {
                tally.wan.add(bytes.len());
                let with_master = from.is_none() || target == Target::Master;
                tally.wan_by_kind[WanKind::of(&bytes, with_master) as usize].add(bytes.len());
            }
        }
        tally.by_role[role.index()].add(bytes.len());
        if !shared.cut.is_empty() && shared.cut.contains(&(src, dst)) {
            return;
        }
        if path == Path::Udp && !self.udp_passes(from, target, src_subnet, dst_subnet, lan) {
            return;
        }
        if path == Path::Udp && shared.net.loss > 0.0 && self.lane(l).rng.gen_bool(shared.net.loss)
        {
            return;
        }
        let info = |s: Option<u16>| s.and_then(|s| shared.info.get(usize::from(s)));
        let (seen, at, downlink) = if lan {
            (src, now + shared.net.lan, false)
        } else {
            // A private address behind another subnet's NAT is not routable from outside.
            if let (Target::Node(_), Some(d)) = (target, info(dst_subnet)) {
                if d.nat != NatKind::None {
                    return;
                }
            }
            let (net, len) = (shared.net, bytes.len());
            let (seen, left) = match src_subnet.and_then(|s| self.subnet_mut(s)) {
                Some(sub) => (sub.nat.outbound(now, src, dst), net.uplink(now, len, sub)),
                None => (src, now),
            };
            if ttl.is_some() {
                return;
            }
            let offsets = info(src_subnet).map_or(0, |i| i.wan_offset_us)
                + info(dst_subnet).map_or(0, |i| i.wan_offset_us);
            let arrive = left + net.one_way(offsets);
            match dst_subnet {
                // One lane: the receiver's link is ours to queue on now.
                Some(d) if !shared.lanes => match self.subnet_mut(d) {
                    Some(sub) => (seen, net.downlink(arrive, len, sub), false),
                    None => (seen, arrive, false),
                },
                Some(_) => (seen, arrive, net.subnet_bandwidth.is_some()),
                None => (seen, arrive, false),
            }
        };
        let to = shared.lane_of(target);
        let lane = self.lane(l);
        let key = lane.key();
        let d = InFlight { at, key, src: seen, target, path, bytes, downlink };
        if to == l {
            lane.queue.push(Reverse(d));
        } else {
            lane.out.push((to, d));
        }
    }

    /// Whether the firewalls on the way let a UDP datagram through: the sender's own, the
    /// receiver's own (known now unless it sits behind a NAT: see `deliver`), and for WAN
    /// traffic the subnets' edge firewalls.
    fn udp_passes(
        &self,
        from: Option<usize>,
        target: Target,
        src_subnet: Option<u16>,
        dst_subnet: Option<u16>,
        lan: bool,
    ) -> bool {
        let blocks = self.shared.udp_blocks;
        if from.and_then(|i| blocks.get(&i)).is_some_and(|b| b.outbound) {
            return false;
        }
        if let Target::Node(j) = target {
            if blocks.get(&j).is_some_and(|b| b.inbound) {
                return false;
            }
        }
        let info = self.shared.info;
        let edge = |s: Option<u16>| {
            s.and_then(|s| info.get(usize::from(s))).is_some_and(|i| i.udp_blocked)
        };
        lan || !(edge(src_subnet) || edge(dst_subnet))
    }

    /// Delivers a datagram that has arrived in lane `l`.
    fn deliver(&mut self, l: usize, src: SocketAddr, target: Target, path: Path, bytes: Vec<u8>) {
        let now = self.now;
        let shared = self.shared;
        let slot = match target {
            Target::Master => None,
            Target::Node(j) => Some(j),
            Target::Nat(s, port) => {
                let Some(private) =
                    self.subnet_mut(s).and_then(|sub| sub.nat.inbound(now, src, port))
                else {
                    return;
                };
                match shared.by_addr.get(&private) {
                    Some(j) if shared.place[j] == s => {
                        let deaf = shared.udp_blocks.get(&j).is_some_and(|b| b.inbound);
                        if path == Path::Udp && deaf {
                            return;
                        }
                        Some(j)
                    }
                    _ => return,
                }
            }
        };
        let words = |dst: u64| {
            let ip = match src.ip() {
                std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
                std::net::IpAddr::V6(v6) => u128::from(v6) as u64,
            };
            [now.as_micros(), ip << 16 | u64::from(src.port()), dst, bytes.len() as u64]
        };
        match slot {
            None => {
                let Some(mv) = self.master.as_mut() else { return };
                let Some(m) = mv.master.as_mut() else { return };
                mv.rate.tick(now);
                m.handle_datagram_on(now, src, path, &bytes);
                let tally = &mut self.lane(l).tally;
                tally.delivered += 1;
                tally.trace = fnv(tally.trace, &words(u64::MAX));
                tally.events += 1;
                self.drain(None);
            }
            Some(j) => {
                let Some(n) = self.slot(j).node.as_mut() else { return };
                n.handle_datagram_on(now, src, path, &bytes);
                self.meters[j - self.slot0].tick(now);
                let tally = &mut self.lane(l).tally;
                tally.delivered += 1;
                tally.trace = fnv(tally.trace, &words(j as u64));
                tally.events += 1;
                self.drain(Some(j));
            }
        }
    }

    /// Collects what host `i` (or the master, for `None`) produced, and refiles its deadline.
    pub(super) fn drain(&mut self, i: Option<usize>) {
        self.drain_outputs(i);
        match i {
            Some(i) => self.reschedule(i),
            None => {
                if let Some(mv) = self.master.as_mut() {
                    *mv.deadline = mv.master.as_ref().and_then(|m| m.poll_timeout());
                    self.lane(0);
                }
            }
        }
    }

    fn drain_outputs(&mut self, i: Option<usize>) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.scratch);
        match i {
            None => {
                let keep = self.shared.keep_master_events;
                let Some(mv) = self.master.as_mut() else { return };
                let Some(m) = mv.master.as_mut() else { return };
                while let Some(t) = m.poll_transmit() {
                    out.push(t);
                }
                let mut log = Vec::new();
                while let Some(e) = m.poll_event() {
                    match &e {
                        MasterEvent::Presence(p) => log.push((now, Logged::Presence(p.clone()))),
                        MasterEvent::QueryEnded { id, outcome } => {
                            log.push((now, Logged::Query(*id, outcome.clone())))
                        }
                        _ => {}
                    }
                    if keep {
                        mv.events.push((now, e));
                    }
                }
                self.lane(0).log.extend(log);
                for t in out.drain(..) {
                    self.send(None, t);
                }
            }
            Some(i) => {
                let keep = self.shared.keep_events;
                let answer = self.shared.answer_requests;
                let l = self.shared.slot_lane(i);
                let slot = self.slot(i);
                let id = slot.id();
                let Some(n) = slot.node.as_mut() else { return };
                let mut discover = false;
                while let Some(t) = n.poll_transmit() {
                    out.push(t);
                }
                while let Some(r) = n.poll_request() {
                    discover |= r == DiscoveryRequest::Discover;
                }
                let mut log = Vec::new();
                let mut answers = Vec::new();
                while let Some(e) = n.poll_event() {
                    match &e {
                        NodeEvent::Dht(d) => log.push((now, Logged::Dht(i, d.clone()))),
                        NodeEvent::JoinedLsn { .. } | NodeEvent::BecameLsn { .. } => {
                            log.push((now, Logged::Node(id, e.clone())))
                        }
                        NodeEvent::Request { id: r, kind, body } => {
                            // The daemon's `history` handler; anything else gets an empty OK.
                            let answer = if kind == super::HISTORY_KIND {
                                match super::metrics::answer_body(&slot.history, body) {
                                    Ok(b) => (ResponseStatus::OK, b),
                                    Err(why) => (ResponseStatus::FAILED, why.into_bytes()),
                                }
                            } else {
                                (ResponseStatus::OK, Vec::new())
                            };
                            answers.push((*r, answer));
                            log.push((now, Logged::Node(id, e.clone())));
                        }
                        _ => {}
                    }
                    if keep {
                        slot.events.push((now, e));
                    }
                }
                if answer {
                    for (r, (status, body)) in answers {
                        let _ = n.respond(now, r, status, body);
                    }
                    while let Some(t) = n.poll_transmit() {
                        out.push(t);
                    }
                    // What the daemon would write to its store.
                    while let Some(op) = n.poll_store() {
                        match op {
                            StoreOp::Put { table, key, value } if table == REQUESTS_TABLE => {
                                slot.requests_saved.insert(key, value);
                            }
                            StoreOp::Remove { table, key } if table == REQUESTS_TABLE => {
                                slot.requests_saved.remove(&key);
                            }
                            _ => {}
                        }
                    }
                }
                if !log.is_empty() {
                    self.lane(l).log.extend(log);
                }
                for t in out.drain(..) {
                    self.send(Some(i), t);
                }
                if discover {
                    let found = self.lan_lsns(i);
                    if let Some(n) = self.slot(i).node.as_mut() {
                        n.handle_candidates(now, found);
                    }
                    self.scratch = out;
                    self.drain(Some(i));
                    return;
                }
            }
        }
        self.scratch = out;
    }

    /// What a LAN broadcast from node `i` would find: the live LSNs of its subnet that it can
    /// reach.
    fn lan_lsns(&mut self, i: usize) -> Vec<Candidate> {
        let src = self.slots[i - self.slot0].addr;
        let s = self.slots[i - self.slot0].subnet();
        let Some(sub) = self.subnet_mut(s) else { return Vec::new() };
        let members = std::mem::take(&mut sub.members);
        let found = members
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| &self.slots[j - self.slot0])
            .filter(|s| {
                !self.shared.cut.contains(&(s.addr, src))
                    && s.node.as_ref().is_some_and(|n| n.state() == NodeState::IsLsn)
            })
            .map(|s| Candidate { addr: s.addr, id: None, source: Source::Lan })
            .collect();
        if let Some(sub) = self.subnet_mut(s) {
            sub.members = members;
        }
        found
    }
}
