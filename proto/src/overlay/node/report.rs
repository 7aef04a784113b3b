//! A node's messages for the master: sealed end to end, carried by its LSN, retried until
//! the master acknowledges them.
//!
//! A report is sealed once, when first sent, and every retry carries the same envelope: the
//! master accepts each envelope stamp once (its replay window), and acknowledges a repeat
//! without reporting it again, so a report whose acknowledgement was lost is not seen twice.
//! The LSN relays it like the master's messages downwards (`relay.rs`), and only for its own
//! children. To seal, the node needs the master's key, which it learns from the master's
//! certificate in any session with the master (every node opens one to find its LSN).

use std::{collections::BTreeMap, time::Duration};

use super::{relay::MAX_RELAYS, Node, NodeEvent, NodeState};
use crate::{
    secure::{seal_envelope, SealedEnvelope},
    wire::{self, AppMessage, ErrorCode, ErrorMessage, Message, Report},
    NodeId, Timestamp,
};

/// Most reports awaiting the master's acknowledgement.
pub const MAX_PENDING_REPORTS: usize = 1024;
/// How long a report is retried before it is given up (well inside the master's replay
/// window, so a late retry is still recognised as a repeat).
pub const REPORT_LIFETIME: Duration = Duration::from_secs(300);
/// The first retry; each next one waits twice as long, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Why a report did not reach the master.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// [`MAX_PENDING_REPORTS`] reports await acknowledgement already.
    #[error("too many reports awaiting the master ({MAX_PENDING_REPORTS})")]
    Full,
    /// The report does not fit a frame.
    #[error("report too large: {0}")]
    TooLarge(String),
    /// A report with this id awaits acknowledgement already.
    #[error("a report with id {0} is pending already")]
    Duplicate(u64),
    /// The master refused it.
    #[error("the master refused the report: {0}")]
    Refused(String),
    /// Not acknowledged within [`REPORT_LIFETIME`].
    #[error("no acknowledgement from the master in time")]
    Timeout,
}

/// What a pending report is: the application's (by its id) or our answer to a request.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Key {
    App(u64),
    Response(u64),
}

struct Pending {
    key: Key,
    /// The encoded message, until it is sealed (the master's key was not known yet).
    frame: Vec<u8>,
    envelope: Option<SealedEnvelope>,
    /// The hop of the attempt in flight and its sequence number: only its answer counts.
    hop: Option<(NodeId, u32)>,
    next_try: Timestamp,
    wait: Duration,
    give_up: Timestamp,
}

/// The reports awaiting the master.
#[derive(Default)]
pub(crate) struct Reports {
    pending: BTreeMap<Key, Pending>,
    /// The master's X25519 key, from its certificate.
    master_key: Option<[u8; 32]>,
    /// The master asked for our certificate, or has not acknowledged a report yet.
    master_has_cert: bool,
    last_stamp: u64,
}

impl Node {
    /// Sends `data` to the master, sealed end to end and carried by our LSN. The outcome
    /// arrives as [`NodeEvent::ReportDelivered`] or [`NodeEvent::ReportFailed`] with `id`.
    ///
    /// # Errors
    /// [`ReportError::Full`], [`ReportError::Duplicate`] or [`ReportError::TooLarge`]; the
    /// report is then not queued.
    pub fn report(&mut self, now: Timestamp, id: u64, data: &[u8]) -> Result<(), ReportError> {
        if self.reports.pending.len() >= MAX_PENDING_REPORTS {
            return Err(ReportError::Full);
        }
        if self.reports.pending.contains_key(&Key::App(id)) {
            return Err(ReportError::Duplicate(id));
        }
        let app = Message::App(AppMessage { id, data: data.to_vec() });
        self.report_message(now, Key::App(id), &app)
    }

