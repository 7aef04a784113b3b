//! Metric histories in the simulation (issue 17, S15): with [`Simulation::metrics`] on, every
//! node samples the daemon's built-in series (`cpu`, `mem`, `disk`, `net_rx`, `net_tx`;
//! [`BUILTIN`]) every 10 s from a synthetic host and keeps them as the daemon's store does,
//! in blocks compressed with the daemon's codec, bounded by a retention. Every node answers
//! the daemon's `history` query (a CBOR [`Query`], answered by a CBOR [`Answer`]) from its
//! blocks, and LSNs and the master combine the answers with [`aggregate`]: the fleet-wide
//! aggregate travels the overlay as it does between the daemons (which use JSON bodies).
//!
//! The daemon buffers samples and writes a block now and then; here a block's samples are
//! computed when it is written ([`Simulation::write_histories`], and at a clean stop), from
//! a function of the host and the time: the values the node reads at each 10-s tick while it
//! runs. A crash loses the block not yet written, as the daemon's would. Nothing here touches
//! the network: what the day measures is the queries' traffic and what the histories hold.

use std::collections::VecDeque;

use fleetmesh_history::{
    aggregate, encode, sampler::BUILTIN, Answer, Downsampler, Point, Query, SAMPLE_INTERVAL_SECS,
};

use super::Simulation;
use crate::{codec::cbor, overlay::query::Combiner, Timestamp};

/// Most ticks in one block (two hours).
const BLOCK_TICKS: i64 = 720;

/// The query kind nodes answer from their histories (the daemon's).
pub const HISTORY_KIND: &str = "history";

/// The histories' model.
#[derive(Clone, Debug)]
pub struct MetricsModel {
    /// How long a node keeps its blocks. Default 1 hour (the daemon keeps 30 days on disk;
    /// 30,000 nodes' days do not fit the simulator's memory, and the day's queries look back
    /// an hour).
    pub retention: std::time::Duration,
}

impl Default for MetricsModel {
    fn default() -> Self {
        MetricsModel { retention: std::time::Duration::from_secs(3600) }
    }
}

/// One written block: its first and last sample times and, per built-in series, the
/// encoded points (each prefixed by its length, u16 little-endian) in one allocation.
struct Block {
    from: i64,
    to: i64,
    bytes: Box<[u8]>,
}

/// A node's history, kept across its restarts (as the daemon's file is).
#[derive(Default)]
pub struct NodeHistory {
    blocks: VecDeque<Block>,
    /// Samples are due from this time (the last written one's tick, or the node's start).
    due_from: Option<i64>,
}

/// What the fleet's histories hold and cost.
#[derive(Clone, Debug, Default)]
pub struct MetricsStats {
    /// The model.
    pub model: MetricsModel,
    /// Samples written (all series, all nodes).
    pub samples: u64,
    /// Encoded bytes they took (the blocks' series, length prefixes included).
    pub encoded_bytes: u64,
}

/// Seconds of simulated time as the histories' clock.
fn secs(t: Timestamp) -> i64 {
    t.as_secs() as i64
}

