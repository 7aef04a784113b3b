//! The sending side of one bulk transfer: which chunk goes next, what the acknowledgements
//! say arrived, what was lost, and how much may be in flight.
//!
//! Loss and congestion follow TCP's and QUIC's published rules, kept small: a chunk is lost
//! when a chunk sent [`REORDER`] transmissions after it was acknowledged (fast retransmit),
//! or when no acknowledgement came within the retransmission timeout (RFC 6298's estimator,
//! doubling per timeout in a row). The window starts at [`INITIAL_WINDOW`] chunks, grows by
//! one per acknowledged chunk below the slow-start threshold and by one per window above it,
//! and shrinks to [`DECREASE`] of itself once per loss event (CUBIC's factor, RFC 9438:
//! gentler than NewReno's half on paths that lose datagrams without being congested), never
//! beyond what the receiver buffers ([`WINDOW`]).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::SocketAddr,
    time::Duration,
};

use crate::{
    wire::{BulkAck, BulkChunk},
    NodeId, Timestamp,
};

/// Chunks a receiver buffers beyond the first missing one: the most a sender sends ahead.
pub const WINDOW: u32 = 1024;
/// Chunks in flight when a transfer starts.
pub const INITIAL_WINDOW: u32 = 16;
/// The smallest window, after a timeout.
const MIN_WINDOW: u32 = 4;
/// What a loss event leaves of the window, in tenths.
const DECREASE: u32 = 7;
/// A chunk is lost once one sent this many transmissions after it was acknowledged.
const REORDER: u64 = 3;
/// The retransmission timeout before any round trip was measured.
const INITIAL_RTO: Duration = Duration::from_millis(500);
/// Bounds of the retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(50);
const MAX_RTO: Duration = Duration::from_secs(4);
/// A transfer with no chunk acknowledged for this long fails.
pub const STALL: Duration = Duration::from_secs(30);

/// One transmission of a chunk.
#[derive(Clone, Copy, Debug)]
struct Sent {
    at: Timestamp,
    /// Transmission number, counting every chunk sent (retransmissions too).
    tx: u64,
    retransmitted: bool,
}

/// The sender's state of one transfer.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) peer: NodeId,
    /// Where to reach the peer should its session go.
    pub(super) addr: SocketAddr,
    data: Vec<u8>,
    chunk: u32,
    count: u32,
    /// Every chunk below this one is acknowledged.
    acked_below: u32,
    /// Chunks sent and not yet acknowledged.
    flight: BTreeMap<u32, Sent>,
    /// Transmissions in the order sent, `(tx, index)`: the oldest one in flight first.
    /// Entries of chunks acknowledged or sent again since are dropped as they reach the
    /// front, so that finding the oldest, or the ones lost, costs no walk over the window
    /// (it did on every datagram: `deadline` is read after each).
    order: VecDeque<(u64, u32)>,
    /// Chunks deemed lost, sent again before any new one.
    lost: BTreeSet<u32>,
    /// The first chunk never sent.
    next_new: u32,
    tx: u64,
    window: u32,
    /// Acknowledged chunks towards the next window increase (congestion avoidance).
    growth: u32,
    threshold: u32,
    /// Losses of chunks sent up to this transmission belong to the event already answered.
    recovered_to: u64,
    srtt: Option<Duration>,
    rttvar: Duration,
    /// Timeouts in a row.
    backoff: u32,
    /// When a chunk was last acknowledged (or the transfer began).
    progress: Timestamp,
    /// Chunks sent again, for the statistics.
    pub(super) resent: u64,
}

impl Outgoing {
    /// A transfer of `data` (not empty, fewer than `u32::MAX` chunks) to `peer` at `addr`.
    pub(super) fn new(
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        data: Vec<u8>,
        chunk: u32,
    ) -> Self {
        let count = u32::try_from(data.len().div_ceil(chunk as usize)).unwrap_or(u32::MAX);
        Outgoing {
            peer,
            addr,
            data,
            chunk,
            count,
            acked_below: 0,
            flight: BTreeMap::new(),
            order: VecDeque::new(),
            lost: BTreeSet::new(),
            next_new: 0,
            tx: 0,
            window: INITIAL_WINDOW,
            growth: 0,
            threshold: WINDOW,
            recovered_to: 0,
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
            progress: now,
            resent: 0,
        }
    }

    /// Whether every chunk is acknowledged.
    pub(super) fn is_done(&self) -> bool {
        self.acked_below >= self.count
    }

    /// Restarts the stall clock (the session came up: time spent opening it is not a stall).
    pub(super) fn started(&mut self, now: Timestamp) {
        self.progress = now;
    }

