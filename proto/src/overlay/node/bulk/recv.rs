//! The receiving side of one bulk transfer: chunks in order into the payload, chunks ahead of
//! a gap buffered (at most [`WINDOW`](super::send::WINDOW) of them), and what to acknowledge.

use std::{collections::BTreeMap, time::Duration};

use super::send::WINDOW;
use crate::{
    wire::{BulkAck, BulkChunk, MAX_ACK_RANGES},
    Timestamp,
};

/// In-order chunks acknowledged together: every fourth rather than TCP's every second
/// halves the acknowledgements, each a datagram of its own (relayed: sealed four times on
/// its way). On the loopback relay benchmark, 32-36 MB/s became 40 relayed and 82-91 became
/// 107 direct; every eighth gave 44 and 116, but leaves a window of four after a timeout
/// waiting for [`ACK_DELAY`].
const ACK_EVERY: u32 = 4;
/// An in-order chunk waits this long for a second one before it is acknowledged alone.
pub const ACK_DELAY: Duration = Duration::from_millis(5);
/// A transfer that brought no chunk for this long is dropped.
pub const IDLE: Duration = Duration::from_secs(60);

/// What a chunk did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Took {
    /// New: acknowledge now (a gap, or every [`ACK_EVERY`]th chunk) or within
    /// [`ACK_DELAY`].
    New { ack_now: bool },
    /// Seen before (our acknowledgement was lost): acknowledge again now.
    Again,
    /// Beyond what we buffer: dropped, the sender sends it again.
    Beyond,
}

/// Why a chunk does not belong to its transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// The receiver's state of one transfer.
#[derive(Debug)]
pub(super) struct Incoming {
    total: u64,
    chunk: u32,
    count: u32,
    /// The payload up to the first missing chunk.
    data: Vec<u8>,
    /// Every chunk below this one arrived.
    next: u32,
    /// Chunks above `next` that arrived.
    ahead: BTreeMap<u32, Vec<u8>>,
    /// In-order chunks not yet acknowledged.
    unacked: u32,
    /// When an acknowledgement is due.
    pub(super) ack_due: Option<Timestamp>,
    pub(super) heard: Timestamp,
}

/// The number of chunks of a transfer, if its shape is sound (a chunk size, a length, fewer
/// than `u32::MAX` chunks).
pub(super) fn chunk_count(total: u64, chunk: u32) -> Option<u32> {
    if chunk == 0 || total == 0 {
        return None;
    }
    u32::try_from(total.div_ceil(u64::from(chunk))).ok()
}

impl Incoming {
    /// A transfer whose first chunk (any of them) is `c`.
    pub(super) fn new(now: Timestamp, c: &BulkChunk) -> Result<Self, Malformed> {
        let count = chunk_count(c.total, c.chunk).ok_or(Malformed)?;
        Ok(Incoming {
            total: c.total,
            chunk: c.chunk,
            count,
            data: Vec::new(),
            next: 0,
            ahead: BTreeMap::new(),
            unacked: 0,
            ack_due: None,
            heard: now,
        })
    }

    /// Takes chunk `c`.
    pub(super) fn on_chunk(&mut self, now: Timestamp, c: BulkChunk) -> Result<Took, Malformed> {
        if c.total != self.total || c.chunk != self.chunk || c.index >= self.count {
            return Err(Malformed);
        }
        let start = u64::from(c.index) * u64::from(self.chunk);
        let len = (self.total - start).min(u64::from(self.chunk));
        if c.bytes.len() as u64 != len {
            return Err(Malformed);
        }
        self.heard = now;
        if c.index < self.next || self.ahead.contains_key(&c.index) {
            return Ok(Took::Again);
        }
        if c.index >= self.next.saturating_add(WINDOW) {
            return Ok(Took::Beyond);
        }
        if c.index != self.next {
            self.ahead.insert(c.index, c.bytes);
            return Ok(Took::New { ack_now: true });
        }
        if self.data.is_empty() {
            // Grow with what arrives, never on the sender's word alone.
            self.data.reserve(len as usize * 64);
        }
        self.data.extend_from_slice(&c.bytes);
        self.next += 1;
        while let Some(bytes) = self.ahead.remove(&self.next) {
            self.data.extend_from_slice(&bytes);
            self.next += 1;
        }
        self.unacked += 1;
        let ack_now = self.unacked >= ACK_EVERY || !self.ahead.is_empty() || self.is_complete();
        if !ack_now {
            // The oldest unacknowledged chunk sets the delay.
            self.ack_due.get_or_insert(now + ACK_DELAY);
        }
        Ok(Took::New { ack_now })
    }