/// A deterministic value in [0, 1) from `key` (SplitMix64's finaliser).
fn unit(key: u64) -> f64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Host `slot`'s reading of series `s` (index into [`BUILTIN`]) at `t`: a per-host level,
/// busier in working hours, with noise and, for the network, bursts.
pub fn synthetic_sample(seed: u64, slot: usize, s: usize, t: i64) -> f64 {
    let host = seed.rotate_left(17) ^ (slot as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let level = unit(host ^ s as u64);
    let noise = unit(host ^ (s as u64) << 56 ^ t as u64);
    // Hours into the simulated day (the day starts at midnight).
    let hour = (t - super::START.as_secs() as i64).rem_euclid(86_400) as f64 / 3600.0;
    let working = if (8.0..17.0).contains(&hour) { 1.0 } else { 0.0 };
    match s {
        // cpu %: idle hosts near 2 %, busy ones near 40 %, up in working hours.
        0 => (2.0 + 38.0 * level + 15.0 * working * level + 6.0 * noise).min(100.0),
        // mem bytes: 35–75 % of 16 GB, drifting.
        1 => 16e9 * (0.35 + 0.4 * level) + 2e8 * noise,
        // disk bytes: 50–250 GB, growing a little over the day.
        2 => 5e10 + 2e11 * level + 1e4 * t.rem_euclid(86_400) as f64,
        // net bytes per interval: mostly small, now and then a burst.
        3 | 4 => {
            let scale = if s == 3 { 1.0 } else { 0.3 };
            let burst = if noise > 0.97 { 50.0 } else { 1.0 };
            scale * burst * (2e4 + 2e5 * level * noise)
        }
        _ => 0.0,
    }
}

impl NodeHistory {
    /// The node started at `now`: samples are due from its next tick.
    fn resume(&mut self, now: i64) {
        self.due_from = Some(now);
    }

    /// Writes the samples of every tick in `[due_from, now]` (host `slot`) in blocks, then
    /// drops blocks past `retention`; returns (samples, encoded bytes).
    fn write(&mut self, seed: u64, slot: usize, now: i64, retention: i64) -> (u64, u64) {
        let mut out = (0, 0);
        while let Some(from) = self.due_from {
            let first = from.div_euclid(SAMPLE_INTERVAL_SECS) * SAMPLE_INTERVAL_SECS;
            let first = if first < from { first + SAMPLE_INTERVAL_SECS } else { first };
            if first > now {
                break;
            }
            // A block of at most two hours: far below the codec's limit, and its length fits
            // the u16 prefix.
            let last = now.min(first + (BLOCK_TICKS - 1) * SAMPLE_INTERVAL_SECS);
            let ticks = (first..=last).step_by(SAMPLE_INTERVAL_SECS as usize);
            let n = ((last - first) / SAMPLE_INTERVAL_SECS + 1) as usize;
            let mut points = Vec::with_capacity(n);
            let mut bytes = Vec::with_capacity(BUILTIN.len() * (16 + n * 2));
            for (s, (_, encoding)) in BUILTIN.iter().enumerate() {
                points.clear();
                points.extend(
                    ticks.clone().map(|t| Point { t, v: synthetic_sample(seed, slot, s, t) }),
                );
                let block = encode(&points, *encoding);
                bytes.extend_from_slice(&(block.len() as u16).to_le_bytes());
                bytes.extend_from_slice(&block);
            }
            out.0 += (points.len() * BUILTIN.len()) as u64;
            out.1 += bytes.len() as u64;
            self.blocks.push_back(Block { from: first, to: last, bytes: bytes.into() });
            self.due_from = Some(last + 1);
        }
        while self.blocks.front().is_some_and(|b| b.to < now - retention) {
            self.blocks.pop_front();
        }
        out
    }

    /// The node stopped: nothing is due until it starts again (a crash loses what was due).
    fn halt(&mut self) {
        self.due_from = None;
    }

    /// Answers `query` from the written blocks.
    pub fn answer(&self, query: &Query) -> Result<Answer, String> {
        let s = BUILTIN
            .iter()
            .position(|(name, _)| *name == query.series)
            .ok_or_else(|| format!("no series {:?}", query.series))?;
        let mut down = Downsampler::new(query.clone()).map_err(|e| e.to_string())?;
        for b in self.blocks.iter().filter(|b| b.to >= query.from && b.from < query.to) {
            let mut rest = &b.bytes[..];
            for k in 0..=s {
                let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
                if k == s {
                    let points = fleetmesh_history::decode(&rest[2..2 + len])
                        .map_err(|e| format!("a block of ours is corrupt: {e}"))?;
                    points.into_iter().for_each(|p| down.push(p));
                }
                rest = &rest[2 + len..];
            }
        }
        Ok(down.finish())
    }

    /// Bytes its blocks hold.
    pub fn stored_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.bytes.len()).sum()
    }
}

