//! The DHT inside the overlay, on the virtual-time world: put/get across subnets, provider
//! records, refusals and the typed errors.

use std::time::Duration;

use super::NodeEvent;
use crate::dht::{DhtError, DhtEvent, KeyKind, QueryId, RecordError};
use crate::sim::Simulation as World;
use crate::wire::Record;
use crate::{NodeId, Timestamp};

const SEC: Duration = Duration::from_secs(1);

fn fleet(seed: u64, subnets: u8, per: usize) -> World {
    let mut w = World::new(seed);
    for s in 1..=subnets {
        for _ in 0..per {
            w.add(u16::from(s));
        }
    }
    w.run_until(30 * SEC, |w| w.all_present());
    // Let the bootstrap lookups settle.
    w.run_for(5 * SEC);
    w
}

/// The result of `query` on node `i`, once it is there.
fn result(w: &World, i: usize, query: QueryId) -> Option<DhtEvent> {
    w.slots[i].events.iter().rev().find_map(|(_, e)| match e {
        NodeEvent::Dht(d) if d.query() == query => Some(d.clone()),
        _ => None,
    })
}

fn run_query(
    w: &mut World,
    i: usize,
    start: impl FnOnce(&mut crate::overlay::Node, Timestamp) -> QueryId,
) -> DhtEvent {
    let query = w.node_do(i, start);
    w.run_until(20 * SEC, |w| result(w, i, query).is_some());
    result(w, i, query).expect("query finished")
}

#[test]
fn a_record_put_on_one_node_is_read_on_every_other() {
    let mut w = fleet(11, 3, 8);
    let key = KeyKind::Contact.key(w.id(5).as_bytes());
    let put = run_query(&mut w, 5, |n, now| n.dht_put(now, key, b"10.1.0.5:4000".to_vec()));
    let DhtEvent::Put { result: Ok(stored), .. } = put else { panic!("put failed: {put:?}") };
    assert!(stored >= 10, "stored at only {stored} nodes");
    let mut hops = Vec::new();
    for i in (0..w.slots.len()).filter(|&i| i != 5) {
        let got = run_query(&mut w, i, |n, now| n.dht_get(now, key));
        let DhtEvent::Got { result: Ok(records), stats, .. } = got else {
            panic!("node {i}: {got:?}")
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value, b"10.1.0.5:4000");
        assert_eq!(records[0].publisher, w.id(5));
        hops.push(stats.hops);
    }
    assert!(hops.iter().all(|&h| h <= 3), "hops {hops:?}");
}

#[test]
fn provider_records_of_two_providers_are_found() {
    let mut w = fleet(12, 2, 8);
    for i in [1, 9] {
        let put = run_query(&mut w, i, |n, now| n.dht_provide(now, b"installer-v2", vec![i as u8]));
        assert!(matches!(put, DhtEvent::Put { result: Ok(_), .. }), "{put:?}");
    }
    let got = run_query(&mut w, 14, |n, now| n.dht_find_providers(now, b"installer-v2"));
    let DhtEvent::Got { result: Ok(records), .. } = got else { panic!("{got:?}") };
    let mut publishers: Vec<NodeId> = records.iter().map(|r| r.publisher).collect();
    publishers.sort();
    let mut expected = vec![w.id(1), w.id(9)];
    expected.sort();
    assert_eq!(publishers, expected);
}

#[test]
fn a_missing_key_is_not_found_and_a_forged_record_is_refused() {
    let mut w = fleet(13, 2, 6);
    let key = KeyKind::Provider.key(b"nobody has this");
    let got = run_query(&mut w, 3, |n, now| n.dht_get(now, key));
    assert!(matches!(got, DhtEvent::Got { result: Err(DhtError::NotFound), .. }), "{got:?}");

    // A record whose value was changed after signing.
    let now = w.now;
    let expires = now.as_secs() + 3600;
    let mut forged =
        Record::sign(w.node(2).endpoint().identity(), key, b"good".to_vec(), 1, expires);
    forged.value = b"evil".to_vec();
    let put = run_query(&mut w, 4, |n, now| n.dht_put_record(now, forged));
    let DhtEvent::Put { result: Err(error), .. } = put else { panic!("{put:?}") };
    assert_eq!(error, DhtError::Refused(RecordError::BadSignature));
    let got = run_query(&mut w, 7, |n, now| n.dht_get(now, key));
    assert!(matches!(got, DhtEvent::Got { result: Err(DhtError::NotFound), .. }), "{got:?}");
}

#[test]
fn the_routing_table_fills_from_the_overlay_without_configuration() {
    let w = fleet(14, 3, 8);
    for i in 0..w.slots.len() {
        let table = w.node(i).dht().expect("dht started").table();
        // Every other node and the master fit in k = 20 per bucket.
        assert!(table.len() >= 15, "node {i} knows only {} peers", table.len());
    }
    let master = w.master().dht().expect("master dht").table().len();
    assert!(master >= 3, "master knows {master}");
}

/// Carries out every pending write of node `i` on `store`.
async fn persist(w: &mut World, i: usize, store: &crate::MemoryStore) {
    let mut ops = Vec::new();
    w.node_do(i, |n, _| {
        while let Some(op) = n.poll_store() {
            ops.push(op);
        }
    });
    for op in &ops {
        crate::dht::persist::apply(store, op).await.unwrap();
    }
}

#[tokio::test]
async fn records_and_routing_table_survive_a_restart() {
    use crate::dht::persist;
    let mut w = fleet(15, 2, 8);
    let store = crate::MemoryStore::new();
    let i = 4;
    w.node_do(i, |n, now| n.dht_restore(now, persist::Saved::default()));
    // A record put by another node whose k closest include node i (16 nodes + master < k).
    let key = KeyKind::Trust.key(b"revocations");
    let put = run_query(&mut w, 10, |n, now| n.dht_put(now, key, b"serial 7".to_vec()));
    assert!(matches!(put, DhtEvent::Put { result: Ok(_), .. }), "{put:?}");
    w.run_for(10 * SEC);
    persist(&mut w, i, &store).await;
    let table_before = w.node(i).dht().unwrap().table().len();
    assert!(w.node(i).dht().unwrap().records().get(&key).count() == 1);

    // Crash and restart with nothing but the store: the node comes back knowing both.
    w.crash(i);
    w.run_for(2 * SEC);
    w.start(i);
    let saved = persist::load(&store).await.unwrap();
    assert_eq!(saved.contacts.len(), table_before);
    w.node_do(i, |n, now| n.dht_restore(now, saved));
    let dht = w.node(i).dht().unwrap();
    assert!(dht.table().len() >= table_before, "{} < {table_before}", dht.table().len());
    let records: Vec<_> = dht.records().get(&key).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].value, b"serial 7");
    // Answered locally, before any lookup.
    let got = run_query(&mut w, i, |n, now| n.dht_get(now, key));
    assert!(matches!(got, DhtEvent::Got { result: Ok(_), stats, .. } if stats.hops == 0));
}
