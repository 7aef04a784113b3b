//! Fleet-wide aggregates (`overlay/query.rs`): each LSN combines its children's answers, the
//! master combines the LSNs'; missing and failing nodes are counted; forged queries and
//! answers are refused.

use std::{sync::Arc, time::Duration};

use super::{tests::SEC, NodeEvent};
use crate::{
    overlay::{
        fleet::Audience, query::Combiner, MasterEvent, NodeState, QueryOutcome, RequestError,
        SubnetKey,
    },
    sim::Simulation,
    wire::{FleetQuery, Message, QueryAnswer, Request, ResponseStatus},
};

/// Sums little-endian u64s: associative, as a combiner must be.
fn sum() -> Combiner {
    Arc::new(|a: &[u8], b: &[u8]| {
        let read = |x: &[u8]| x.try_into().map(u64::from_le_bytes).map_err(|_| "not a u64");
        Ok((read(a)? + read(b)?).to_le_bytes().to_vec())
    })
}

/// A settled fleet, every node and the master able to combine "sum".
fn fleet(seed: u64, subnets: u16, per: usize) -> Simulation {
    let mut w = super::tests_fleet::fleet(seed, subnets, per);
    for i in 0..w.slots.len() {
        w.node_do(i, |n, _| n.set_combiner("sum", sum()));
    }
    w.master_do(|m, _| m.set_combiner("sum", sum()));
    w
}

/// Slots handed query `id` that have not answered it yet.
fn asked(w: &Simulation, id: u64, done: &[usize]) -> Vec<usize> {
    (0..w.slots.len())
        .filter(|i| !done.contains(i))
        .filter(|&i| {
            w.slots[i]
                .events
                .iter()
                .any(|(_, e)| matches!(e, NodeEvent::Request { id: r, .. } if *r == id))
        })
        .collect()
}

/// Runs `for_` while every node handed `id` (but those in `silent`) answers `value(slot)` as
/// soon as it has it; returns how often each slot was handed it.
fn answer_while_running(
    w: &mut Simulation,
    id: u64,
    for_: Duration,
    silent: &[usize],
    value: impl Fn(usize) -> Result<u64, &'static str>,
) -> Vec<usize> {
    let mut done: Vec<usize> = silent.to_vec();
    let step = Duration::from_millis(100);
    let mut t = Duration::ZERO;
    while t < for_ {
        for i in asked(w, id, &done) {
            let (status, body) = match value(i) {
                Ok(v) => (ResponseStatus::OK, v.to_le_bytes().to_vec()),
                Err(why) => (ResponseStatus::FAILED, why.as_bytes().to_vec()),
            };
            w.node_do(i, |n, now| n.respond(now, id, status, body)).expect("pending");
            done.push(i);
        }
        w.run_for(step);
        t += step;
    }
    (0..w.slots.len())
        .map(|i| {
            let handed = |e: &NodeEvent| matches!(e, NodeEvent::Request { id: r, .. } if *r == id);
            w.slots[i].events.iter().filter(|(_, e)| handed(e)).count()
        })
        .collect()
}

fn ended(w: &Simulation, id: u64) -> Option<QueryOutcome> {
    w.master_events.iter().find_map(|(_, e)| match e {
        MasterEvent::QueryEnded { id: r, outcome } if *r == id => Some(outcome.clone()),
        _ => None,
    })
}

fn total(outcome: &QueryOutcome) -> u64 {
    u64::from_le_bytes(outcome.body.as_slice().try_into().expect("a u64"))
}

