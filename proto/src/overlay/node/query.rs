//! Fleet-wide aggregates at a node (see `overlay/query.rs`): as an LSN, a query from the
//! master is asked of each child and their answers combined with ours into one answer for the
//! master; as a child, a query from our LSN goes to the application and its answer back to the
//! LSN.
//!
//! Who may send what: a query only from the master (to an LSN) or our LSN, signed by the
//! master; a child's answer only from a child we asked, once; the master's Ack only for the
//! answer we sent it.
//!
//! Bounds: [`MAX_QUERIES`] queries asked of our children and [`MAX_QUERIES`] taken; per query
//! asked, a record per child and one running combination (never every child's answer).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    time::Duration,
};

use super::{Node, NodeEvent};
use crate::{
    overlay::query::{self, Combiner, Partial, MAX_QUERIES, MAX_QUERY_WINDOW},
    wire::{ErrorCode, FleetQuery, Message, QueryAnswer, ResponseStatus},
    NodeId, Timestamp,
};

/// A child that did not answer is asked again after this (the first copy or its answer may
/// have been lost).
const ASK_AGAIN: Duration = Duration::from_secs(2);
/// Our answer to the master is sent again after this until it is acknowledged.
const ANSWER_RETRY: Duration = Duration::from_secs(2);
/// Children asked per tick: a large subnet is asked over a few ticks, not in one burst.
const ASK_PER_TICK: usize = 100;
const TICK: Duration = Duration::from_millis(250);

/// (LSN) A query asked of our children.
struct Asking {
    copy: FleetQuery,
    combiner: Combiner,
    /// When we send what we have, answered or not.
    deadline: Timestamp,
    expires: Timestamp,
    /// Children asked that have not answered, and when we last asked (`None`: not yet).
    waiting: BTreeMap<NodeId, Option<Timestamp>>,
    /// Children that answered (a repeat of theirs is not counted again).
    answered: BTreeSet<NodeId>,
    /// Our own answer is still to come.
    own: bool,
    partial: Partial,
    /// Our answer for the master once built, its seq and when last sent; `acked` once the
    /// master has it.
    answer: Option<(QueryAnswer, Timestamp)>,
    acked: bool,
}

/// A query handed to our application.
struct Taken {
    expires: Timestamp,
    /// Who asked (our LSN, or the master taking us for an LSN); `None`: we asked ourselves as
    /// the LSN, and the answer joins our combination.
    asker: Option<SocketAddr>,
    answer: Option<(ResponseStatus, Vec<u8>)>,
}

/// The queries at this node.
#[derive(Default)]
pub(super) struct Queries {
    asking: BTreeMap<u64, Asking>,
    taken: BTreeMap<u64, Taken>,
    pub(super) combiners: query::Combiners,
    next_tick: Option<Timestamp>,
}

impl Node {
    /// Registers how answers to queries of `kind` are combined when this node is an LSN.
    pub fn set_combiner(&mut self, kind: &str, combiner: Combiner) {
        self.queries.combiners.set(kind, combiner);
    }

    /// A query from the master (we are an LSN) or from our LSN.
    pub(super) fn on_fleet_query(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        q: FleetQuery,
    ) {
        let Some(from_master) = self
            .check_fanout(now, peer, addr, q.seq, "query", |network| query::verify(network, &q))
        else {
            return;
        };
        let me = self.node_id();
        let for_me = q.nodes.as_ref().is_none_or(|n| n.contains(&me));
        let expires = Timestamp::from_secs(q.request.expires);
        if from_master && self.role.is_some() {
            return self.ask_children(now, addr, q, for_me, expires);
        }
        // A child (or a node the master still takes for an LSN): answer it ourselves.
        if !for_me {
            self.refusals.relay += 1;
            let why = "query not for this node";
            return self.reply_error(now, addr, q.seq, ErrorCode::BAD_REQUEST, why);
        }
        if from_master {
            self.send(now, addr, Message::Ack(crate::wire::Ack { seq: q.seq }));
        }
        let id = q.request.id;
        if let Some(t) = self.queries.taken.get(&id) {
            // Asked again: our answer may have been lost, or the handler is at work.
            if let Some((status, body)) = t.answer.clone() {
                self.send_query_answer(now, addr, id, status, body);
            }
            return;
        }
        if expires <= now {
            return;
        }
        self.queries.taken.retain(|_, t| t.expires > now);
        if self.queries.taken.len() >= MAX_QUERIES {
            return self.reply_error(now, addr, q.seq, ErrorCode::BUSY, "queries full");
        }
        let r = q.request;
        self.queries.taken.insert(id, Taken { expires, asker: Some(addr), answer: None });
        self.events.push_back(NodeEvent::Request { id, kind: r.kind, body: r.body });
    }

