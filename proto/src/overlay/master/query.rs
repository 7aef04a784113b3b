//! The master's fleet-wide aggregates (see `overlay/query.rs`): one signed query to each LSN
//! of the audience present now, sent again until the LSN acknowledges it; one combined answer
//! back from each, acknowledged and combined into the result. It ends once every LSN answered,
//! or at the window's end plus [`QUERY_GRACE`], as [`MasterEvent::QueryEnded`].
//!
//! Queries are reads and short: they are not saved, and a master restart forgets them (the
//! application asks again).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use super::{requests::RETRY, Master, MasterEvent, RequestError, RequestId};
use crate::{
    overlay::{
        fleet::Audience,
        query::{self, Combiner, Partial, MAX_QUERIES, MAX_QUERY_WINDOW},
    },
    wire::{self, Ack, FleetQuery, Message, QueryAnswer, Request, ResponseStatus},
    NodeId, Timestamp,
};

/// How long past the window the master waits for the LSNs' answers (their last children's
/// answers, then theirs, may each need a retry).
pub const QUERY_GRACE: Duration = Duration::from_secs(5);

/// The result of a fleet-wide aggregate ([`MasterEvent::QueryEnded`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryOutcome {
    /// [`ResponseStatus::OK`] when `body` combines at least one node's answer.
    pub status: ResponseStatus,
    /// The combined answer, or why there is none.
    pub body: Vec<u8>,
    /// Nodes whose answers `body` combines.
    pub hosts: u32,
    /// Nodes that answered a failure (or an answer that could not be combined).
    pub failed: u32,
    /// Nodes asked that did not answer in time (all of an LSN's that did not answer).
    pub missing: u32,
    /// LSNs asked.
    pub lsns: u32,
    /// LSNs that did not answer in time.
    pub lsns_silent: u32,
}

struct Asked {
    addr: SocketAddr,
    /// How many nodes it is to ask, itself included (counted missing if it never answers).
    expected: u32,
    copy: FleetQuery,
    /// Its copy's last seq and when sent, until it acknowledges.
    pending: Option<(u32, Timestamp)>,
    answered: bool,
}

struct OpenQuery {
    combiner: Combiner,
    ends: Timestamp,
    lsns: BTreeMap<NodeId, Asked>,
    partial: Partial,
    missing: u32,
}

/// The open queries.
#[derive(Default)]
pub(super) struct Queries {
    open: BTreeMap<RequestId, OpenQuery>,
    pub(super) combiners: query::Combiners,
}

impl Master {
    /// Registers how answers to queries of `kind` are combined (the nodes that may be LSNs
    /// need the same combiner).
    pub fn set_combiner(&mut self, kind: &str, combiner: Combiner) {
        self.queries.combiners.set(kind, combiner);
    }

    /// Asks every present node of `audience` a query of `kind` with `body`: each LSN asks its
    /// children, waits up to `window` for their answers and sends one combination; the
    /// result arrives as [`MasterEvent::QueryEnded`] with the id returned.
    ///
    /// # Errors
    /// [`RequestError::NoCombiner`] without a combiner for `kind`, [`RequestError::Full`]
    /// beyond [`MAX_QUERIES`], [`RequestError::TooLarge`], [`RequestError::BadTtl`] for a
    /// window of zero or over [`MAX_QUERY_WINDOW`].
    pub fn query_fleet(
        &mut self,
        now: Timestamp,
        audience: Audience,
        kind: &str,
        body: &[u8],
        window: Duration,
    ) -> Result<RequestId, RequestError> {
        if window.is_zero() || window > MAX_QUERY_WINDOW {
            return Err(RequestError::BadTtl);
        }
        let Some(combiner) = self.queries.combiners.get(kind).cloned() else {
            return Err(RequestError::NoCombiner(kind.to_owned()));
        };
        if self.queries.open.len() >= MAX_QUERIES {
            return Err(RequestError::Full("queries"));
        }
        let ends = now + window + QUERY_GRACE;
        let request = Request {
            id: 0,
            kind: kind.to_owned(),
            body: body.to_vec(),
            expires: ends.as_secs() + 1,
        };
        let window_ms = window.as_millis() as u32;
        let probe =
            FleetQuery { seq: u32::MAX, request, nodes: None, window_ms, signature: [0; 64] };
        let size = wire::encoded_len(&Message::FleetQuery(Box::new(probe.clone())));
        if size > wire::MAX_FRAME_LEN - 64 {
            return Err(RequestError::TooLarge(format!("{size} bytes")));
        }
        let id = self.outbox.next_id(now);
        let request = Request { id, ..probe.request };
        let sizes = self.lsn_sizes();
        let network = *self.ep.trust().network();
        let mut lsns = BTreeMap::new();
        for (lsn, addr, nodes) in self.fleet_lsns(&audience) {
            let expected = match &nodes {
                Some(n) => n.len() as u32,
                None => sizes.get(&lsn).copied().unwrap_or(1),
            };
            let signature = query::sign(self.ep.identity(), &network, &request, &nodes, window_ms);
            let copy = FleetQuery { seq: 0, request: request.clone(), nodes, window_ms, signature };
            lsns.insert(lsn, Asked { addr, expected, copy, pending: None, answered: false });
        }
        let open = OpenQuery { combiner, ends, lsns, partial: Partial::default(), missing: 0 };
        self.queries.open.insert(id, open);
        self.send_queries(now, id);
        if self.queries.open.get(&id).is_some_and(|o| o.lsns.is_empty()) {
            self.end_query(id);
        }
        Ok(id)
    }