#[test]
fn lsns_combine_their_childrens_answers_and_the_master_gets_one_per_lsn() {
    let mut w = fleet(91, 3, 8);
    // What the master receives in 10 s without a query.
    let quiet = w.stats.master_rate.total;
    w.run_for(10 * SEC);
    let baseline = w.stats.master_rate.total - quiet;
    let before = w.stats.master_rate.total;
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::All, "sum", b"", 5 * SEC));
    let id = id.expect("asked");
    let handed = answer_while_running(&mut w, id, 10 * SEC, &[], |i| Ok(i as u64 + 1));
    assert!(handed.iter().all(|n| *n == 1), "every node asked once: {handed:?}");
    let outcome = ended(&w, id).expect("ended once every LSN answered");
    assert_eq!(outcome.status, ResponseStatus::OK);
    assert_eq!(total(&outcome), (1..=24).sum::<u64>());
    assert_eq!((outcome.hosts, outcome.failed, outcome.missing), (24, 0, 0));
    assert_eq!((outcome.lsns, outcome.lsns_silent), (3, 0));
    // Per LSN the master sent its copy and an Ack and received an Ack and one answer: not a
    // datagram per node (24 answers alone).
    let handled = w.stats.master_rate.total - before;
    assert!(
        handled <= baseline + 3 * 4 + 2,
        "the master sent and received {handled} datagrams ({baseline} without the query)"
    );
    assert_eq!(w.master().queries_open(), 0);
}

#[test]
fn silent_and_failing_nodes_are_counted_and_the_query_ends_on_time() {
    let mut w = fleet(92, 2, 6);
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::All, "sum", b"", 3 * SEC));
    let id = id.expect("asked");
    // One node never answers, one answers a failure, one an answer that cannot be combined.
    let lsns: Vec<usize> = (0..12).filter(|&i| w.node(i).state() == NodeState::IsLsn).collect();
    let children: Vec<usize> = (0..12).filter(|i| !lsns.contains(i)).collect();
    let (silent, failing) = (children[0], children[1]);
    let mut done = vec![silent];
    let mut odd = None;
    for _ in 0..20 {
        for i in asked(&w, id, &done) {
            let body = if i == failing {
                Err(b"disk unreadable".to_vec())
            } else if odd.is_none() && !lsns.contains(&i) {
                odd = Some(i);
                Ok(b"three".to_vec())
            } else {
                Ok((i as u64).to_le_bytes().to_vec())
            };
            let (status, body) = match body {
                Ok(b) => (ResponseStatus::OK, b),
                Err(b) => (ResponseStatus::FAILED, b),
            };
            w.node_do(i, |n, now| n.respond(now, id, status, body)).expect("pending");
            done.push(i);
        }
        w.run_for(SEC / 2);
    }
    let outcome = ended(&w, id).expect("ended after the window and the grace");
    let at = w.master_events.iter().find(|(_, e)| matches!(e, MasterEvent::QueryEnded { .. }));
    assert!(at.is_some());
    assert_eq!(outcome.missing, 1, "{outcome:?}");
    // The failing node, and either the odd answer or the answers it was combined with.
    assert!(outcome.failed >= 2, "{outcome:?}");
    assert_eq!(outcome.hosts + outcome.failed + outcome.missing, 12, "{outcome:?}");
    assert_eq!(outcome.lsns_silent, 0);
}

#[test]
fn a_subnet_query_asks_that_subnet_only_and_a_crashed_lsn_is_counted_silent() {
    let mut w = fleet(93, 2, 5);
    let key: SubnetKey = w.master().topology().subnets[0].key;
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::Subnet(key), "sum", b"", 2 * SEC));
    let id = id.expect("asked");
    let handed = answer_while_running(&mut w, id, 5 * SEC, &[], |_| Ok(1));
    assert_eq!(handed.iter().sum::<usize>(), 5, "one subnet's nodes: {handed:?}");
    let outcome = ended(&w, id).expect("ended");
    assert_eq!((outcome.hosts, outcome.lsns), (5, 1));
    // Now the LSNs die as soon as they have the query: nobody answers for their subnets.
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::All, "sum", b"", 2 * SEC));
    let id = id.expect("asked");
    w.run_for(SEC / 10);
    for i in (0..10).filter(|&i| w.node(i).state() == NodeState::IsLsn).collect::<Vec<_>>() {
        w.crash(i);
    }
    w.run_for(10 * SEC);
    let outcome = ended(&w, id).expect("ended at the window and grace");
    assert_eq!((outcome.status, outcome.hosts), (ResponseStatus::FAILED, 0));
    assert_eq!((outcome.lsns, outcome.lsns_silent, outcome.missing), (2, 2, 10));
}

