//! The front door over real UDP on loopback: a master from a data directory, nodes that join
//! with enrollment links, restart from their data directories, and the typed errors of each
//! step.

use std::{net::SocketAddr, time::Duration};

mod loopback;

use loopback::{master, node, until};

use fleetmesh::{
    overlay::{MasterEvent, NodeEvent},
    MasterBuilder, NodeHandle, StartError, TokenOptions,
};

const LOOPBACK: &str = "127.0.0.1:0";

async fn message(node: &mut NodeHandle) -> (u64, Vec<u8>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), node.next_event()).await {
            Ok(Some(NodeEvent::Message { id, data })) => return (id, data),
            Ok(Some(_)) => {}
            other => panic!("no message: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_with_links_restart_from_their_data_and_errors_are_typed() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut master = master(dirs[0].path(), 0).await;
    let link = master.create_token(TokenOptions { uses: 3, ..Default::default() }).unwrap();
    assert_eq!(link.masters, vec![SocketAddr::from(([127, 0, 0, 1], master.port()))]);
    // Through its text, as an operator hands it out.
    let link: fleetmesh::JoinLink = link.to_string().parse().unwrap();

    let mut nodes = Vec::new();
    for dir in &dirs[1..4] {
        nodes.push(node(dir.path()).join(link.clone()).start().await.unwrap());
    }
    assert_eq!(master.tokens_remaining().unwrap(), 0, "three uses, three nodes");
    let ids: Vec<_> = nodes.iter().map(|n| n.id()).collect();
    until("three nodes present", || ids.iter().all(|id| master.is_present(id))).await;
    until("one LSN", || nodes.iter().filter(|n| n.lsn() == Some(n.id())).count() == 1).await;
    // Each node shows its links: a child its LSN's path and round trip, the LSN the master's.
    until("children joined", || nodes.iter().all(|n| n.status().lsn.is_some())).await;
    for n in &nodes {
        let status = n.status();
        if status.lsn == Some(n.id()) {
            assert_eq!(status.master_path, Some(fleetmesh::Path::Udp), "{status:?}");
            assert!(status.master_rtt.is_some_and(|r| r < Duration::from_secs(5)), "{status:?}");
            assert_eq!((status.lsn_path, status.lsn_rtt), (None, None), "{status:?}");
        } else {
            assert_eq!(status.lsn_path, Some(fleetmesh::Path::Udp), "{status:?}");
            assert!(status.lsn_rtt.is_some_and(|r| r < Duration::from_secs(5)), "{status:?}");
        }
    }

    // A message from the master reaches a node, sealed end to end.
    master.send(ids[2], 7, b"hello".to_vec()).await.unwrap();
    assert_eq!(message(&mut nodes[2]).await, (7, b"hello".to_vec()));

    // The token is used up: a fourth device is refused, with the master's reason.
    let refused = node(dirs[4].path()).join(link.clone()).start().await.unwrap_err();
    assert!(matches!(refused, StartError::EnrollmentRefused(_)), "{refused}");

    // A node restarts from its data directory alone: same id, present again.
    let second = nodes.remove(1);
    second.shutdown().await;
    until("the part reported", || !master.is_present(&ids[1])).await;
    let again = node(dirs[2].path()).start().await.unwrap();
    assert_eq!(again.id(), ids[1]);
    until("the restarted node present", || master.is_present(&ids[1])).await;

    // Revoking a node reaches the others (through their LSN) and keeps it out.
    master.revoke(vec![ids[0]]).await.unwrap();
    until("the revoked node gone", || !master.is_present(&ids[0])).await;
    until("the others still present", || master.is_present(&ids[1]) && master.is_present(&ids[2]))
        .await;

    // Events carried presence all along.
    let mut joined = 0;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(10), master.next_event()).await
    {
        joined += matches!(event, MasterEvent::Presence(_)) as usize;
    }
    assert!(joined >= 4, "{joined} presence events");
    again.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
    master.shutdown().await;
}

#[tokio::test]
async fn a_node_without_link_or_certificate_is_not_enrolled() {
    let dir = tempfile::tempdir().unwrap();
    let err = node(dir.path()).start().await.unwrap_err();
    assert!(matches!(err, StartError::NotEnrolled), "{err}");
}