    /// Queries open now.
    pub fn queries_open(&self) -> usize {
        self.queries.open.len()
    }

    /// Nodes under each LSN, itself included.
    fn lsn_sizes(&self) -> BTreeMap<NodeId, u32> {
        let topology = self.reg.topology();
        topology
            .subnets
            .iter()
            .flat_map(|s| &s.lsns)
            .map(|l| (l.id, 1 + l.children.len() as u32))
            .collect()
    }

    /// Sends query `id`'s copy to every LSN that has not acknowledged it, when due.
    fn send_queries(&mut self, now: Timestamp, id: RequestId) {
        let Some(open) = self.queries.open.get(&id) else { return };
        let due: Vec<NodeId> = open
            .lsns
            .iter()
            .filter(|(_, a)| !a.answered)
            .filter(|(_, a)| match a.pending {
                None => a.copy.seq == 0,
                Some((_, t)) => now >= t + RETRY,
            })
            .map(|(lsn, _)| *lsn)
            .collect();
        for lsn in due {
            let seq = self.next_seq();
            let Some(a) = self.queries.open.get_mut(&id).and_then(|o| o.lsns.get_mut(&lsn)) else {
                continue;
            };
            a.copy.seq = seq;
            a.pending = Some((seq, now));
            let (addr, copy) = (a.addr, a.copy.clone());
            self.send(now, addr, Message::FleetQuery(Box::new(copy)));
        }
    }

    pub(super) fn query_timers(&mut self, now: Timestamp) {
        let ids: Vec<RequestId> = self.queries.open.keys().copied().collect();
        for id in ids {
            if self.queries.open.get(&id).is_some_and(|o| now >= o.ends) {
                self.end_query(id);
            } else {
                self.send_queries(now, id);
            }
        }
    }

    pub(super) fn query_deadline(&self) -> Option<Timestamp> {
        let retries = self.queries.open.values().flat_map(|o| o.lsns.values());
        let retry = retries.filter_map(|a| a.pending.map(|(_, t)| t + RETRY)).min();
        let ends = self.queries.open.values().map(|o| o.ends).min();
        retry.into_iter().chain(ends).min()
    }

    /// An Ack from `peer`: true if it settled a query's copy.
    pub(super) fn query_acked(&mut self, peer: NodeId, seq: u32) -> bool {
        for open in self.queries.open.values_mut() {
            for (lsn, a) in open.lsns.iter_mut() {
                if a.pending.is_some_and(|(s, _)| s == seq) {
                    if *lsn != peer {
                        self.refusals.answer += 1;
                    } else {
                        a.pending = None;
                    }
                    return true;
                }
            }
        }
        false
    }

    /// An LSN's combined answer: counted once, only from an LSN the query was sent to.
    pub(super) fn on_query_answer(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        a: QueryAnswer,
    ) {
        let Some(open) = self.queries.open.get_mut(&a.id) else {
            // Ended (or never ours): acknowledged so the LSN stops, and nothing else.
            return self.send(now, addr, Message::Ack(Ack { seq: a.seq }));
        };
        let Some(asked) = open.lsns.get_mut(&peer) else {
            self.refusals.answer += 1;
            return;
        };
        if !asked.answered {
            asked.answered = true;
            asked.pending = None;
            // An LSN speaks for at most the nodes it was to ask.
            let hosts = a.hosts.min(asked.expected);
            let (failed, missing) = (a.failed.min(asked.expected), a.missing.min(asked.expected));
            if a.status == ResponseStatus::OK && hosts > 0 {
                open.partial.add(&open.combiner, true, &a.body, hosts);
            } else {
                open.partial.why = Some(String::from_utf8_lossy(&a.body).into_owned());
            }
            open.partial.failed += failed;
            open.missing += missing;
            if a.status != ResponseStatus::OK && failed + missing == 0 {
                // The LSN could not ask at all (no combiner for the kind): all its nodes failed.
                open.partial.failed += asked.expected;
            }
        }
        self.send(now, addr, Message::Ack(Ack { seq: a.seq }));
        if self.queries.open.get(&a.id).is_some_and(|o| o.lsns.values().all(|l| l.answered)) {
            self.end_query(a.id);
        }
    }

    fn end_query(&mut self, id: RequestId) {
        let Some(open) = self.queries.open.remove(&id) else { return };
        let silent: Vec<&Asked> = open.lsns.values().filter(|a| !a.answered).collect();
        let missing = open.missing + silent.iter().map(|a| a.expected).sum::<u32>();
        let p = open.partial;
        let (status, body) = match p.body {
            Some(body) => (ResponseStatus::OK, body),
            None => {
                let why = p.why.unwrap_or_else(|| "no answers".to_owned());
                (ResponseStatus::FAILED, why.into_bytes())
            }
        };
        let outcome = QueryOutcome {
            status,
            body,
            hosts: p.hosts,
            failed: p.failed,
            missing,
            lsns: open.lsns.len() as u32,
            lsns_silent: silent.len() as u32,
        };
        self.events.push_back(MasterEvent::QueryEnded { id, outcome });
    }
}
