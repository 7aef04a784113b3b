//! Advancing lanes without a barrier: how [`Simulation::advance`] runs the subnets' lanes on
//! several threads.
//!
//! Each thread owns a *part* (a run of lanes with their subnets and slots; the first part has
//! the master) for the whole call, and handles its lanes' events one at a time in time order.
//! Datagrams for another part go to that part's inbox; between lanes a datagram takes at least
//! the *lookahead* (the WAN's shortest latency). Every part publishes a *clock*: a time before
//! which it will handle no more events, hence send nothing arriving before clock + lookahead.
//! A part handles an event only if it comes before every other part's clock + lookahead, so
//! nothing can still arrive in its past: conservative parallel simulation, with the clocks as
//! its null messages. The part with the lowest clock can always go on, so the threads never
//! deadlock, and one waits for another only when it is a lookahead ahead of it.
//!
//! The parts start with as many nodes each; after every call each part's busy time moves the
//! split towards the parts that waited (`balance.rs`), since the master's part is the slowest
//! during the morning storm.
//!
//! Each lane handles exactly the same events in the same order whatever the number of parts
//! (its datagrams are ordered by arrival and key, never by when they were filed), and the
//! counters and timed events are merged once, in lane order, when the call returns. So the
//! run is the same for any number of threads.

use std::{
    cmp::Reverse,
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex, OnceLock,
    },
    thread::Thread,
    time::{Duration, Instant},
};

use super::{lane::InFlight, view::View, Simulation};
use crate::Timestamp;

/// Spins (tens of microseconds) a waiting thread does before it starts yielding its core:
/// spinning answers in nanoseconds, but a thread that spins while the one it waits for has
/// no core (more threads than free cores, as under a test runner) would hold everything up.
const SPINS_BEFORE_YIELDING: u32 = 1 << 10;

/// Yields (a few milliseconds in all) before a waiting thread parks until another part moves
/// its clock. A yield returns at once when no other thread wants the core, so on an idle
/// machine this is still a spin; parking would make the thread it waits for pay a wake-up
/// call on its next clock move, and the parked one the scheduler's latency (most waits are
/// a few tens of microseconds: the parts keep within one lookahead of each other).
const YIELDS_BEFORE_PARKING: u32 = 1 << 12;

/// What the parts of one [`Simulation::advance`] share.
struct Exchange {
    /// Per part: the time (µs) before which it handles nothing more; `u64::MAX` when done.
    clocks: Vec<AtomicU64>,
    /// Per part: datagrams from other parts, with their lane.
    inboxes: Vec<Mutex<Vec<(usize, InFlight)>>>,
    /// Per part: its inbox may hold something (saves a lock per window when it does not).
    mail: Vec<AtomicBool>,
    /// Each part's first lane, ascending.
    starts: Vec<usize>,
    /// Per part: it is parked (or about to be) until a clock moves.
    parked: Vec<AtomicBool>,
    threads: Vec<OnceLock<Thread>>,
    lookahead: u64,
    handed: AtomicU64,
    /// Per part: how long it was busy handling events (ns), for the balance (`balance.rs`).
    busy: Vec<AtomicU64>,
}

impl Exchange {
    /// Parts starting at lanes `starts`, none with an event before `from`.
    fn new(starts: Vec<usize>, lookahead: Duration, from: Timestamp) -> Self {
        let n = starts.len();
        Exchange {
            clocks: (0..n).map(|_| AtomicU64::new(from.as_micros())).collect(),
            inboxes: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            mail: (0..n).map(|_| AtomicBool::new(false)).collect(),
            parked: (0..n).map(|_| AtomicBool::new(false)).collect(),
            threads: (0..n).map(|_| OnceLock::new()).collect(),
            busy: (0..n).map(|_| AtomicU64::new(0)).collect(),
            starts,
            lookahead: (lookahead.as_micros() as u64).max(1),
            handed: AtomicU64::new(0),
        }
    }

    fn owner(&self, lane: usize) -> usize {
        self.starts.iter().rposition(|&s| s <= lane).unwrap_or(0)
    }

    /// The earliest time anything from another part can still arrive in part `me` (µs).
    fn bound(&self, me: usize) -> u64 {
        let mut b = u64::MAX;
        for (p, c) in self.clocks.iter().enumerate() {
            if p != me {
                // SeqCst: pairs with `publish` and `wait` (a parked flag stored, then clocks read).
                b = b.min(c.load(Ordering::SeqCst).saturating_add(self.lookahead));
            }
        }
        b
    }

