//! Inventories through the front door over real UDP on loopback: a node's document reaches the
//! master; both restart from their data directories, the master still holds it, and the node
//! sends only what changed.

mod loopback;

use loopback::{master, node, until};

use fleetmesh::{overlay::inventory::InventoryDocument, TokenOptions};

fn doc(entries: &[(&str, &str)]) -> InventoryDocument {
    entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_survives_both_restarts_and_then_travels_as_a_diff() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let m = master(dirs[0].path(), 0).await;
    let port = m.port();
    let link = m.create_token(TokenOptions::default()).unwrap();
    let n = node(dirs[1].path()).join(link).start().await.unwrap();
    let id = n.id();
    let first = doc(&[("host/name", "web-1"), ("os/name", "Debian"), ("pkg/zstd", "1.5.4")]);
    n.set_inventory(first.clone()).await.unwrap();
    let control = m.control();
    until("the master holds the inventory", || {
        control.inventory(&id).is_some_and(|(_, d)| d == first)
    })
    .await;
    let (version, _) = m.inventory(&id).unwrap();
    assert_eq!((m.inventory_count(), m.inventory_stats().whole), (1, 1));
    until("the node has the acknowledgement", || n.inventory_acked().is_some()).await;
    assert_eq!(n.inventory_acked(), Some((version, first.clone())));
    // A control keeps the master's driver (and its port) alive: drop it first.
    drop(control);
    n.shutdown().await;
    m.shutdown().await;

    // The master restores every node's inventory from its store.
    let m = master(dirs[0].path(), port).await;
    assert_eq!(m.inventory(&id), Some((version, first.clone())));
    // The node restores the version acknowledged: one package more is a diff against it.
    let n = node(dirs[1].path()).start().await.unwrap();
    assert_eq!(n.inventory_acked(), Some((version, first.clone())));
    let mut second = first.clone();
    second.insert("pkg/curl".into(), "7.88.1".into());
    n.set_inventory(second.clone()).await.unwrap();
    let control = m.control();
    until("the master holds the change", || {
        control.inventory(&id).is_some_and(|(_, d)| d == second)
    })
    .await;
    let stats = control.inventory_stats();
    assert_eq!((stats.applied, stats.whole), (1, 0), "a diff, not the whole document: {stats:?}");
    assert!(m.inventory(&id).unwrap().0 > version);
    drop(control);
    n.shutdown().await;
    m.shutdown().await;
}
