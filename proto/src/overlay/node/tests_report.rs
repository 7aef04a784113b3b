//! Nodes' reports to the master (`report.rs`, `master/reports.rs`): delivered once through the
//! LSN, repeats recognised, forged carriers refused.

use std::time::Duration;

use super::{
    tests::{forge, SEC},
    NodeEvent, NodeState, ReportError,
};
use crate::{
    overlay::MasterEvent,
    secure::seal_envelope,
    sim::{master_addr, Role, Simulation},
    wire::{self, AppMessage, Message, Report, ReportAcks, ReportBatch},
    NodeId,
};

fn reports_at_master(w: &Simulation, node: NodeId, id: u64) -> Vec<Vec<u8>> {
    w.master_events
        .iter()
        .filter_map(|(_, e)| match e {
            MasterEvent::Report { node: n, id: i, data } if *n == node && *i == id => {
                Some(data.clone())
            }
            _ => None,
        })
        .collect()
}

fn delivered(w: &Simulation, i: usize, id: u64) -> bool {
    w.slots[i].events.iter().any(|(_, e)| *e == NodeEvent::ReportDelivered { id })
}

/// A report of node `i`, sealed to the master, as the node would send it.
fn sealed_report(w: &mut Simulation, i: usize, stamp: u64, seq: u32) -> Report {
    let master = w.master().endpoint().identity().clone();
    let network = *w.master().endpoint().trust().network();
    let mut frame = Vec::new();
    wire::encode(&Message::App(AppMessage { id: 5, data: b"forged".to_vec() }), &mut frame)
        .expect("fits");
    let identity = w.node(i).endpoint().identity().clone();
    let key = master.x25519_public();
    let envelope = w.node_do(i, |n, _| {
        seal_envelope(&identity, &network, master.node_id(), &key, stamp, &frame, n.ep.rng())
    });
    Report { seq, envelope: envelope.expect("sealed"), certificate: None }
}

#[test]
fn a_childs_report_reaches_the_master_once_through_its_lsn() {
    let (mut w, lsn) = Simulation::settled_subnet(61, 4, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[1]).expect("a child");
    let node = w.id(child);
    w.node_do(child, |n, now| n.report(now, 7, b"disk 91% full")).expect("queued");
    w.run_for(2 * SEC);
    assert_eq!(reports_at_master(&w, node, 7), vec![b"disk 91% full".to_vec()]);
    assert!(delivered(&w, child, 7));
    assert_eq!(w.node(child).reports_pending(), 0);
    // The LSN's own report goes straight to the master.
    let lsn_id = w.id(lsn);
    assert_eq!(w.node(lsn).state(), NodeState::IsLsn);
    w.node_do(lsn, |n, now| n.report(now, 8, b"lsn here")).expect("queued");
    w.run_for(2 * SEC);
    assert_eq!(reports_at_master(&w, lsn_id, 8).len(), 1);
    // A second report with a pending id is refused at once, not queued.
    w.node_do(child, |n, now| {
        n.report(now, 9, b"a").expect("queued");
        assert_eq!(n.report(now, 9, b"b"), Err(ReportError::Duplicate(9)));
    });
    w.run_for(2 * SEC);
    assert_eq!(reports_at_master(&w, node, 9), vec![b"a".to_vec()]);
}

#[test]
fn a_report_whose_ack_was_lost_is_acknowledged_again_but_reported_once() {
    let (mut w, lsn) = Simulation::settled_subnet(62, 3, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[0]).expect("a child");
    let node = w.id(child);
    let stamp = w.node_do(child, |_, now| now.as_micros());
    // The LSN carries the same envelope three times (a retry after a lost Ack, or a relay
    // replaying it): one report at the master.
    for seq in [900, 901, 902] {
        let report = sealed_report(&mut w, child, stamp, seq);
        let to = master_addr();
        w.node_do(lsn, |n, now| n.send(now, to, Message::Report(Box::new(report))));
    }
    w.run_for(SEC);
    assert_eq!(reports_at_master(&w, node, 5).len(), 1);
}

