//! Inventory as changes (`inventory.rs`, `inventory_lsn.rs`, `master/inventory.rs`): whole
//! first, then diffs; restarts of the node and the master; a crashed LSN loses nothing;
//! forged batches and changes refused.

use std::time::Duration;

use super::tests::{forge, SEC};
use crate::{
    overlay::{
        inventory::{self, InventoryBatch, InventoryChange, InventoryDocument, InventoryError},
        MasterEvent,
    },
    sim::{master_addr, Simulation},
    wire::Message,
    NodeId,
};

const MINUTE: Duration = Duration::from_secs(60);

/// A document of `n` package entries, plus a few about the host.
fn document(n: usize, host: &str) -> InventoryDocument {
    let mut doc: InventoryDocument = (0..n)
        .map(|k| (format!("packages/pkg-{k:04}"), format!("1.{k}.0-1+deb12u1 amd64")))
        .collect();
    doc.insert("os/name".into(), "Debian GNU/Linux 12 (bookworm)".into());
    doc.insert("host/name".into(), host.into());
    doc
}

/// The master's inventory events for `node`: (version, whole document).
fn applied(w: &Simulation, node: NodeId) -> Vec<(u64, bool)> {
    w.master_events
        .iter()
        .filter_map(|(_, e)| match e {
            MasterEvent::Inventory { node: n, version, full } if *n == node => {
                Some((*version, *full))
            }
            _ => None,
        })
        .collect()
}

