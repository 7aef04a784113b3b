//! (LSN) Carrying the children's reports to the master together.
//!
//! When every node answers a fleet request at once, each answer is a report the LSN relays
//! and the master acknowledges: one message each way per node. The LSN sends the first
//! report of a quiet spell at once (no added delay for the usual lone report) and gathers the
//! ones that follow within [`BATCH_WINDOW`] into one [`ReportBatch`], which the master answers
//! with one [`ReportAcks`]. The children retry their own reports as before, so a lost batch
//! costs nothing but a retry; a batch is never resent by the LSN. The LSN's own reports go
//! the same way, and a fleet request's arrival opens a window at once, so that its answers,
//! the LSN's and its children's, all go in one batch: with the acknowledgement's runs of
//! seqs, 436 B of master egress per LSN for a 200-byte request in the 1,000-node day, from
//! 640 B.
//!
//! Bounds: at most [`MAX_REPORT_BATCH`] reports and [`BATCH_BYTES`] of envelopes queued; a
//! full queue is sent at once.

use std::time::Duration;

use super::Node;
use crate::{
    overlay::MAX_REPORT_BATCH,
    wire::{Message, Report, ReportAcks, ReportBatch},
    NodeId, Timestamp,
};

/// How long after a report the LSN gathers further ones before sending them together.
pub(super) const BATCH_WINDOW: Duration = Duration::from_millis(100);
/// Most bytes of envelopes in one batch (well inside a frame).
pub(super) const BATCH_BYTES: usize = 32 * 1024;

/// The reports waiting to go to the master together.
#[derive(Default)]
pub(super) struct ReportBatcher {
    queued: Vec<Report>,
    bytes: usize,
    /// When the queued reports go.
    flush_at: Option<Timestamp>,
    /// When the last report or batch went: reports within the window after it wait.
    last_sent: Option<Timestamp>,
}

impl ReportBatcher {
    /// Opens a window at `now` as if a report had just gone: a fleet request's answers, due
    /// in the next milliseconds, go together rather than the first alone.
    pub(super) fn gather(&mut self, now: Timestamp) {
        if self.queued.is_empty() {
            self.last_sent = Some(now);
        }
    }
}

/// What a report weighs in a batch: its envelope and certificate, roughly.
fn weight(r: &Report) -> usize {
    r.envelope.ciphertext.len() + r.certificate.as_ref().map_or(0, |_| 256) + 96
}

impl Node {
    /// (LSN) Sends a report (our own, or a child's already filed as relayed under `r.seq`) to
    /// the master, at once or with the next batch.
    pub(super) fn batch_report(&mut self, now: Timestamp, r: Report) {
        let b = &mut self.report_batch;
        let quiet = b.queued.is_empty() && b.last_sent.is_none_or(|t| now >= t + BATCH_WINDOW);
        if quiet {
            b.last_sent = Some(now);
            let to = self.cfg.master;
            return self.send(now, to, Message::Report(Box::new(r)));
        }
        if b.bytes + weight(&r) > BATCH_BYTES {
            self.flush_reports(now);
        }
        let b = &mut self.report_batch;
        b.bytes += weight(&r);
        b.queued.push(r);
        let window_end = b.last_sent.map_or(now, |t| t + BATCH_WINDOW).max(now);
        b.flush_at = Some(b.flush_at.unwrap_or(window_end));
        if b.queued.len() >= MAX_REPORT_BATCH {
            self.flush_reports(now);
        }
    }

    fn flush_reports(&mut self, now: Timestamp) {
        let b = &mut self.report_batch;
        let mut reports = std::mem::take(&mut b.queued);
        b.bytes = 0;
        b.flush_at = None;
        if reports.is_empty() {
            return;
        }
        b.last_sent = Some(now);
        let to = self.cfg.master;
        let message = match reports.len() {
            1 => Message::Report(Box::new(reports.remove(0))),
            _ => Message::ReportBatch(Box::new(ReportBatch { reports })),
        };
        self.send(now, to, message);
    }

    pub(super) fn report_batch_timers(&mut self, now: Timestamp) {
        if self.report_batch.flush_at.is_some_and(|t| now >= t) {
            if self.role.is_none() {
                // No longer an LSN: the children retry through their new one.
                self.report_batch = ReportBatcher::default();
                return;
            }
            self.flush_reports(now);
        }
    }

    pub(super) fn report_batch_deadline(&self) -> Option<Timestamp> {
        self.report_batch.flush_at
    }

    /// (LSN) The master took these reports of a batch: each child gets its Ack (our own
    /// report settles).
    pub(super) fn on_report_acks(&mut self, now: Timestamp, peer: NodeId, a: ReportAcks) {
        if peer != self.master_id() {
            self.refusals.relay += 1;
            return;
        }
        for seq in a.seqs(MAX_REPORT_BATCH) {
            if !self.report_ack(peer, seq) {
                self.relay_ack(now, peer, seq);
            }
        }
    }
}
