//! Windows: how [`Simulation::step`] moves time on, and the views every run goes through.
//! Without lanes per subnet a step is one event group; with them (see `lane.rs`) a step is a
//! window shorter than the WAN's shortest latency, whose due lanes run one after the other,
//! followed by a merge in lane order. (Several threads: [`Simulation::advance`].)

use std::time::Duration;

use super::{
    lane::{fnv, Logged, Shared, FNV_BASIS},
    view::{MasterView, View},
    RateMeter, Simulation,
};
use crate::{NodeId, Timestamp};

impl Simulation {
    /// Runs `f` on a view of the whole simulation (one thread), then merges what it did.
    pub(super) fn with_view<R>(&mut self, f: impl FnOnce(&mut View<'_>) -> R) -> R {
        self.in_views(&[(0, 0)], |views| f(&mut views[0]))
    }

    /// Runs `f` on one view per part (each part's first lane and first slot, ascending from
    /// (0, 0); the first view holds the master), then merges what they did.
    pub(super) fn in_views<R>(
        &mut self,
        parts: &[(usize, usize)],
        f: impl FnOnce(&mut [View<'_>]) -> R,
    ) -> R {
        if self.stats.node_rate.len() < self.slots.len() {
            self.stats.node_rate.resize(self.slots.len(), RateMeter::default());
        }
        let Simulation {
            slots,
            deadlines,
            stats,
            subnets,
            lanes,
            master,
            master_deadline,
            master_events,
            by_addr,
            cut,
            udp_blocks,
            net,
            keep_events,
            keep_master_events,
            answer_requests,
            place,
            info,
            per_subnet,
            now,
            ..
        } = self;
        let shared = Shared {
            by_addr,
            cut,
            udp_blocks,
            net,
            keep_events: *keep_events,
            keep_master_events: *keep_events || *keep_master_events,
            answer_requests: *answer_requests,
            place,
            info,
            lanes: *per_subnet,
        };
        let mut mv = Some(MasterView {
            master,
            deadline: master_deadline,
            events: master_events,
            rate: &mut stats.master_rate,
        });
        let (mut slots, mut deadlines, mut meters) =
            (&mut slots[..], &mut deadlines[..], &mut stats.node_rate[..]);
        let (mut subnets, mut lanes) = (&mut subnets[..], &mut lanes[..]);
        let mut views = Vec::with_capacity(parts.len());
        for (p, &(lane0, slot0)) in parts.iter().enumerate() {
            let (lane_end, slot_end) =
                parts.get(p + 1).copied().unwrap_or((usize::MAX, usize::MAX));
            let take = slot_end.saturating_sub(slot0).min(slots.len());
            let (s, rest) = std::mem::take(&mut slots).split_at_mut(take);
            slots = rest;
            let (d, rest) = std::mem::take(&mut deadlines).split_at_mut(take);
            deadlines = rest;
            let (m, rest) = std::mem::take(&mut meters).split_at_mut(take);
            meters = rest;
            // Subnets are counted apart: one lane for everything still means every subnet.
            let here = lane_end.saturating_sub(lane0).min(subnets.len());
            let (sub, rest) = std::mem::take(&mut subnets).split_at_mut(here);
            let take = lane_end.saturating_sub(lane0).min(lanes.len());
            subnets = rest;
            let (ln, rest) = std::mem::take(&mut lanes).split_at_mut(take);
            lanes = rest;
            views.push(View::new(s, slot0, d, m, sub, ln, lane0, mv.take(), &shared, *now));
        }
        let r = f(&mut views);
        let mut touched = Vec::new();
        let mut latest = None;
        for mut v in views {
            touched.append(&mut v.touched);
            latest = latest.max(v.latest);
        }
        if let Some(t) = latest {
            self.now = self.now.max(t);
        }
        self.merge(touched);
        r
    }

    /// Takes in what the lanes in `touched` did since the last merge, in lane order: their
    /// counters, the events the accounting times (in time order), the datagrams for other
    /// lanes; then refiles their next event times.
    fn merge(&mut self, mut touched: Vec<usize>) {
        touched.sort_unstable();
        touched.dedup();
        let mut logs: Vec<(Timestamp, usize, usize, Logged)> = Vec::new();
        let mut receivers = Vec::new();
        for &l in &touched {
            let lane = &mut self.lanes[l];
            lane.dirty = false;
            let t = std::mem::take(&mut lane.tally);
            lane.tally.trace = FNV_BASIS;
            logs.extend(lane.log.drain(..).enumerate().map(|(k, (at, e))| (at, l, k, e)));
            let out = std::mem::take(&mut lane.out);
            let s = &mut self.stats;
            s.lan.add_all(&t.lan);
            s.wan.add_all(&t.wan);
            for (sum, x) in s.wan_by_kind.iter_mut().zip(&t.wan_by_kind) {
                sum.add_all(x);
            }
            for (sum, x) in s.sent_by_role.iter_mut().zip(&t.by_role) {
                sum.add_all(x);
            }
            s.delivered += t.delivered;
            if t.delivered > 0 {
                s.trace = fnv(s.trace, &[l as u64, t.trace]);
            }
            self.events += t.events;
            for (to, d) in out {
                self.lanes[to].receive(d);
                receivers.push(to);
            }
        }
        if logs.len() > 1 {
            logs.sort_by_key(|(at, l, k, _)| (*at, *l, *k));
        }
        for (at, _, _, e) in logs {
            match e {
                Logged::Presence(p) => {
                    let (slots, by_id) = (&self.slots, &self.by_id);
                    let subnet_of = |id: &NodeId| by_id.get(id).map(|&j| slots[j].subnet);
                    self.stats.presence(at, &p, subnet_of);
                }
                Logged::Node(id, e) => self.stats.node_event(at, &id, &e),
                Logged::Dht(i, d) => self.stats.dht_event(i, &d),
                Logged::Query(id, outcome) => self.stats.queries.push((at, id, outcome)),
            }
        }
        for l in touched.into_iter().chain(receivers) {
            self.lanes[l].dirty = false;
            self.refile(l);
        }
    }

    /// Files lane `l`'s next event time.
    pub(super) fn refile(&mut self, l: usize) {
        if let Some(old) = self.filed[l].take() {
            self.lane_next.remove(&(old, l));
        }
        let master = if l == 0 { self.master_deadline } else { None };
        if let Some(t) = self.lanes[l].next(master) {
            self.lane_next.insert((t, l));
            self.filed[l] = Some(t);
        }
    }

    /// How the lanes split over the threads, if they can: each part is a run of subnets
    /// whose nodes are a run of slots, with its share of the nodes (`balance.rs`).
    pub(super) fn parts(&mut self) -> Option<&[(usize, usize)]> {
        if self.parts_stale {
            self.parts_stale = false;
            self.parts = self.split();
        }
        self.parts.as_deref()
    }

    fn split(&self) -> Option<Vec<(usize, usize)>> {
        let (lanes, n) = (self.lanes.len(), self.slots.len());
        if !self.per_subnet || self.threads < 2 || n == 0 {
            return None;
        }
        // Lowest and highest slot of each subnet's nodes.
        let mut span = vec![(usize::MAX, 0usize); lanes];
        for (i, &s) in self.place.iter().enumerate() {
            let (lo, hi) = &mut span[usize::from(s)];
            *lo = (*lo).min(i);
            *hi = (*hi).max(i);
        }
        let mut parts = vec![(0usize, 0usize)];
        let (mut seen, mut highest) = (0usize, 0usize);
        for (l, &(lo, hi)) in span.iter().enumerate() {
            if lo == usize::MAX {
                continue;
            }
            let want = (n as f64 * self.balance.start_of(parts.len(), self.threads)) as usize;
            if parts.len() < self.threads && seen >= want && seen > 0 {
                if lo <= highest {
                    return None;
                }
                parts.push((l, lo));
            }
            if lo < parts.last().map_or(0, |p| p.1) {
                return None;
            }
            seen += hi - lo + 1;
            highest = highest.max(hi);
        }
        (parts.len() > 1).then_some(parts)
    }

    /// Handles everything due at the earliest deadline (with lanes, everything in the next
    /// window); false when nothing is due by `limit`.
    pub fn step(&mut self, limit: Timestamp) -> bool {
        let Some(&(next, _)) = self.lane_next.first() else { return false };
        if next > limit {
            return false;
        }
        let before = limit + Duration::from_micros(1);
        if !self.per_subnet {
            self.with_view(|v| v.step(0, before));
            return true;
        }
        let reach = self.net.lookahead().max(Duration::from_micros(1));
        let before = before.min(next + reach);
        let mut active = Vec::new();
        while let Some(&(t, l)) = self.lane_next.first() {
            if t >= before {
                break;
            }
            self.lane_next.pop_first();
            self.filed[l] = None;
            active.push(l);
        }
        active.sort_unstable();
        self.with_view(|v| {
            for &l in &active {
                v.run(l, before);
            }
        });
        true
    }
}