fn refused(w: &Simulation) -> Vec<InventoryError> {
    w.master_events
        .iter()
        .filter_map(|(_, e)| match e {
            MasterEvent::InventoryRefused { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect()
}

fn held(w: &Simulation, node: NodeId) -> Option<InventoryDocument> {
    w.master().inventory(&node).map(|(_, d)| d.clone())
}

/// Sets node `i`'s document and runs until the master holds it and the node knows.
fn report(w: &mut Simulation, i: usize, doc: &InventoryDocument, within: Duration) {
    let (node, d) = (w.id(i), doc.clone());
    w.node_do(i, |n, now| n.set_inventory(now, d));
    w.run_until(within, |w| {
        w.master.as_ref().is_some_and(|m| m.inventory(&node).map(|(_, d)| d) == Some(doc))
            && !w.node(i).inventory_pending()
    });
    assert_eq!(held(w, node).as_ref(), Some(doc), "the master holds the document");
    assert!(!w.node(i).inventory_pending(), "the node saw the master's acknowledgement");
}

#[test]
fn the_first_report_is_whole_and_the_next_a_diff() {
    let (mut w, lsn) = Simulation::settled_subnet(71, 4, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[0]).expect("a child");
    let node = w.id(child);
    let first = document(300, "ws-17");
    report(&mut w, child, &first, 30 * SEC);
    assert_eq!(applied(&w, node).len(), 1);
    assert!(applied(&w, node)[0].1, "the first is the whole document");

    let mut second = first.clone();
    second.insert("packages/pkg-0007".into(), "1.7.1-1+deb12u2 amd64".into());
    second.remove("packages/pkg-0100");
    report(&mut w, child, &second, 30 * SEC);
    let events = applied(&w, node);
    assert_eq!(events.len(), 2);
    assert!(!events[1].1, "the second is a diff");
    assert!(events[1].0 > events[0].0, "versions increase");
    // The diff named only what changed.
    let (_, acked) = w.node(child).inventory_acked().expect("acknowledged");
    let d = inventory::diff(&first, acked);
    assert_eq!((d.remove.len(), d.set.len()), (1, 1));

    // The LSN's own inventory goes into its own batch.
    let lsn_doc = document(20, "lsn");
    report(&mut w, lsn, &lsn_doc, 30 * SEC);
    assert!(refused(&w).is_empty());
}

#[test]
fn a_document_larger_than_a_change_goes_in_consecutive_parts() {
    let (mut w, lsn) = Simulation::settled_subnet(72, 3, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[0]).expect("a child");
    // About 135 kB: three changes of at most MAX_CHANGE_BYTES.
    let big = document(3000, "big");
    let whole = inventory::diff(&InventoryDocument::new(), &big).encode().len();
    let parts = whole.div_ceil(inventory::MAX_CHANGE_BYTES);
    assert!(parts >= 3);
    report(&mut w, child, &big, 2 * MINUTE);
    let events = applied(&w, w.id(child));
    assert!(events.len() >= parts, "{} parts", events.len());
    assert!(events[0].1 && events[1..].iter().all(|(_, full)| !full));
}

/// Crashes node `i`, starts it again a second later, and waits until it is present.
fn restart(w: &mut Simulation, i: usize) {
    w.crash(i);
    w.run_for(SEC);
    w.start(i);
    w.run_until(30 * SEC, |w| w.all_present());
    assert!(w.all_present());
}

#[test]
fn a_restarted_node_sends_the_whole_document_unless_it_kept_the_acknowledged_one() {
    let (mut w, lsn) = Simulation::settled_subnet(73, 4, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[1]).expect("a child");
    let node = w.id(child);
    let doc = document(100, "ws-3");
    report(&mut w, child, &doc, 30 * SEC);

    // Restarted without its state: the whole document again, though nothing changed.
    restart(&mut w, child);
    assert_eq!(w.node(child).inventory_acked(), None);
    report(&mut w, child, &doc, MINUTE);
    assert_eq!(applied(&w, node).iter().map(|e| e.1).collect::<Vec<_>>(), vec![true, true]);

    // Restarted with what the master acknowledged (as a daemon persists it): a diff.
    let (version, kept) = w.node(child).inventory_acked().map(|(v, d)| (v, d.clone())).unwrap();
    restart(&mut w, child);
    w.node_do(child, |n, _| n.restore_inventory(version, kept));
    let mut changed = doc.clone();
    changed.insert("host/uptime".into(), "0 days".into());
    report(&mut w, child, &changed, MINUTE);
    let events = applied(&w, node);
    assert_eq!(events.iter().map(|e| e.1).collect::<Vec<_>>(), vec![true, true, false]);
}

#[test]
fn after_a_master_restart_the_next_change_falls_back_to_the_whole_document() {
    let (mut w, lsn) = Simulation::settled_subnet(74, 4, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[0]).expect("a child");
    let node = w.id(child);
    let doc = document(80, "ws-9");
    report(&mut w, child, &doc, 30 * SEC);
    w.crash_master();
    w.run_for(5 * SEC);
    w.start_master();
    w.run_until(2 * MINUTE, |w| w.all_present());
    assert!(w.all_present());
    assert_eq!(held(&w, node), None, "a restarted master holds nothing");
    let mut next = doc.clone();
    next.insert("packages/new".into(), "0.1".into());
    report(&mut w, child, &next, 2 * MINUTE);
    let events = applied(&w, node);
    assert_eq!(events.len(), 2);
    assert!(events[1].1, "the whole document after the master's mismatch");

    // A master that restores its inventories from its store gets diffs again.
    let saved = w.master().inventory_entries();
    w.crash_master();
    w.run_for(5 * SEC);
    w.start_master();
    w.master_do(|m, _| m.restore_inventories(&saved));
    w.run_until(2 * MINUTE, |w| w.all_present());
    assert_eq!(held(&w, node), Some(next.clone()));
    let mut third = next.clone();
    third.insert("packages/newer".into(), "0.2".into());
    report(&mut w, child, &third, 2 * MINUTE);
    assert_eq!(applied(&w, node).len(), 3);
    assert!(!applied(&w, node)[2].1, "a diff on the restored version");
}

#[test]
fn a_change_outlives_its_lsns_crash_before_the_batch() {
    let (mut w, lsn) = Simulation::settled_subnet(75, 5, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[2]).expect("a child");
    let node = w.id(child);
    let doc = document(60, "ws-1");
    w.node_do(child, |n, now| n.set_inventory(now, doc.clone()));
    // Queued at the LSN, which dies before its batch leaves (it gathers for 2 s).
    w.run_for(Duration::from_millis(300));
    assert_eq!(w.node(lsn).inventory_queued(), 1);
    w.crash(lsn);
    w.run_until(5 * MINUTE, |w| held(w, node).as_ref() == Some(&doc));
    assert_eq!(held(&w, node), Some(doc));
    w.run_until(5 * MINUTE, |w| !w.node(child).inventory_pending());
    assert!(!w.node(child).inventory_pending());
}

#[test]
fn a_change_whose_result_died_with_the_lsn_is_acknowledged_again_not_applied_twice() {
    let (mut w, lsn) = Simulation::settled_subnet(76, 5, 3 * SEC);
    let child = w.slot_of_id(&w.node(lsn).children()[1]).expect("a child");
    let node = w.id(child);
    let doc = document(60, "ws-2");
    w.node_do(child, |n, now| n.set_inventory(now, doc.clone()));
    // The master applies it; the LSN dies before the result reaches the child.
    w.run_until(30 * SEC, |w| !applied(w, node).is_empty());
    w.crash(lsn);
    assert!(w.node(child).inventory_pending());
    w.run_until(5 * MINUTE, |w| !w.node(child).inventory_pending());
    assert!(!w.node(child).inventory_pending(), "acknowledged through the new LSN");
    assert_eq!(applied(&w, node).len(), 1, "applied once");
    assert_eq!(held(&w, node), Some(doc));
}

/// Node `i`'s genuine signed whole document.
fn signed_by(w: &Simulation, i: usize, doc: &InventoryDocument) -> InventoryChange {
    let node = w.node(i);
    let diff = inventory::diff(&InventoryDocument::new(), doc).encode();
    let network = *node.endpoint().trust().network();
    let cert = node.endpoint().certificate().cloned();
    inventory::sign_change(node.endpoint().identity(), &network, None, 1, diff, cert)
}

fn batch(changes: &[InventoryChange]) -> Message {
    Message::InventoryBatch(Box::new(InventoryBatch { seq: 900, data: inventory::pack(changes) }))
}

#[test]
fn a_batch_from_a_non_lsn_or_for_a_non_child_or_forged_is_refused() {
    let mut w = Simulation::new(77);
    for s in [1, 1, 1, 2, 2, 2] {
        w.add(s);
    }
    w.run_until(MINUTE, |w| w.all_present());
    w.run_for(3 * SEC);
    let lsn_of = |w: &Simulation, s: u16| {
        (0..w.slots.len())
            .find(|&i| w.slots[i].subnet() == s && w.node(i).state() == super::NodeState::IsLsn)
            .expect("an LSN")
    };
    let (lsn1, lsn2) = (lsn_of(&w, 1), lsn_of(&w, 2));
    let child1 = w.slot_of_id(&w.node(lsn1).children()[0]).expect("a child");
    let child2 = w.slot_of_id(&w.node(lsn2).children()[0]).expect("a child");
    let doc = document(10, "victim");

    // A child that is no LSN sends the master a batch (of its own genuine change).
    let own = signed_by(&w, child1, &doc);
    w.node_do(child1, |n, now| n.send(now, master_addr(), batch(&[own])));
    w.run_for(SEC);
    assert_eq!(refused(&w), vec![InventoryError::NotLsn(w.id(child1))]);

    // An LSN carries another subnet's node's genuine change.
    let foreign = signed_by(&w, child2, &doc);
    w.node_do(lsn1, |n, now| n.send(now, master_addr(), batch(&[foreign])));
    w.run_for(SEC);
    let not_child = InventoryError::NotChild { lsn: w.id(lsn1), node: w.id(child2) };
    assert_eq!(refused(&w)[1..], [not_child]);

    // An LSN forges its own child's change (signed with the LSN's key).
    let mut forged = signed_by(&w, lsn1, &doc);
    forged.node = w.id(child1);
    forged.certificate = None;
    w.node_do(lsn1, |n, now| n.send(now, master_addr(), batch(&[forged])));
    w.run_for(SEC);
    assert_eq!(refused(&w)[2..], [InventoryError::BadSignature(w.id(child1))]);
    // Garbage is refused whole.
    let garbage = Message::InventoryBatch(Box::new(InventoryBatch { seq: 5, data: vec![1, 2, 3] }));
    w.node_do(lsn1, |n, now| n.send(now, master_addr(), garbage));
    w.run_for(SEC);
    assert!(matches!(refused(&w)[3..], [InventoryError::Undecodable(_)]));
    for i in [child1, child2] {
        assert_eq!(held(&w, w.id(i)), None, "nothing applied");
    }

    // A child hands its LSN another node's change: refused there.
    let before = w.node(lsn1).refusals().relay;
    let other = signed_by(&w, lsn1, &doc);
    forge(&mut w, child1, lsn1, Message::InventoryChange(Box::new(other)));
    w.run_for(SEC);
    assert_eq!(w.node(lsn1).refusals().relay, before + 1);
    assert_eq!(w.node(lsn1).inventory_queued(), 0);
    // A result not from our LSN is not believed.
    let before = w.node(child1).refusals().answer;
    let fake = crate::wire::InventoryResult {
        node: w.id(child1),
        version: 1,
        status: crate::wire::InventoryStatus::Applied,
    };
    forge(&mut w, child2, child1, Message::InventoryResult(fake));
    w.run_for(SEC);
    assert_eq!(w.node(child1).refusals().answer, before + 1);
}