    fn publish(&self, me: usize, clock: u64) {
        // The datagrams this part filed before are visible to whoever reads the clock; SeqCst
        // pairs with `wait`, so a thread that parks has either seen the clock or is woken.
        let old = self.clocks[me].swap(clock, Ordering::SeqCst);
        debug_assert!(old <= clock, "part {me}'s clock went back from {old} to {clock}");
        if old == clock {
            return;
        }
        for (p, parked) in self.parked.iter().enumerate() {
            if p != me && parked.load(Ordering::SeqCst) && parked.swap(false, Ordering::SeqCst) {
                if let Some(t) = self.threads[p].get() {
                    t.unpark();
                }
            }
        }
    }

    /// Part `me` cannot go on before another part's clock moves past `bound`: it spins a
    /// little, yields a while, then parks.
    fn wait(&self, me: usize, idle: &mut u32, bound: u64) {
        *idle = idle.saturating_add(1);
        if *idle < SPINS_BEFORE_YIELDING {
            std::hint::spin_loop();
            return;
        }
        if *idle < SPINS_BEFORE_YIELDING + YIELDS_BEFORE_PARKING {
            std::thread::yield_now();
            return;
        }
        self.threads[me].get_or_init(std::thread::current);
        self.parked[me].store(true, Ordering::SeqCst);
        if self.bound(me) == bound {
            // The timeout only guards against a wake-up lost to a bug; it is never needed.
            std::thread::park_timeout(Duration::from_millis(10));
        }
        self.parked[me].store(false, Ordering::SeqCst);
    }

    fn post(&self, to_part: usize, lane: usize, d: InFlight) {
        let mut inbox = self.inboxes[to_part].lock().unwrap_or_else(|e| e.into_inner());
        inbox.push((lane, d));
        self.mail[to_part].store(true, Ordering::Release);
        self.handed.fetch_add(1, Ordering::Relaxed);
    }

    fn take(&self, me: usize) -> Vec<(usize, InFlight)> {
        if !self.mail[me].swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        let mut inbox = self.inboxes[me].lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *inbox)
    }
}

/// One part's lanes in order of their next event.
struct Schedule {
    next: BTreeSet<(Timestamp, usize)>,
    filed: Vec<Option<Timestamp>>,
}

impl Schedule {
    fn new(v: &View<'_>) -> Self {
        let mut s = Schedule { next: BTreeSet::new(), filed: vec![None; v.lanes.len()] };
        for l in v.lane0..v.lane0 + v.lanes.len() {
            s.refile(v, l);
        }
        s
    }

    fn refile(&mut self, v: &View<'_>, l: usize) {
        let k = l - v.lane0;
        if let Some(old) = self.filed[k].take() {
            self.next.remove(&(old, l));
        }
        if let Some(t) = v.lane_next(l) {
            self.next.insert((t, l));
            self.filed[k] = Some(t);
        }
    }
}

