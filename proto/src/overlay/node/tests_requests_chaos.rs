//! Requests under chaos (issue 17's proof): 20 % datagram loss on every link, an LSN crash,
//! nodes crashing and coming back minutes later, and the master crashing and restarting from
//! its store: every request is handled exactly once by the application and ends exactly once
//! at the master, answered.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use super::{tests::SEC, NodeEvent, NodeState, REQUESTS_TABLE};
use crate::{
    dht::StoreOp,
    overlay::{
        master::{CERTS_TABLE, LSNS_TABLE, NODES_TABLE, REVOCATIONS_TABLE},
        MasterEvent, MasterSaved, OUTBOX_TABLE,
    },
    sim::Simulation,
    wire::ResponseStatus,
};

type Tables = HashMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

fn apply(tables: &mut Tables, op: StoreOp) {
    match op {
        StoreOp::Put { table, key, value } => {
            tables.entry(table).or_default().insert(key, value);
        }
        StoreOp::Remove { table, key } => {
            tables.entry(table).or_default().remove(&key);
        }
    }
}

fn entries(tables: &Tables, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    tables.get(table).map(|t| t.clone().into_iter().collect()).unwrap_or_default()
}

/// The fleet, the stores the test keeps for the master and each node, and what the
/// applications handled.
struct Chaos {
    w: Simulation,
    master_store: Tables,
    node_stores: Vec<Tables>,
    /// Per request id: how many times an application handled it.
    handled: HashMap<u64, u32>,
    /// How far each slot's events were read.
    read: Vec<usize>,
}

impl Chaos {
    /// Drains every store write, and answers every request the nodes handed out.
    fn step(&mut self, d: Duration) {
        self.w.run_for(d);
        while let Some(op) = self.w.master.as_mut().and_then(|m| m.poll_store()) {
            apply(&mut self.master_store, op);
        }
        for i in 0..self.w.slots.len() {
            if self.w.slots[i].node.is_none() {
                continue;
            }
            let fresh: Vec<(u64, Vec<u8>)> = self.w.slots[i].events[self.read[i]..]
                .iter()
                .filter_map(|(_, e)| match e {
                    NodeEvent::Request { id, body, .. } => Some((*id, body.clone())),
                    _ => None,
                })
                .collect();
            self.read[i] = self.w.slots[i].events.len();
            for (id, body) in fresh {
                *self.handled.entry(id).or_default() += 1;
                self.w
                    .node_do(i, |n, now| n.respond(now, id, ResponseStatus::OK, body))
                    .expect("pending");
            }
            let store = &mut self.node_stores[i];
            self.w.node_do(i, |n, _| {
                while let Some(op) = n.poll_store() {
                    if matches!(&op, StoreOp::Put { table, .. } | StoreOp::Remove { table, .. } if *table == REQUESTS_TABLE)
                    {
                        apply(store, op);
                    }
                }
            });
        }
    }

    fn restart_node(&mut self, i: usize) {
        self.w.start(i);
        let saved = entries(&self.node_stores[i], REQUESTS_TABLE);
        self.w.node_do(i, |n, now| n.requests_restore(now, &saved));
    }

    fn restart_master(&mut self) {
        // What the driver has written by the time of the crash (it writes each change as the
        // master emits it).
        self.step(Duration::ZERO);
        self.w.crash_master();
        self.step(2 * SEC);
        self.w.start_master();
        let t = &self.master_store;
        let saved = MasterSaved::from_tables(
            &entries(t, CERTS_TABLE),
            &entries(t, NODES_TABLE),
            &entries(t, REVOCATIONS_TABLE),
            &entries(t, LSNS_TABLE),
        );
        let outbox = entries(t, OUTBOX_TABLE);
        self.w.master_do(|m, _| {
            m.restore(saved);
            m.restore_outbox(&outbox);
        });
    }
}

#[test]
fn every_request_is_handled_once_and_ends_once_through_loss_crashes_and_a_master_restart() {
    let mut w = Simulation::new(81);
    for s in 1..=3 {
        for _ in 0..5 {
            w.add(s);
        }
    }
    w.master_do(|m, _| m.restore(MasterSaved::default()));
    let n = w.slots.len();
    let mut c = Chaos {
        w,
        master_store: Tables::new(),
        node_stores: vec![Tables::new(); n],
        handled: HashMap::new(),
        read: vec![0; n],
    };
    for i in 0..n {
        c.w.node_do(i, |node, now| node.requests_restore(now, &[]));
    }
    c.w.run_until(60 * SEC, |w| w.all_present());
    c.w.net.loss = 0.2;

    let mut ids = Vec::new();
    let ttl = Duration::from_secs(3600);
    let (crashed, lsn) = (
        [1, 7],
        (0..n).find(|&i| c.w.node(i).state() == NodeState::IsLsn && c.w.slots[i].subnet() == 3),
    );
    for minute in 0..20u64 {
        // Three requests a minute, to nodes picked in turn (crashed ones included).
        for k in 0..3 {
            let target = c.w.id(((minute * 3 + k) as usize * 7) % n);
            let body = format!("{minute}/{k}").into_bytes();
            if let Ok(id) = c.w.master_do(|m, now| m.request(now, target, "echo", &body, ttl)) {
                ids.push(id);
            }
        }
        match minute {
            2 => c.w.crash(lsn.expect("subnet 3 has an LSN")),
            3 => crashed.iter().for_each(|&i| c.w.crash(i)),
            5 => c.restart_master(),
            8 => {
                for &i in &crashed {
                    c.restart_node(i);
                }
                if let Some(l) = lsn {
                    c.restart_node(l);
                }
            }
            _ => {}
        }
        for _ in 0..60 {
            c.step(SEC);
        }
    }
    // Let the last ones finish.
    for _ in 0..600 {
        c.step(SEC);
    }

    assert_eq!(ids.len(), 60, "every request was queued");
    let mut ends: HashMap<u64, Vec<&MasterEvent>> = HashMap::new();
    for (_, e) in &c.w.master_events {
        if let MasterEvent::Response { id, .. } | MasterEvent::RequestFailed { id, .. } = e {
            ends.entry(*id).or_default().push(e);
        }
    }
    for id in &ids {
        let end = ends.get(id).map(Vec::as_slice).unwrap_or_default();
        let state = c.w.master().request_state(*id);
        let present =
            state.map(|(node, _)| (c.w.master().is_present(&node), c.w.slot_of_id(&node)));
        assert!(
            matches!(end, [MasterEvent::Response { status: ResponseStatus::OK, .. }]),
            "request {id} ended as {end:?}; outbox {state:?}, present/slot {present:?}, handled {:?}",
            c.handled.get(id)
        );
        assert_eq!(
            c.handled.get(id),
            Some(&1),
            "request {id} handled {:?} times",
            c.handled.get(id)
        );
    }
    assert_eq!(c.w.master().outbox_len(), 0);
    // The figure for the report: from queued (the id is the master's clock then) to answered.
    let mut waits: Vec<u64> =
        c.w.master_events
            .iter()
            .filter_map(|(t, e)| match e {
                MasterEvent::Response { id, .. } => Some(t.as_micros().saturating_sub(*id) / 1000),
                _ => None,
            })
            .collect();
    waits.sort_unstable();
    eprintln!(
        "chaos: {} requests, each handled once and answered once; queued to answered p50 {} ms, max {} ms",
        ids.len(),
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}