    /// The next chunk to send now, if the window allows one: a lost chunk first, then a new
    /// one within what the receiver buffers.
    pub(super) fn next_chunk(&mut self, now: Timestamp, id: u64) -> Option<BulkChunk> {
        if self.flight.len() >= self.window as usize {
            return None;
        }
        let (index, retransmitted) = if let Some(i) = self.lost.pop_first() {
            self.resent += 1;
            (i, true)
        } else if self.next_new < self.count
            && self.next_new < self.acked_below.saturating_add(WINDOW)
        {
            self.next_new += 1;
            (self.next_new - 1, false)
        } else {
            return None;
        };
        self.tx += 1;
        self.flight.insert(index, Sent { at: now, tx: self.tx, retransmitted });
        self.order.push_back((self.tx, index));
        let start = index as usize * self.chunk as usize;
        let end = (start + self.chunk as usize).min(self.data.len());
        Some(BulkChunk {
            id,
            index,
            total: self.data.len() as u64,
            chunk: self.chunk,
            bytes: self.data[start..end].to_vec(),
        })
    }

    /// Takes an acknowledgement; returns whether it acknowledged anything new.
    pub(super) fn on_ack(&mut self, now: Timestamp, ack: &BulkAck) -> bool {
        if ack.next > self.count || ack.ranges.iter().any(|&(s, e)| s >= e || e > self.count) {
            return false;
        }
        let mut newly: Vec<(u32, Sent)> = Vec::new();
        let below: Vec<u32> = self.flight.range(..ack.next).map(|(i, _)| *i).collect();
        for i in below {
            newly.extend(self.flight.remove(&i).map(|s| (i, s)));
        }
        for &(s, e) in &ack.ranges {
            let inside: Vec<u32> = self.flight.range(s..e).map(|(i, _)| *i).collect();
            for i in inside {
                newly.extend(self.flight.remove(&i).map(|s| (i, s)));
            }
            let lost: Vec<u32> = self.lost.range(s..e).copied().collect();
            for i in lost {
                self.lost.remove(&i);
            }
        }
        self.lost.retain(|i| *i >= ack.next);
        self.acked_below = self.acked_below.max(ack.next);
        let Some(&(_, latest)) = newly.iter().max_by_key(|(_, s)| s.tx) else {
            return false;
        };
        if !latest.retransmitted {
            self.sample(now.saturating_since(latest.at));
        }
        self.progress = now;
        self.backoff = 0;
        for _ in &newly {
            self.grow();
        }
        self.detect_lost(latest.tx);
        self.trim();
        true
    }

    /// The transmission `(tx, index)` if its chunk is still in flight from it.
    fn live(&self, (tx, index): (u64, u32)) -> Option<Sent> {
        self.flight.get(&index).filter(|s| s.tx == tx).copied()
    }

    /// Drops the transmissions at the front that are no longer in flight.
    fn trim(&mut self) {
        while let Some(&front) = self.order.front() {
            if self.live(front).is_some() {
                break;
            }
            self.order.pop_front();
        }
    }

    fn grow(&mut self) {
        if self.window < self.threshold {
            self.window += 1;
        } else {
            self.growth += 1;
            if self.growth >= self.window {
                self.growth = 0;
                self.window += 1;
            }
        }
        self.window = self.window.min(WINDOW);
    }

    /// Chunks sent [`REORDER`] transmissions before the latest acknowledged one are lost.
    fn detect_lost(&mut self, latest_tx: u64) {
        // In send order: every transmission before one that is lost is lost too.
        let mut newest = None;
        while let Some(&(tx, i)) = self.order.front() {
            if self.live((tx, i)).is_some() {
                if tx + REORDER > latest_tx {
                    break;
                }
                self.flight.remove(&i);
                self.lost.insert(i);
                newest = Some(tx);
            }
            self.order.pop_front();
        }
        let Some(newest) = newest else { return };
        if newest > self.recovered_to {
            // One cut per loss event: the losses of one window are one event.
            self.recovered_to = self.tx;
            self.threshold = (self.window * DECREASE / 10).max(MIN_WINDOW);
            self.window = self.threshold;
            self.growth = 0;
        }
    }

    fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => INITIAL_RTO,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(MIN_RTO, MAX_RTO),
        };
        (base * 2u32.saturating_pow(self.backoff.min(6))).min(MAX_RTO)
    }

    /// When [`on_timeout`](Self::on_timeout) has work: the oldest chunk's retransmission, or
    /// the stall.
    pub(super) fn deadline(&self) -> Timestamp {
        let stall = self.progress + STALL;
        // The front is live after every change (`trim`); the walk is for safety only.
        let oldest = self.order.iter().find_map(|&t| self.live(t)).map(|s| s.at);
        oldest.map_or(stall, |at| (at + self.rto()).min(stall))
    }

    /// Retransmission timeout: every chunk in flight that long is lost, and the window
    /// shrinks to the minimum. Returns `false` when the transfer stalled for [`STALL`].
    pub(super) fn on_timeout(&mut self, now: Timestamp) -> bool {
        if now >= self.progress + STALL {
            return false;
        }
        let rto = self.rto();
        // Sent in time order: the expired ones are at the front.
        let mut expired = false;
        while let Some(&(tx, i)) = self.order.front() {
            if let Some(s) = self.live((tx, i)) {
                if s.at + rto > now {
                    break;
                }
                self.flight.remove(&i);
                self.lost.insert(i);
                expired = true;
            }
            self.order.pop_front();
        }
        if !expired {
            return true;
        }
        self.backoff += 1;
        self.threshold = (self.window / 2).max(MIN_WINDOW);
        self.window = MIN_WINDOW;
        self.growth = 0;
        self.recovered_to = self.tx;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(len: usize) -> Outgoing {
        let addr = "192.0.2.1:1".parse().unwrap();
        Outgoing::new(Timestamp::ZERO, NodeId::from_bytes([1; 20]), addr, vec![7; len], 100)
    }

    fn ms(n: u64) -> Timestamp {
        Timestamp::ZERO + Duration::from_millis(n)
    }

    fn ack(next: u32, ranges: &[(u32, u32)]) -> BulkAck {
        BulkAck { id: 1, next, ranges: ranges.to_vec() }
    }

    fn drain(o: &mut Outgoing, now: Timestamp) -> Vec<u32> {
        std::iter::from_fn(|| o.next_chunk(now, 1)).map(|c| c.index).collect()
    }

    #[test]
    fn chunks_cover_the_payload_and_the_window_limits_the_first_flight() {
        let mut o = transfer(2_050);
        let first = o.next_chunk(Timestamp::ZERO, 9).unwrap();
        assert_eq!((first.id, first.index, first.total, first.chunk), (9, 0, 2_050, 100));
        assert_eq!(first.bytes.len(), 100);
        let rest = drain(&mut o, Timestamp::ZERO);
        assert_eq!(rest.len() as u32, INITIAL_WINDOW - 1, "the first flight is the window");
        assert!(o.on_ack(ms(10), &ack(16, &[])));
        let more = drain(&mut o, ms(10));
        assert_eq!(more, (16..21).collect::<Vec<_>>(), "21 chunks, the last one 50 bytes");
        assert!(!o.is_done());
        assert!(o.on_ack(ms(20), &ack(21, &[])));
        assert!(o.is_done());
    }

    #[test]
    fn a_chunk_passed_by_three_acknowledged_ones_is_sent_again_first() {
        let mut o = transfer(10_000);
        drain(&mut o, Timestamp::ZERO);
        // Chunk 2 lost: the receiver acknowledges 0-1 and 3-6.
        assert!(o.on_ack(ms(10), &ack(2, &[(3, 7)])));
        let window = o.window;
        assert_eq!(o.next_chunk(ms(10), 1).unwrap().index, 2);
        assert_eq!(o.resent, 1);
        assert!(window < INITIAL_WINDOW + 6, "the loss shrank the window: {window}");
    }

    #[test]
    fn a_silent_receiver_gets_everything_again_after_the_timeout_and_the_transfer_stalls_later() {
        let mut o = transfer(1_000);
        let sent = drain(&mut o, Timestamp::ZERO);
        assert_eq!(sent.len(), 10);
        assert_eq!(o.deadline(), Timestamp::ZERO + INITIAL_RTO);
        assert!(o.on_timeout(Timestamp::ZERO + INITIAL_RTO));
        let again = drain(&mut o, Timestamp::ZERO + INITIAL_RTO);
        assert_eq!(again, vec![0, 1, 2, 3], "the window fell to its minimum");
        assert_eq!(o.deadline(), Timestamp::ZERO + INITIAL_RTO + INITIAL_RTO * 2, "backed off");
        assert!(!o.on_timeout(Timestamp::ZERO + STALL));
    }

    #[test]
    fn an_acknowledgement_beyond_the_transfer_is_ignored() {
        let mut o = transfer(1_000);
        drain(&mut o, Timestamp::ZERO);
        assert!(!o.on_ack(ms(5), &ack(11, &[])));
        assert!(!o.on_ack(ms(5), &ack(0, &[(5, 3)])));
        assert!(!o.on_ack(ms(5), &ack(0, &[(5, 11)])));
        assert!(!o.is_done());
    }
}