/// Runs part `me` (view `v`) until nothing is left before `before`, trading datagrams and
/// clocks with the other parts through `ex`.
fn run_part(v: &mut View<'_>, me: usize, ex: &Exchange, before: Timestamp) {
    let mut sched = Schedule::new(v);
    let (mut idle, mut last_bound) = (0u32, 0u64);
    // Only with other parts to balance against; reading the clock is not free.
    let timed = ex.clocks.len() > 1;
    let mut busy = Duration::ZERO;
    loop {
        // The other clocks first, then the inbox: whatever was sent before those clocks were
        // published is in it.
        let bound = ex.bound(me);
        if bound != last_bound {
            // Another part moved: wait by spinning again before parking.
            (last_bound, idle) = (bound, 0);
        }
        for (l, d) in ex.take(me) {
            v.arrive(l, d);
            sched.refile(v, l);
        }
        let first = sched.next.first().map(|&(t, _)| t);
        let low = first.map_or(u64::MAX, Timestamp::as_micros).min(bound);
        ex.publish(me, low);
        let Some(first) = first.filter(|&t| t < before) else {
            if bound >= before.as_micros() {
                ex.publish(me, u64::MAX);
                ex.busy[me].store(busy.as_nanos() as u64, Ordering::Relaxed);
                return;
            }
            ex.wait(me, &mut idle, bound);
            continue;
        };
        let limit = Timestamp::from_micros(bound.min(before.as_micros()));
        if first >= limit {
            ex.wait(me, &mut idle, bound);
            continue;
        }
        idle = 0;
        let started = timed.then(Instant::now);
        // Events one at a time in time order across this part's lanes, so the clock this part
        // publishes follows it closely and the others can run up to a lookahead past it.
        let mut published = low;
        while let Some(&(t, l)) = sched.next.first() {
            if t >= limit {
                break;
            }
            if t.as_micros() >= published.saturating_add(ex.lookahead / 8) {
                published = t.as_micros();
                ex.publish(me, published);
            }
            sched.next.pop_first();
            sched.filed[l - v.lane0] = None;
            v.step(l, limit);
            // What it sent to other lanes arrives a lookahead later at the earliest, after
            // everything due before then here, and outside the others' reach.
            let mut out = std::mem::take(&mut v.lanes[l - v.lane0].out);
            for (to, d) in out.drain(..) {
                let p = ex.owner(to);
                if p == me {
                    v.arrive(to, d);
                    sched.refile(v, to);
                } else {
                    ex.post(p, to, d);
                }
            }
            // The buffer goes back, so a lane that sends does not allocate every time.
            v.lanes[l - v.lane0].out = out;
            sched.refile(v, l);
        }
        busy += started.map_or(Duration::ZERO, |t| t.elapsed());
    }
}

impl View<'_> {
    /// Files a datagram that reached lane `l` from another lane.
    fn arrive(&mut self, l: usize, d: InFlight) {
        let lane = self.lane(l);
        debug_assert!(d.at >= lane.clock, "a datagram reached lane {l} in its past");
        lane.queue.push(Reverse(d));
    }
}

impl Simulation {
    /// Runs every event due at or before `limit`, then sets the clock to `limit`.
    ///
    /// With lanes ([`parallel`](Self::parallel)), the lanes run on as many threads as the
    /// subnets split into (see this module's docs), and what they counted is merged once, at
    /// the end; the result is the same for any number of threads. Without lanes this is
    /// [`step`](Self::step) until nothing is due.
    pub fn advance(&mut self, limit: Timestamp) {
        if !self.per_subnet {
            while self.step(limit) {}
            self.now = self.now.max(limit);
            return self.save_master();
        }
        let before = limit + Duration::from_micros(1);
        // Without a lookahead a datagram could arrive in another thread's past.
        let ahead = !self.net.lookahead().is_zero();
        let parts = match self.parts() {
            Some(p) if ahead => p.to_vec(),
            _ => vec![(0, 0)],
        };
        // Events filed in the past happen now (see `View::step`).
        let from = self.lane_next.first().map_or(limit, |&(t, _)| t.max(self.now));
        let ex = Exchange::new(parts.iter().map(|p| p.0).collect(), self.net.lookahead(), from);
        self.in_views(&parts, |views| {
            if let [only] = views {
                run_part(only, 0, &ex, before);
            } else {
                let ex = &ex;
                std::thread::scope(|s| {
                    let mut views = views.iter_mut().enumerate();
                    let (_, first) = views.next().expect("two parts or more");
                    for (p, v) in views {
                        s.spawn(move || run_part(v, p, ex, before));
                    }
                    run_part(first, 0, ex, before);
                });
            }
            // Datagrams handed over after their part had finished wait for the next call.
            for (p, v) in views.iter_mut().enumerate() {
                for (l, d) in ex.take(p) {
                    v.arrive(l, d);
                }
            }
        });
        self.handed += ex.handed.load(Ordering::Relaxed);
        if parts.len() > 1 {
            let n = self.slots.len();
            let slots: Vec<usize> = (0..parts.len())
                .map(|p| parts.get(p + 1).map_or(n, |q| q.1).saturating_sub(parts[p].1))
                .collect();
            let busy: Vec<u64> = ex.busy.iter().map(|b| b.load(Ordering::Relaxed)).collect();
            if self.balance.record(&slots, &busy) {
                self.parts_stale = true;
            }
        }
        self.now = self.now.max(limit);
        self.save_master();
    }
}