#[tokio::test]
async fn an_unanswered_enrollment_times_out_with_the_address_asked() {
    let dir = tempfile::tempdir().unwrap();
    let master_dir = tempfile::tempdir().unwrap();
    let m = master(master_dir.path(), 0).await;
    let mut link = m.create_token(TokenOptions::default()).unwrap();
    m.shutdown().await;
    // Nobody listens there any more.
    link.masters = vec!["127.0.0.1:9".parse().unwrap()];
    let err = node(dir.path())
        .join(link)
        .enroll_timeout(Duration::from_secs(2))
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartError::EnrollmentTimeout { masters, .. } if masters[0].port() == 9),
        "{err}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path(), 0).await;
    m.shutdown().await;
    let key = dir.path().join("master.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err =
        MasterBuilder::new(dir.path()).listen(LOOPBACK.parse().unwrap()).start().await.unwrap_err();
    assert!(matches!(&err, StartError::KeyFilePermissions { mode: 0o644, .. }), "{err}");
}

#[tokio::test]
async fn a_link_for_another_network_is_refused_after_enrollment() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node_dir = tempfile::tempdir().unwrap();
    let first = master(a.path(), 0).await;
    let link = first.create_token(TokenOptions::default()).unwrap();
    let n = node(node_dir.path()).join(link).start().await.unwrap();
    n.shutdown().await;
    let other = master(b.path(), 0).await;
    let err = node(node_dir.path())
        .join(other.create_token(TokenOptions::default()).unwrap())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::OtherNetwork { .. }), "{err}");
    first.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_keeps_its_registry_revocations_and_certificates() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let master = MasterBuilder::new(dirs[0].path()).listen(addr).start().await.unwrap();
    let port = master.port();
    let tags = vec!["kiosk".to_owned(), "site:berlin".to_owned()];
    let options = TokenOptions { uses: 3, tags: tags.clone(), ..Default::default() };
    let link = master.create_token(options).unwrap();
    let mut nodes = Vec::new();
    for dir in &dirs[1..] {
        // The LSN checks on the master every 2 s instead of every minute: it notices the
        // restart sooner, and the test waits less.
        let builder = node(dir.path()).configure(|c| c.master_check = Duration::from_secs(2));
        nodes.push(builder.join(link.clone()).start().await.unwrap());
    }
    let ids: Vec<_> = nodes.iter().map(|n| n.id()).collect();
    until("all present", || ids.iter().all(|id| master.is_present(id))).await;
    // Each carries its token's tags in the registry.
    let tagged = || master.known_nodes().iter().filter(|(_, k)| k.tags == tags).count();
    until("tags recorded", || tagged() == 3).await;
    // Revoke a child (not the LSN), so the others stay in place.
    let child = nodes.iter().position(|n| n.lsn() != Some(n.id())).unwrap();
    master.revoke(vec![ids[child]]).await.unwrap();
    until("revoked one gone", || !master.is_present(&ids[child])).await;
    master.shutdown().await;

    // Same data directory, same port: the same master, with what it knew.
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let master = MasterBuilder::new(dirs[0].path()).listen(listen).start().await.unwrap();
    let known = master.known_nodes();
    assert_eq!(known.len(), 3, "{known:?}");
    assert!(known.iter().all(|(_, k)| k.first_seen <= k.last_seen && k.last_addr.is_some()));
    assert!(known.iter().all(|(_, k)| k.tags == tags), "tags kept: {known:?}");
    let others: Vec<_> = (0..3).filter(|&i| i != child).collect();
    until("the others back", || others.iter().all(|&i| master.is_present(&ids[i]))).await;
    // It can seal a message to a node it enrolled before the restart: the certificate was kept.
    let to = others[0];
    master.send(ids[to], 9, b"after restart".to_vec()).await.unwrap();
    assert_eq!(message(&mut nodes[to]).await, (9, b"after restart".to_vec()));
    // The revoked node stays out after the restart too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!master.is_present(&ids[child]));
    for n in nodes {
        n.shutdown().await;
    }
    master.shutdown().await;
}