#[test]
fn a_query_needs_a_combiner_and_an_lsn_without_one_reports_its_nodes_failed() {
    let mut w = fleet(94, 1, 4);
    let refused = w.master_do(|m, now| m.query_fleet(now, Audience::All, "avg", b"", SEC));
    assert_eq!(refused, Err(RequestError::NoCombiner("avg".into())));
    let long = w.master_do(|m, now| m.query_fleet(now, Audience::All, "sum", b"", 61 * SEC));
    assert_eq!(long, Err(RequestError::BadTtl));
    // The master can combine "avg", the LSN cannot.
    w.master_do(|m, _| m.set_combiner("avg", sum()));
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::All, "avg", b"", SEC));
    w.run_for(3 * SEC);
    let outcome = ended(&w, id.expect("asked")).expect("ended once the LSN answered");
    assert_eq!((outcome.status, outcome.hosts, outcome.failed), (ResponseStatus::FAILED, 0, 4));
    assert!(String::from_utf8_lossy(&outcome.body).contains("cannot combine"), "{outcome:?}");
}

#[test]
fn forged_queries_and_answers_are_refused() {
    let mut w = fleet(95, 1, 4);
    let lsn = (0..4).find(|&i| w.node(i).state() == NodeState::IsLsn).expect("an LSN");
    let child = (0..4).find(|&i| i != lsn).expect("a child");
    let other = (0..4).find(|&i| i != lsn && i != child).expect("another child");
    let request = Request { id: 1 << 40, kind: "sum".into(), body: vec![], expires: u64::MAX };
    // A child sends another child a query, and the LSN sends one without the signature.
    let forged = FleetQuery {
        seq: 9,
        request: request.clone(),
        nodes: None,
        window_ms: 1000,
        signature: [1; 64],
    };
    let to = w.slots[other].addr;
    let before = w.node(other).refusals().relay;
    w.node_do(child, |n, now| n.send(now, to, Message::FleetQuery(Box::new(forged.clone()))));
    let to = w.slots[child].addr;
    let child_before = w.node(child).refusals().relay;
    w.node_do(lsn, |n, now| n.send(now, to, Message::FleetQuery(Box::new(forged))));
    w.run_for(2 * SEC);
    assert_eq!(w.node(other).refusals().relay, before + 1);
    assert_eq!(w.node(child).refusals().relay, child_before + 1);
    assert!(asked(&w, 1 << 40, &[]).is_empty(), "nobody handled a forged query");

    // A real query: a child answers the master directly, claiming a thousand hosts.
    let id = w.master_do(|m, now| m.query_fleet(now, Audience::All, "sum", b"", 2 * SEC));
    let id = id.expect("asked");
    let claim = |seq| QueryAnswer {
        seq,
        id,
        status: ResponseStatus::OK,
        body: 1000u64.to_le_bytes().to_vec(),
        hosts: 1000,
        failed: 0,
        missing: 0,
    };
    let master_before = w.master().refusals().answer;
    let master = crate::sim::master_addr();
    w.node_do(child, |n, now| n.send(now, master, Message::QueryAnswer(Box::new(claim(7)))));
    answer_while_running(&mut w, id, 5 * SEC, &[], |_| Ok(1));
    let outcome = ended(&w, id).expect("ended");
    assert_eq!((total(&outcome), outcome.hosts), (4, 4), "the claim counted nothing");
    assert_eq!(w.master().refusals().answer, master_before + 1);
}