#[test]
fn only_the_node_or_a_registered_lsn_may_carry_its_report() {
    let (mut w, lsn) = Simulation::settled_subnet(63, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let (carrier, victim) = (
        w.slot_of_id(&children[0]).expect("a child"),
        w.slot_of_id(&children[1]).expect("a child"),
    );
    let now_us = w.node_do(victim, |_, now| now.as_micros());
    // A child that is no LSN hands the master another node's (genuine) report.
    let report = sealed_report(&mut w, victim, now_us, 700);
    let to = master_addr();
    w.node_do(carrier, |n, now| n.send(now, to, Message::Report(Box::new(report))));
    w.run_for(SEC);
    assert!(reports_at_master(&w, w.id(victim), 5).is_empty());
    assert_eq!(w.master().refusals().relay, 1);
    // An LSN relays only its child's own reports: not one a child passes on for another.
    let report = sealed_report(&mut w, victim, now_us + 1, 701);
    forge(&mut w, carrier, lsn, Message::Report(Box::new(report)));
    w.run_for(SEC);
    assert!(reports_at_master(&w, w.id(victim), 5).is_empty());
    assert_eq!(w.node(lsn).refusals().relay, 1);
}

#[test]
fn a_report_outlives_its_lsns_crash() {
    // Queued while the LSN is dead: it is retried and goes through the standby that took over.
    let (mut w, lsn) = Simulation::settled_subnet(64, 5, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[2]).expect("a child");
    let node = w.id(child);
    w.crash(lsn);
    w.node_do(child, |n, now| n.report(now, 11, b"still here")).expect("queued");
    w.run_until(120 * SEC, |w| delivered(w, child, 11));
    assert!(delivered(&w, child, 11));
    assert_eq!(reports_at_master(&w, node, 11), vec![b"still here".to_vec()]);
}

#[test]
fn a_burst_of_childrens_reports_costs_the_master_one_ack_per_batch() {
    let (mut w, lsn) = Simulation::settled_subnet(64, 21, 3 * SEC);
    let children: Vec<usize> =
        w.node(lsn).children().iter().map(|c| w.slot_of_id(c).expect("a child")).collect();
    assert_eq!(children.len(), 20);
    let before = w.stats.sent_by_role[Role::Master as usize].datagrams;
    for &c in &children {
        w.node_do(c, |n, now| n.report(now, 11, b"done")).expect("queued");
    }
    w.run_for(2 * SEC);
    for &c in &children {
        assert_eq!(reports_at_master(&w, w.id(c), 11).len(), 1);
        assert!(delivered(&w, c, 11), "child {c} got its Ack");
    }
    // The first report goes alone, the other 19 in one batch: two answers, not twenty.
    let sent = w.stats.sent_by_role[Role::Master as usize].datagrams - before;
    assert!(sent <= 3, "the master sent {sent} datagrams for 20 reports");
}

#[test]
fn only_a_registered_lsn_carries_a_batch_and_only_the_master_acknowledges_one() {
    let (mut w, lsn) = Simulation::settled_subnet(65, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let (carrier, victim) = (
        w.slot_of_id(&children[0]).expect("a child"),
        w.slot_of_id(&children[1]).expect("a child"),
    );
    let now_us = w.node_do(victim, |_, now| now.as_micros());
    let report = sealed_report(&mut w, victim, now_us, 800);
    let batch = Message::ReportBatch(Box::new(ReportBatch { reports: vec![report] }));
    let to = master_addr();
    w.node_do(carrier, |n, now| n.send(now, to, batch));
    w.run_for(SEC);
    assert!(reports_at_master(&w, w.id(victim), 5).is_empty());
    assert_eq!(w.master().refusals().relay, 1);
    // A child's report on its way (relayed by the LSN, the master's answer a WAN round trip
    // off), its acknowledgement forged by another child: not passed on.
    w.node_do(victim, |n, now| n.report(now, 12, b"x")).expect("queued");
    w.run_for(Duration::from_millis(5));
    let seqs: Vec<u32> = (0..4096).collect();
    forge(&mut w, carrier, lsn, Message::ReportAcks(Box::new(ReportAcks::of(seqs))));
    w.run_for(Duration::from_millis(5));
    assert!(!delivered(&w, victim, 12));
    assert_eq!(w.node(lsn).refusals().relay, 1);
    w.run_for(SEC);
    assert!(delivered(&w, victim, 12), "the master's own acknowledgement still counts");
}