/// Answers a `history` request `body` from `history`: the CBOR answer, or why not.
pub(super) fn answer_body(history: &NodeHistory, body: &[u8]) -> Result<Vec<u8>, String> {
    let query: Query = cbor::from_slice(body).map_err(|e| format!("not a history query: {e}"))?;
    Ok(cbor::to_vec(&history.answer(&query)?))
}

/// The combiner of `history` answers: as the daemon's, over CBOR.
pub(super) fn combiner() -> Combiner {
    std::sync::Arc::new(|a: &[u8], b: &[u8]| {
        let parse = |x: &[u8]| {
            cbor::from_slice::<Answer>(x).map_err(|e| format!("not a history answer: {e}"))
        };
        let both = [parse(a)?, parse(b)?];
        Ok(cbor::to_vec(&aggregate(&both).map_err(|e| e.to_string())?))
    })
}

/// A `history` query body for `series` over `[from, to)` in buckets of `bucket_secs`.
pub fn query_body(series: &str, from: Timestamp, to: Timestamp, bucket_secs: u32) -> Vec<u8> {
    let q = Query { series: series.into(), from: secs(from), to: secs(to), bucket_secs };
    cbor::to_vec(&q)
}

/// Decodes a combined `history` answer.
pub fn decode_answer(body: &[u8]) -> Option<Answer> {
    cbor::from_slice(body).ok()
}

impl Simulation {
    /// Turns metric histories on with `model` (before the nodes start).
    pub fn metrics(&mut self, model: MetricsModel) {
        self.metrics = Some(Box::new(MetricsStats { model, ..Default::default() }));
    }

    /// What the histories hold and cost (`None`: off).
    pub fn metrics_stats(&self) -> Option<&MetricsStats> {
        self.metrics.as_deref()
    }

    /// Every running node writes the block of samples due (every few minutes, as the
    /// daemon's buffer is written), on the simulation's threads: each node's block depends on
    /// nothing but itself.
    pub fn write_histories(&mut self) {
        let Some(m) = self.metrics.as_mut() else { return };
        let (now, retention) = (secs(self.now), m.model.retention.as_secs() as i64);
        let seed = self.seed;
        let write = |first: usize, slots: &mut [super::Slot]| {
            write_slots(seed, first, slots, now, retention)
        };
        let chunk = self.slots.len().div_ceil(self.threads.max(1)).max(1);
        let sums: Vec<(u64, u64)> = if self.threads > 1 && self.slots.len() > 1000 {
            std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .slots
                    .chunks_mut(chunk)
                    .enumerate()
                    .map(|(c, slots)| s.spawn(move || write(c * chunk, slots)))
                    .collect();
                handles.into_iter().map(|h| h.join().expect("a history writer panicked")).collect()
            })
        } else {
            vec![write(0, &mut self.slots)]
        };
        for (n, b) in sums {
            m.samples += n;
            m.encoded_bytes += b;
        }
    }

    /// Bytes node `i`'s history holds.
    pub fn history_bytes(&self, i: usize) -> usize {
        self.slots[i].history.stored_bytes()
    }

    /// (At a start) node `i` samples from now and combines `history` answers as an LSN.
    pub(crate) fn metrics_started(&mut self, i: usize) {
        if self.metrics.is_none() {
            return;
        }
        self.slots[i].history.resume(secs(self.now));
        self.node_do(i, |n, _| n.set_combiner(HISTORY_KIND, combiner()));
    }

    /// (At a clean stop) node `i` writes what is due first, as the daemon does.
    pub(crate) fn metrics_stopping(&mut self, i: usize) {
        if let Some(m) = self.metrics.as_mut() {
            let (now, retention) = (secs(self.now), m.model.retention.as_secs() as i64);
            let (n, b) = write_slots(self.seed, i, &mut self.slots[i..=i], now, retention);
            m.samples += n;
            m.encoded_bytes += b;
        }
    }

    /// (At a crash or stop) node `i` samples nothing until it starts again.
    pub(crate) fn metrics_stopped(&mut self, i: usize) {
        self.slots[i].history.halt();
    }

    /// (At the master's start) it combines `history` answers.
    pub(crate) fn metrics_master_up(&mut self) {
        if let (Some(_), Some(m)) = (self.metrics.as_ref(), self.master.as_mut()) {
            m.set_combiner(HISTORY_KIND, combiner());
        }
    }
}