    /// The payload's announced length.
    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// Whether every chunk arrived.
    pub(super) fn is_complete(&self) -> bool {
        self.next >= self.count
    }

    /// The acknowledgement of what arrived so far.
    pub(super) fn ack(&mut self, id: u64) -> BulkAck {
        self.unacked = 0;
        self.ack_due = None;
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for &i in self.ahead.keys().rev() {
            let full = ranges.len() == MAX_ACK_RANGES;
            match ranges.last_mut() {
                Some((s, _)) if *s == i + 1 => *s = i,
                _ if full => break,
                _ => ranges.push((i, i + 1)),
            }
        }
        BulkAck { id, next: self.next, ranges }
    }

    /// The whole payload, once complete.
    pub(super) fn into_data(self) -> Vec<u8> {
        self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(index: u32, total: u64) -> BulkChunk {
        let start = u64::from(index) * 10;
        let len = (total - start).min(10) as usize;
        BulkChunk { id: 1, index, total, chunk: 10, bytes: vec![index as u8; len] }
    }

    #[test]
    fn chunks_out_of_order_make_the_payload_in_order_and_gaps_show_as_ranges() {
        let now = Timestamp::ZERO;
        let mut r = Incoming::new(now, &chunk(3, 45)).unwrap();
        for i in [3, 1, 4] {
            assert_eq!(r.on_chunk(now, chunk(i, 45)), Ok(Took::New { ack_now: true }));
        }
        assert_eq!(r.ack(1), BulkAck { id: 1, next: 0, ranges: vec![(3, 5), (1, 2)] });
        assert_eq!(r.on_chunk(now, chunk(4, 45)), Ok(Took::Again));
        assert_eq!(r.on_chunk(now, chunk(0, 45)), Ok(Took::New { ack_now: true }));
        assert!(!r.is_complete());
        assert_eq!(r.on_chunk(now, chunk(2, 45)), Ok(Took::New { ack_now: true }));
        assert!(r.is_complete());
        assert_eq!(r.ack(1), BulkAck { id: 1, next: 5, ranges: vec![] });
        let data = r.into_data();
        assert_eq!(data.len(), 45);
        assert_eq!(&data[38..], &[3, 3, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn in_order_chunks_are_acknowledged_every_fourth_one_or_after_the_delay() {
        let now = Timestamp::ZERO;
        let mut r = Incoming::new(now, &chunk(0, 100)).unwrap();
        for i in 0..ACK_EVERY - 1 {
            assert_eq!(r.on_chunk(now, chunk(i, 100)), Ok(Took::New { ack_now: false }));
        }
        assert_eq!(r.ack_due, Some(now + ACK_DELAY));
        assert_eq!(r.on_chunk(now, chunk(ACK_EVERY - 1, 100)), Ok(Took::New { ack_now: true }));
        assert_eq!(r.ack(1).next, ACK_EVERY);
        assert_eq!(r.ack_due, None);
    }

    #[test]
    fn chunks_that_do_not_fit_the_transfer_are_refused_and_far_ones_dropped() {
        let now = Timestamp::ZERO;
        assert_eq!(
            Incoming::new(now, &BulkChunk { chunk: 0, ..chunk(0, 5) }).err(),
            Some(Malformed)
        );
        let mut r = Incoming::new(now, &chunk(0, 100_000)).unwrap();
        assert_eq!(r.on_chunk(now, chunk(0, 99_999)), Err(Malformed), "another length");
        let mut short = chunk(1, 100_000);
        short.bytes.pop();
        assert_eq!(r.on_chunk(now, short), Err(Malformed));
        assert_eq!(r.on_chunk(now, chunk(10_000, 100_000)), Err(Malformed), "past the end");
        assert_eq!(r.on_chunk(now, chunk(WINDOW, 100_000)), Ok(Took::Beyond));
        assert_eq!(r.on_chunk(now, chunk(WINDOW - 1, 100_000)), Ok(Took::New { ack_now: true }));
    }

    #[test]
    fn an_acknowledgement_carries_at_most_its_ranges_the_highest_first() {
        let now = Timestamp::ZERO;
        let mut r = Incoming::new(now, &chunk(0, 1_000)).unwrap();
        for i in (2..80).step_by(2) {
            r.on_chunk(now, chunk(i, 1_000)).unwrap();
        }
        let ack = r.ack(1);
        assert_eq!(ack.ranges.len(), MAX_ACK_RANGES);
        assert_eq!(ack.ranges[0], (78, 79));
    }
}
