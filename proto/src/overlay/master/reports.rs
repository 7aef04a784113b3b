//! Nodes' sealed reports for the master (`node/report.rs`): who may carry one, opening it, and
//! refusing a repeat.
//!
//! A report is accepted from the node itself or from a registered LSN (which checked that the
//! node is its child); either way the envelope must open with the node's certificate and carry
//! a stamp not seen before. A repeat (the node retrying after a lost acknowledgement) is
//! acknowledged again but not reported twice.
//!
//! An LSN may carry several of its children's reports in one [`ReportBatch`]: each is
//! checked as if it came alone, and those taken are acknowledged together in one
//! [`ReportAcks`], so a burst of answers (a fleet request) costs the master one message per
//! LSN rather than one per node.

use std::{collections::HashMap, net::SocketAddr};

use super::{Master, MasterEvent};
use crate::{
    secure::{open_envelope, EnvelopeError, EnvelopeWindow},
    trust::Certificate,
    wire::{self, Ack, ErrorCode, ErrorMessage, Message, Report, ReportAcks, ReportBatch},
    NodeId, Timestamp,
};

/// Most nodes whose recent report stamps the master remembers. Windows whose stamps have all
/// aged out of [`EnvelopeWindow::MAX_AGE`] are dropped first (a fresh window refuses those
/// anyway); if none has, a report from a new node is answered busy and retried later.
pub const MAX_REPORT_WINDOWS: usize = 65_536;
/// Most reports in one [`ReportBatch`].
pub const MAX_REPORT_BATCH: usize = 64;

/// The replay windows of the nodes that reported lately.
#[derive(Default)]
pub(super) struct ReportWindows {
    windows: HashMap<NodeId, (Timestamp, EnvelopeWindow)>,
}

impl ReportWindows {
    fn accept(&mut self, now: Timestamp, node: NodeId, stamp: u64) -> Result<(), Refusal> {
        if !self.windows.contains_key(&node) && self.windows.len() >= MAX_REPORT_WINDOWS {
            let horizon =
                now.as_micros().saturating_sub(EnvelopeWindow::MAX_AGE.as_micros() as u64);
            self.windows.retain(|_, (last, _)| last.as_micros() >= horizon);
            if self.windows.len() >= MAX_REPORT_WINDOWS {
                return Err(Refusal::Busy);
            }
        }
        let (last, window) = self.windows.entry(node).or_default();
        *last = now;
        window.accept(now, stamp).map_err(|e| match e {
            EnvelopeError::Replayed(_) => Refusal::Repeat,
            other => Refusal::Bad(other.to_string()),
        })
    }
}

enum Refusal {
    /// Seen before: acknowledge, report nothing.
    Repeat,
    Busy,
    Bad(String),
}

impl Master {
    pub(super) fn on_report(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr, r: Report) {
        let seq = r.seq;
        match self.take_report(now, peer, r) {
            Ok(()) => self.send(now, addr, Message::Ack(Ack { seq })),
            Err((code, why)) => self.reply(now, addr, seq, code, &why),
        }
    }

    /// An LSN's batch of its children's reports: one [`ReportAcks`] for those taken, an error
    /// for each refused one. Only a registered LSN carries batches, of at most
    /// [`MAX_REPORT_BATCH`].
    pub(super) fn on_report_batch(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        batch: ReportBatch,
    ) {
        if !self.reg.is_lsn(&peer) || batch.reports.len() > MAX_REPORT_BATCH {
            // No answers: the children retry, one by one, through whoever is their LSN.
            self.refusals.relay += 1;
            return;
        }
        let mut seqs = Vec::with_capacity(batch.reports.len());
        for r in batch.reports {
            let seq = r.seq;
            match self.take_report(now, peer, r) {
                Ok(()) => seqs.push(seq),
                Err((code, why)) => self.reply(now, addr, seq, code, &why),
            }
        }
        if !seqs.is_empty() {
            self.send(now, addr, Message::ReportAcks(Box::new(ReportAcks::of(seqs))));
        }
    }

    /// Checks, opens and reports one report carried by `peer`; Ok when it is to be
    /// acknowledged (taken now, or a repeat of one taken before).
    fn take_report(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        r: Report,
    ) -> Result<(), (ErrorCode, String)> {
        let node = r.envelope.from;
        if node != peer && !self.reg.is_lsn(&peer) {
            self.refusals.relay += 1;
            let why = "only the node or its LSN may carry a node's report";
            return Err((ErrorCode::REFUSED, why.into()));
        }
        if let Some(cert) = r.certificate {
            self.learn_certificate(now, node, cert);
        }
        // Verified again each time: the node may have been revoked since.
        let Some(key) = self
            .reg
            .certificate(&node)
            .or_else(|| self.ep.peer_certificate(&node))
            .filter(|c| self.ep.trust().verify(c, now).is_ok())
            .and_then(|c| c.verifying_key().ok())
        else {
            return Err((ErrorCode::UNKNOWN_CERTIFICATE, "send it along".into()));
        };
        let network = *self.ep.trust().network();
        let opened = open_envelope(self.ep.identity(), &network, &r.envelope, &key)
            .map_err(|e| (ErrorCode::BAD_REQUEST, e.to_string()))?;
        // Only after the signature checked out: a forged stamp must not fill the window.
        match self.report_windows.accept(now, node, opened.stamp) {
            Ok(()) => {}
            Err(Refusal::Repeat) => return Ok(()),
            Err(Refusal::Busy) => return Err((ErrorCode::BUSY, "later".into())),
            Err(Refusal::Bad(why)) => return Err((ErrorCode::BAD_REQUEST, why)),
        }
        match wire::decode(&opened.payload) {
            Ok(Message::App(app)) => {
                self.events.push_back(MasterEvent::Report { node, id: app.id, data: app.data });
                Ok(())
            }
            Ok(Message::Response(response)) => {
                self.on_response(node, *response);
                Ok(())
            }
            _ => Err((ErrorCode::BAD_REQUEST, "neither a message nor an answer".into())),
        }
    }

    /// A certificate that came with a report: kept if it is valid and the sender's own.
    fn learn_certificate(&mut self, now: Timestamp, node: NodeId, cert: Certificate) {
        if cert.node_id() == node && self.ep.trust().verify(&cert, now).is_ok() {
            self.reg.remember_certificate(cert);
        }
    }

    fn reply(&mut self, now: Timestamp, addr: SocketAddr, seq: u32, code: ErrorCode, why: &str) {
        let error = ErrorMessage { seq, code, detail: why.to_owned() };
        self.send(now, addr, Message::Error(error));
    }
}