    /// (LSN) The master's query: ask the children it names, and ourselves.
    fn ask_children(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        q: FleetQuery,
        for_me: bool,
        expires: Timestamp,
    ) {
        let id = q.request.id;
        let ack = Message::Ack(crate::wire::Ack { seq: q.seq });
        if let Some(a) = self.queries.asking.get(&id) {
            // The master did not get our Ack (or our answer): both again.
            let answer = a.answer.as_ref().map(|(answer, _)| answer.clone());
            self.send(now, addr, ack);
            if let Some(answer) = answer {
                self.send(now, addr, Message::QueryAnswer(Box::new(answer)));
            }
            return;
        }
        if expires <= now {
            return self.send(now, addr, ack);
        }
        self.queries.asking.retain(|_, a| a.expires > now);
        if self.queries.asking.len() >= MAX_QUERIES {
            // Not acknowledged: the master asks again.
            return self.reply_error(now, addr, q.seq, ErrorCode::BUSY, "queries full");
        }
        self.send(now, addr, ack);
        let Some(combiner) = self.queries.combiners.get(&q.request.kind).cloned() else {
            let why = format!("the LSN cannot combine answers of kind {:?}", q.request.kind);
            let answer = QueryAnswer {
                seq: self.next_seq(),
                id,
                status: ResponseStatus::UNKNOWN_KIND,
                body: why.into_bytes(),
                hosts: 0,
                failed: 0,
                missing: 0,
            };
            self.send(now, addr, Message::QueryAnswer(Box::new(answer)));
            return;
        };
        let waiting = self
            .role
            .as_ref()
            .map(|role| {
                role.children
                    .values()
                    .filter(|c| c.adopted_from.is_none())
                    .filter(|c| q.nodes.as_ref().is_none_or(|n| n.contains(&c.id)))
                    .map(|c| (c.id, None))
                    .collect()
            })
            .unwrap_or_default();
        let window = Duration::from_millis(q.window_ms.into()).min(MAX_QUERY_WINDOW);
        let (kind, body) = (q.request.kind.clone(), q.request.body.clone());
        let asking = Asking {
            copy: q,
            combiner,
            deadline: now + window,
            expires,
            waiting,
            answered: BTreeSet::new(),
            own: for_me,
            partial: Partial::default(),
            answer: None,
            acked: false,
        };
        self.queries.asking.insert(id, asking);
        self.queries.next_tick = Some(now);
        if for_me {
            self.queries.taken.insert(id, Taken { expires, asker: None, answer: None });
            self.events.push_back(NodeEvent::Request { id, kind, body });
        }
    }

    /// Whether `id` is a query handed to the application, not answered yet.
    pub(super) fn query_pending(&self, id: u64) -> bool {
        self.queries.taken.get(&id).is_some_and(|t| t.answer.is_none())
    }

    /// The application's answer to query `id` (see [`Node::respond`]).
    pub(super) fn answer_query(
        &mut self,
        now: Timestamp,
        id: u64,
        status: ResponseStatus,
        body: Vec<u8>,
    ) {
        let (status, body) = super::requests::fit_answer(status, body);
        let Some(t) = self.queries.taken.get_mut(&id) else { return };
        t.answer = Some((status, body.clone()));
        match t.asker {
            Some(addr) => self.send_query_answer(now, addr, id, status, body),
            None => {
                if let Some(a) = self.queries.asking.get_mut(&id) {
                    if a.own && a.answer.is_none() {
                        a.own = false;
                        a.partial.add(&a.combiner, status == ResponseStatus::OK, &body, 1);
                        self.queries.next_tick = Some(now);
                    }
                }
            }
        }
    }

    fn send_query_answer(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        id: u64,
        status: ResponseStatus,
        body: Vec<u8>,
    ) {
        let seq = self.next_seq();
        let answer = QueryAnswer { seq, id, status, body, hosts: 1, failed: 0, missing: 0 };
        self.send(now, addr, Message::QueryAnswer(Box::new(answer)));
    }

