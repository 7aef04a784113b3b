//! Load balance between the threads of [`Simulation::advance`](super::Simulation::advance).
//!
//! The parts start with as many nodes each, but a node's cost is not the same everywhere: the
//! first part also runs the master, whose morning storm of joins (handshakes, certificates)
//! makes it the slowest part for an hour while the others wait for its clock. So every call
//! reports how long each part was busy handling events, and after enough of them the shares of
//! nodes move towards the parts that waited. Where the split falls changes only which thread
//! handles a lane, never what happens in it, so the run stays the same; only its speed changes.

/// Busy time to gather before the shares move (ns): long enough to smooth a burst out, short
/// enough to follow the morning storm within seconds of wall time. Tests move the shares after
/// every call instead, so that every threaded run in them also checks that where the split
/// falls changes nothing.
const WINDOW_NS: u64 = if cfg!(test) { 1 } else { 200_000_000 };

/// Smallest share of the nodes a part keeps: whatever the measurements say, no part is left
/// with nothing to do.
const MIN_SHARE: f64 = 0.02;

/// Each part's share of the nodes, and the busy time measured since they were last moved.
#[derive(Clone, Debug, Default)]
pub(super) struct Balance {
    /// Per part, summing to 1 (empty: equal shares).
    shares: Vec<f64>,
    /// Per part: busy time (ns) since the shares last moved, under the current split.
    busy: Vec<u64>,
    /// The split `busy` was measured under (nodes per part).
    slots: Vec<usize>,
    /// How many times the shares moved.
    pub(super) moves: u64,
}

impl Balance {
    /// Where part `p` of `parts` starts, as a fraction of the nodes.
    pub(super) fn start_of(&self, p: usize, parts: usize) -> f64 {
        if self.shares.len() != parts {
            return p as f64 / parts as f64;
        }
        self.shares[..p].iter().sum()
    }

    /// Notes how long each part (holding `slots` nodes each) was busy in one call; true when
    /// the shares moved and the split should be made again.
    pub(super) fn record(&mut self, slots: &[usize], busy_ns: &[u64]) -> bool {
        let n = slots.len();
        if n < 2 || busy_ns.len() != n {
            return false;
        }
        if self.shares.len() != n {
            let total = slots.iter().sum::<usize>().max(1) as f64;
            self.shares = slots.iter().map(|&s| s as f64 / total).collect();
        }
        if self.slots != slots {
            // Another split (nodes added or moved): times measured under the old one would
            // be charged to the wrong number of nodes.
            self.slots = slots.to_vec();
            self.busy = vec![0; n];
        }
        for (b, &x) in self.busy.iter_mut().zip(busy_ns) {
            *b = b.saturating_add(x);
        }
        if self.busy.iter().sum::<u64>() < WINDOW_NS {
            return false;
        }
        // A part's speed in nodes per busy second: with equal speeds the parts finish
        // together, so each gets a share of nodes in proportion to its speed (above the
        // floor). Half-way steps keep one noisy window from swinging the split.
        let speed: Vec<f64> =
            slots.iter().zip(&self.busy).map(|(&s, &b)| s as f64 / (b.max(1) as f64)).collect();
        let total: f64 = speed.iter().sum();
        let spread = 1.0 - n as f64 * MIN_SHARE;
        for (share, v) in self.shares.iter_mut().zip(speed) {
            *share = 0.5 * *share + 0.5 * (MIN_SHARE + spread * v / total);
        }
        self.busy.iter_mut().for_each(|b| *b = 0);
        self.moves += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_move_towards_the_part_that_waited_and_keep_a_floor() {
        let mut b = Balance::default();
        assert_eq!(b.start_of(1, 2), 0.5);
        // Part 0 (the master's) is twice as slow per node: it should hold fewer nodes.
        assert!(b.record(&[500, 500], &[120_000_000, 60_000_000]));
        let first = b.start_of(1, 2);
        // Speeds 1/2 and 1 per unit: the target share is 1/3 (above the floor); the first
        // step goes half-way from 1/2.
        let target = MIN_SHARE + (1.0 - 2.0 * MIN_SHARE) / 3.0;
        assert!((first - (0.5 + target) / 2.0).abs() < 1e-9, "{first}");
        // Fed the same imbalance again and again, it settles at the target, not beyond.
        for _ in 0..40 {
            let s0 = (b.start_of(1, 2) * 1000.0).round() as usize;
            let slots = [s0, 1000 - s0];
            b.record(&slots, &[slots[0] as u64 * 200_000, slots[1] as u64 * 100_000]);
        }
        let settled = b.start_of(1, 2);
        assert!((settled - target).abs() < 0.01, "{settled} against {target}");
        // A part that does nothing at all still keeps a share.
        for _ in 0..40 {
            b.record(&[500, 500], &[300_000_000, 0]);
        }
        assert!(b.start_of(1, 2) >= MIN_SHARE - 1e-9);
        // Another number of parts starts from equal shares.
        assert_eq!(b.start_of(1, 4), 0.25);
    }
}