/// Writes the buffered samples of the running nodes among `slots` (the first is node
/// `first`): how many samples, and their encoded bytes.
fn write_slots(
    seed: u64,
    first: usize,
    slots: &mut [super::Slot],
    now: i64,
    retention: i64,
) -> (u64, u64) {
    let mut sum = (0, 0);
    for (k, slot) in slots.iter_mut().enumerate() {
        if slot.node.is_some() {
            let (n, b) = slot.history.write(seed, first + k, now, retention);
            sum = (sum.0 + n, sum.1 + b);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_answers_what_was_written_and_forgets_past_its_retention() {
        let mut h = NodeHistory::default();
        h.resume(1_000_003);
        // Ticks 1_000_010 ..= 1_000_300: 30 of them.
        assert_eq!(h.write(7, 3, 1_000_300, 3600).0, 30 * BUILTIN.len() as u64);
        let q = Query { series: "cpu".into(), from: 1_000_000, to: 1_000_600, bucket_secs: 300 };
        let a = h.answer(&q).unwrap();
        assert_eq!(a.buckets[0].count, 29); // 1_000_010 ..= 1_000_290
        assert_eq!(a.buckets[1].count, 1); // 1_000_300
        let expect = (synthetic_sample(7, 3, 0, 1_000_300) * 10.0).round() / 10.0;
        assert!((a.buckets[1].last - expect).abs() < 1e-9);
        // A crash loses what is due; a restart samples from its own time.
        h.halt();
        assert_eq!(h.write(7, 3, 1_000_900, 3600), (0, 0));
        h.resume(1_002_000);
        assert_eq!(h.write(7, 3, 1_002_100, 3600).0, 11 * BUILTIN.len() as u64);
        assert_eq!(h.blocks.len(), 2);
        // An hour on, the first block is gone; over two hours of ticks take two blocks.
        assert_eq!(h.write(7, 3, 1_005_000, 3600).0, 290 * BUILTIN.len() as u64);
        assert_eq!(h.blocks.len(), 2);
        assert_eq!(h.blocks[0].from, 1_002_000);
        h.write(7, 3, 1_005_000 + 3 * 3600, 3 * 3600 + 1);
        assert_eq!(h.blocks.len(), 3);
        assert_eq!(h.blocks[0].to, 1_005_000);
        assert_eq!(h.blocks[1].to - h.blocks[1].from, (BLOCK_TICKS - 1) * 10);
        assert!(h.answer(&Query { series: "gpu".into(), ..q }).is_err());
    }

    #[test]
    fn the_combiner_is_the_aggregate_of_both_answers() {
        let mut a = NodeHistory::default();
        let mut b = NodeHistory::default();
        a.resume(0);
        b.resume(0);
        a.write(1, 0, 600, 3600);
        b.write(1, 1, 600, 3600);
        let q = Query { series: "mem".into(), from: 0, to: 600, bucket_secs: 300 };
        let (x, y) = (a.answer(&q).unwrap(), b.answer(&q).unwrap());
        let both = combiner()(&cbor::to_vec(&x), &cbor::to_vec(&y)).unwrap();
        let both = decode_answer(&both).unwrap();
        assert_eq!(both, aggregate(&[x.clone(), y]).unwrap());
        assert_eq!(both.buckets[0].hosts, 2);
        assert!(combiner()(&cbor::to_vec(&x), b"junk").is_err());
    }
}