    /// Queues `message` for the master under `key` (replacing a pending one with that key).
    pub(super) fn report_message(
        &mut self,
        now: Timestamp,
        key: Key,
        message: &Message,
    ) -> Result<(), ReportError> {
        let mut frame = Vec::new();
        wire::encode(message, &mut frame).map_err(|e| ReportError::TooLarge(e.to_string()))?;
        let pending = Pending {
            key,
            frame,
            envelope: None,
            hop: None,
            next_try: now,
            wait: FIRST_RETRY,
            give_up: now + REPORT_LIFETIME,
        };
        self.reports.pending.insert(key, pending);
        self.report_timers(now);
        Ok(())
    }

    /// Forgets every pending report, as if each had been given up.
    #[cfg(test)]
    pub(crate) fn drop_reports(&mut self) {
        self.reports.pending.clear();
    }

    /// Reports awaiting the master's acknowledgement.
    pub fn reports_pending(&self) -> usize {
        self.reports.pending.len()
    }

    /// A session came up: if it is the master's, keep its key for sealing.
    pub(super) fn report_connected(&mut self, now: Timestamp, peer: NodeId) {
        if peer != self.master_id() {
            return;
        }
        if let Some(cert) = self.ep.peer_certificate(&peer) {
            self.reports.master_key = Some(cert.body.x25519);
            if !self.reports.pending.is_empty() {
                self.report_timers(now);
            }
        }
    }

    /// Where reports go now: our LSN, or the master itself when we are an LSN or have none.
    fn report_hop(&self) -> (NodeId, std::net::SocketAddr) {
        match (&self.lsn, self.state) {
            (Some(link), s) if s != NodeState::IsLsn => (link.id, link.addr),
            _ => (self.master_id(), self.cfg.master),
        }
    }

    pub(super) fn report_timers(&mut self, now: Timestamp) {
        let due: Vec<Key> = self
            .reports
            .pending
            .values()
            .filter(|p| now >= p.next_try || now >= p.give_up)
            .map(|p| p.key)
            .collect();
        for key in due {
            self.report_attempt(now, key);
        }
    }

    fn report_attempt(&mut self, now: Timestamp, key: Key) {
        let Some(p) = self.reports.pending.get(&key) else { return };
        if now >= p.give_up {
            self.reports.pending.remove(&key);
            // A response given up on is still in the request log: the master asks again
            // and gets it then (`requests.rs`).
            if let Key::App(id) = key {
                let error = ReportError::Timeout;
                self.events.push_back(NodeEvent::ReportFailed { id, error });
            }
            return;
        }
        if p.envelope.is_none() && !self.seal(now, key) {
            // No master key yet: a session with the master brings it (`report_connected`).
            let (master, addr) = (self.master_id(), self.cfg.master);
            self.ep.connect(now, addr, Some(master));
            if let Some(p) = self.reports.pending.get_mut(&key) {
                p.next_try = now + p.wait;
                p.wait = (p.wait * 2).min(MAX_RETRY);
            }
            return;
        }
        let (hop, addr) = self.report_hop();
        let seq = self.next_seq();
        let certificate =
            if self.reports.master_has_cert { None } else { self.ep.certificate().cloned() };
        let Some(p) = self.reports.pending.get_mut(&key) else { return };
        let Some(envelope) = p.envelope.clone() else { return };
        p.hop = Some((hop, seq));
        p.next_try = now + p.wait;
        p.wait = (p.wait * 2).min(MAX_RETRY);
        let report = Report { seq, envelope, certificate };
        if self.role.is_some() && hop == self.master_id() {
            // An LSN's own answer to a fleet request goes like its children's, a few ms
            // behind it: in one batch, with one acknowledgement (`report_batch.rs`).
            return self.batch_report(now, report);
        }
        self.send(now, addr, Message::Report(Box::new(report)));
    }

    /// The master's X25519 key, as a message it signed gave it.
    pub(super) fn learn_master_key(&mut self, key: [u8; 32]) {
        self.reports.master_key.get_or_insert(key);
    }

