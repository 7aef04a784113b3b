//! The DHT's records and routing table survive a restart on the redb store.

use std::net::SocketAddr;

use fleetmesh_driver::{
    dht::{persist, Dht, DhtConfig, KeyKind},
    wire::{KadStore, Message, Record},
    Identity, NodeId, Timestamp,
};
use fleetmesh_redb::RedbStore;
use rand_core::SeedableRng;

fn identity(n: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(n))
}

#[tokio::test]
async fn records_and_contacts_come_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dht.redb");
    let now = Timestamp::from_secs(1_700_000_000);
    let me = identity(1).node_id();
    let master = NodeId::hash(b"master");
    let mut dht = Dht::new(now, me, master, DhtConfig::default(), [7; 32]);
    dht.restore(now, persist::Saved::default());

    // Five authenticated peers, one of which stores a record here.
    let peers: Vec<(NodeId, SocketAddr)> = (0..5)
        .map(|i| (identity(10 + i).node_id(), format!("10.0.0.{}:4000", i + 1).parse().unwrap()))
        .collect();
    for (id, addr) in &peers {
        dht.handle_connected(now, *id, *addr, true);
    }
    let publisher = identity(10);
    let key = KeyKind::Provider.key(b"firmware");
    let record = Record::sign(&publisher, key, b"offer".to_vec(), 1, now.as_secs() + 3600);
    let store = Message::KadStore(Box::new(KadStore {
        rpc: 9,
        record: record.clone(),
        cache: false,
        client: false,
    }));
    assert!(dht.handle_message(now, peers[0].0, peers[0].1, store).is_none());
    // Out go the bootstrap lookup's requests and the store's confirmation.
    let sent: Vec<Message> = std::iter::from_fn(|| dht.poll_message()).map(|(_, m)| m).collect();
    assert!(
        sent.contains(&Message::KadStored(fleetmesh_driver::wire::KadStored {
            rpc: 9,
            client: false
        })),
        "{sent:?}"
    );
    let later = now + persist::PERSIST_DELAY;
    dht.handle_timeout(later);

    let db = RedbStore::open(&path).unwrap();
    let mut writes = 0;
    while let Some(op) = dht.poll_store() {
        fleetmesh_driver::store::apply(&db, &op).await.unwrap();
        writes += 1;
    }
    assert_eq!(writes, 6, "one record and five contacts");
    drop(db);

    let db = RedbStore::open(&path).unwrap();
    let saved = fleetmesh_driver::store::load_dht(&db).await.unwrap();
    let mut restarted = Dht::new(later, me, master, DhtConfig::default(), [7; 32]);
    restarted.restore(later, saved);
    assert_eq!(restarted.records().get(&key).collect::<Vec<_>>(), vec![&record]);
    let mut ids: Vec<NodeId> = restarted.table().iter().map(|e| e.contact.id).collect();
    ids.sort();
    let mut expected: Vec<NodeId> = peers.iter().map(|p| p.0).collect();
    expected.sort();
    assert_eq!(ids, expected);
}