    /// (LSN) A child's answer: counted once, and only from a child we asked.
    pub(super) fn on_query_answer(&mut self, now: Timestamp, peer: NodeId, a: QueryAnswer) {
        let Some(asking) = self.queries.asking.get_mut(&a.id) else {
            return;
        };
        if asking.waiting.remove(&peer).is_none() {
            // A repeat, or an answer after we sent ours, is harmless; anyone else's is refused.
            if !asking.answered.contains(&peer) {
                self.refusals.answer += 1;
            }
            return;
        }
        asking.answered.insert(peer);
        if asking.answer.is_some() {
            return;
        }
        // A child speaks for itself alone, whatever it claims.
        asking.partial.add(&asking.combiner, a.status == ResponseStatus::OK, &a.body, 1);
        self.queries.next_tick = Some(now);
    }

    /// An Ack: true if it settled our answer to the master.
    pub(super) fn query_ack(&mut self, peer: NodeId, seq: u32) -> bool {
        if peer != self.master_id() {
            return false;
        }
        for a in self.queries.asking.values_mut() {
            if a.answer.as_ref().is_some_and(|(answer, _)| answer.seq == seq) {
                a.acked = true;
                return true;
            }
        }
        false
    }

    pub(super) fn query_timers(&mut self, now: Timestamp) {
        if self.queries.next_tick.is_none_or(|t| now < t) {
            return;
        }
        self.queries.taken.retain(|_, t| t.expires > now);
        let Some(role) = self.role.as_ref() else {
            // No longer an LSN: the master counts our children as missing.
            self.queries.asking.clear();
            self.queries.next_tick = None;
            return;
        };
        let children: BTreeMap<NodeId, SocketAddr> =
            role.children.iter().map(|(id, c)| (*id, c.addr)).collect();
        self.queries.asking.retain(|_, a| a.expires > now);
        let mut budget = ASK_PER_TICK;
        let mut ask = Vec::new();
        let mut finish = Vec::new();
        let mut resend = Vec::new();
        for (id, a) in self.queries.asking.iter_mut() {
            if let Some((answer, sent)) = &mut a.answer {
                if !a.acked && now >= *sent + ANSWER_RETRY {
                    *sent = now;
                    resend.push(answer.clone());
                }
                continue;
            }
            if now >= a.deadline || (a.waiting.is_empty() && !a.own) {
                finish.push(*id);
                continue;
            }
            for (child, asked) in a.waiting.iter_mut() {
                if budget == 0 {
                    break;
                }
                let Some(addr) = children.get(child) else { continue };
                if asked.is_none_or(|t| now >= t + ASK_AGAIN) {
                    *asked = Some(now);
                    budget -= 1;
                    ask.push((*id, *addr));
                }
            }
        }
        for (id, addr) in ask {
            let seq = self.next_seq();
            let Some(a) = self.queries.asking.get(&id) else { continue };
            let copy = FleetQuery { seq, ..a.copy.clone() };
            self.send(now, addr, Message::FleetQuery(Box::new(copy)));
        }
        let master = self.cfg.master;
        for id in finish {
            let seq = self.next_seq();
            let Some(a) = self.queries.asking.get_mut(&id) else { continue };
            let missing = a.waiting.len() as u32 + u32::from(a.own);
            let p = std::mem::take(&mut a.partial);
            let (status, body) = match p.body {
                Some(body) => (ResponseStatus::OK, body),
                None => {
                    let why = p.why.unwrap_or_else(|| "no answers".to_owned());
                    (ResponseStatus::FAILED, why.into_bytes())
                }
            };
            let answer =
                QueryAnswer { seq, id, status, body, hosts: p.hosts, failed: p.failed, missing };
            a.answer = Some((answer.clone(), now));
            self.send(now, master, Message::QueryAnswer(Box::new(answer)));
        }
        for answer in resend {
            self.send(now, master, Message::QueryAnswer(Box::new(answer)));
        }
        let busy = self.queries.asking.values().any(|a| !a.acked);
        self.queries.next_tick = busy.then_some(now + TICK);
    }

    pub(super) fn query_deadline(&self) -> Option<Timestamp> {
        self.queries.next_tick
    }
}