    /// Seals report `key` to the master; false if the master's key is not known yet.
    fn seal(&mut self, now: Timestamp, key: Key) -> bool {
        let Some(master_key) = self
            .reports
            .master_key
            .or_else(|| self.ep.peer_certificate(&self.master_id()).map(|c| c.body.x25519))
        else {
            return false;
        };
        self.reports.master_key = Some(master_key);
        // Stamps are our clock in microseconds, unique and increasing (the master's window).
        let stamp = now.as_micros().max(self.reports.last_stamp + 1);
        self.reports.last_stamp = stamp;
        let (identity, network, master) =
            (self.ep.identity().clone(), *self.ep.trust().network(), self.master_id());
        let Some(frame) = self.reports.pending.get(&key).map(|p| p.frame.clone()) else {
            return false;
        };
        let rng = self.ep.rng();
        match seal_envelope(&identity, &network, master, &master_key, stamp, &frame, rng) {
            Ok(envelope) => {
                if let Some(p) = self.reports.pending.get_mut(&key) {
                    p.envelope = Some(envelope);
                    p.frame = Vec::new();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The pending report whose attempt `seq` went to `peer`.
    fn report_for(&self, peer: NodeId, seq: u32) -> Option<Key> {
        self.reports.pending.values().find(|p| p.hop == Some((peer, seq))).map(|p| p.key)
    }

    /// An Ack: true if it settled one of our reports.
    pub(super) fn report_ack(&mut self, peer: NodeId, seq: u32) -> bool {
        let Some(key) = self.report_for(peer, seq) else { return false };
        self.reports.pending.remove(&key);
        self.reports.master_has_cert = true;
        match key {
            Key::App(id) => self.events.push_back(NodeEvent::ReportDelivered { id }),
            Key::Response(id) => self.answer_delivered(id),
        }
        true
    }

    /// An Error: true if it answered one of our reports.
    pub(super) fn report_error(&mut self, now: Timestamp, peer: NodeId, e: &ErrorMessage) -> bool {
        let Some(key) = self.report_for(peer, e.seq) else { return false };
        match e.code {
            ErrorCode::UNKNOWN_CERTIFICATE => {
                self.reports.master_has_cert = false;
                self.report_retry_now(now, key);
            }
            // The LSN lost us, is full, or the master is not reachable from it: try again
            // later, by then perhaps through another LSN.
            ErrorCode::UNREACHABLE | ErrorCode::BUSY | ErrorCode::TIMEOUT => {
                if let Some(p) = self.reports.pending.get_mut(&key) {
                    p.hop = None;
                }
            }
            _ => {
                self.reports.pending.remove(&key);
                if let Key::App(id) = key {
                    let error = ReportError::Refused(e.detail.clone());
                    self.events.push_back(NodeEvent::ReportFailed { id, error });
                }
            }
        }
        true
    }

    fn report_retry_now(&mut self, now: Timestamp, key: Key) {
        if let Some(p) = self.reports.pending.get_mut(&key) {
            p.next_try = now;
        }
        self.report_attempt(now, key);
    }

    pub(super) fn report_deadline(&self) -> Option<Timestamp> {
        self.reports.pending.values().map(|p| p.next_try.min(p.give_up)).min()
    }

    /// (LSN) A child's report for the master: relayed if it is our child's own.
    pub(super) fn on_report(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: std::net::SocketAddr,
        r: Report,
    ) {
        let is_child = self.role.as_ref().is_some_and(|role| role.children.contains_key(&peer));
        if !is_child || r.envelope.from != peer || r.envelope.to != self.master_id() {
            self.refusals.relay += 1;
            let why = "only an LSN's child may send it its own reports for the master";
            return self.reply_error(now, addr, r.seq, ErrorCode::REFUSED, why);
        }
        if self.role.as_ref().is_some_and(|role| role.forwards.len() >= MAX_RELAYS) {
            return self.reply_error(now, addr, r.seq, ErrorCode::BUSY, "LSN relay full");
        }
        let seq = self.next_seq();
        let master = self.master_id();
        self.relay_upwards(now, seq, r.seq, addr, master);
        self.batch_report(now, Report { seq, ..r });
    }
}
