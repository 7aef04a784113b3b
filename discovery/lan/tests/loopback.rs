//! LAN discovery over real sockets on loopback. Broadcast on loopback is not reliable in every
//! sandbox, so queries go to the peers' unicast loopback addresses (`LanConfig::targets`); the
//! IPv6 test uses the multicast group on the loopback interface when the system allows it.

use std::{net::SocketAddr, time::Duration};

use fleetmesh_driver::{Candidate, Discovery, NodeId, Source};
use fleetmesh_lan::{LanConfig, LanDiscovery};

const LSN_ADDR: &str = "10.1.0.7:4000";

fn id(n: u8) -> NodeId {
    NodeId::hash(&[n])
}

fn config(n: u8, targets: Vec<SocketAddr>) -> LanConfig {
    let mut cfg = LanConfig::new(id(n)).bind(Some("127.0.0.1:0".parse().unwrap()), None);
    cfg.targets = targets;
    cfg.wait = Duration::from_millis(200);
    cfg
}

/// Node 1, told it is the LSN (it remembers itself), answering on loopback.
async fn lsn() -> LanDiscovery {
    let d = LanDiscovery::bind(config(1, vec![])).await.unwrap();
    let me = Candidate { addr: LSN_ADDR.parse().unwrap(), id: Some(id(1)), source: Source::Lan };
    d.remember(me).await.unwrap();
    assert!(d.is_announcing());
    d
}

#[tokio::test]
async fn a_query_finds_the_lsn_and_only_it() {
    let lsn = lsn().await;
    let quiet = LanDiscovery::bind(config(3, vec![])).await.unwrap();
    let targets = [lsn.local_addrs(), quiet.local_addrs()].concat();
    let asker = LanDiscovery::bind(config(2, targets)).await.unwrap();
    let started = std::time::Instant::now();
    let found = asker.discover().await.unwrap();
    assert_eq!(
        found,
        vec![Candidate { addr: LSN_ADDR.parse().unwrap(), id: Some(id(1)), source: Source::Lan }]
    );
    // One bounded round.
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_lsn_that_looks_for_an_lsn_stops_answering() {
    let lsn = lsn().await;
    lsn.discover().await.unwrap();
    assert!(!lsn.is_announcing());
    let asker = LanDiscovery::bind(config(2, lsn.local_addrs())).await.unwrap();
    assert!(asker.discover().await.unwrap().is_empty());
}

#[tokio::test]
async fn another_fleet_and_garbage_are_ignored() {
    let lsn = lsn().await;
    let mut cfg = config(2, lsn.local_addrs());
    cfg.network = *b"othernet";
    let stranger = LanDiscovery::bind(cfg).await.unwrap();
    assert!(stranger.discover().await.unwrap().is_empty());
    // Garbage at the LSN's socket changes nothing.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b""[..], b"FMLD", &[0xff; 300], b"FMLD\x01\x01short"] {
        socket.send_to(junk, lsn.local_addrs()[0]).await.unwrap();
    }
    let asker = LanDiscovery::bind(config(3, lsn.local_addrs())).await.unwrap();
    assert_eq!(asker.discover().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_lsn_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lsn-cache");
    let lsn = lsn().await;
    {
        let node =
            LanDiscovery::bind(config(2, lsn.local_addrs()).cache_file(&path)).await.unwrap();
        let found = node.discover().await.unwrap();
        // The node joined it: the overlay remembers the LSN with source Cache.
        node.remember(Candidate { source: Source::Cache, ..found[0] }).await.unwrap();
        node.remember(Candidate {
            addr: "10.1.0.9:4000".parse().unwrap(),
            id: None,
            source: Source::Cache,
        })
        .await
        .unwrap();
        node.forget("10.1.0.9:4000".parse().unwrap()).await.unwrap();
    }
    drop(lsn);
    // Restarted, with nobody answering on the LAN: the cached LSN comes back.
    let node = LanDiscovery::bind(config(2, vec![]).cache_file(&path)).await.unwrap();
    let found = node.discover().await.unwrap();
    assert_eq!(
        found,
        vec![Candidate { addr: LSN_ADDR.parse().unwrap(), id: Some(id(1)), source: Source::Cache }]
    );
}

#[tokio::test]
async fn ipv6_multicast_on_loopback_when_available() {
    // Interface 1 is loopback on Linux; multicast on it may not be delivered in a sandbox
    // (it is not in ours), in which case the LSN is asked at its unicast address instead (documented fallback).
    let group: std::net::Ipv6Addr = fleetmesh_lan::DEFAULT_GROUP;
    let mk = |n: u8, targets: Vec<SocketAddr>| {
        let mut cfg = LanConfig::new(id(n)).bind(None, Some("[::]:0".parse().unwrap()));
        cfg.v6_interface = 1;
        cfg.targets = targets;
        cfg.wait = Duration::from_millis(200);
        cfg
    };
    let lsn = LanDiscovery::bind(mk(1, vec![])).await.expect("an IPv6 socket on this host");
    let me = Candidate {
        addr: "[fd00:1::7]:4000".parse().unwrap(),
        id: Some(id(1)),
        source: Source::Lan,
    };
    lsn.remember(me).await.unwrap();
    let port = lsn.local_addrs()[0].port();
    let multicast = SocketAddr::V6(std::net::SocketAddrV6::new(group, port, 0, 1));
    let unicast: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let asker = LanDiscovery::bind(mk(2, vec![multicast])).await.unwrap();
    let mut found = asker.discover().await.unwrap();
    let via = if found.is_empty() {
        let asker = LanDiscovery::bind(mk(3, vec![unicast])).await.unwrap();
        found = asker.discover().await.unwrap();
        "unicast"
    } else {
        "multicast"
    };
    eprintln!("IPv6 LSN found via {via}");
    assert_eq!(found, vec![me]);
}

#[tokio::test]
async fn nodes_on_one_host_share_the_port_and_each_hears_the_lsn() {
    // Before, the second node on a host could not bind the discovery port and went without.
    // Every node binds the same port; a query broadcast on loopback's broadcast address reaches
    // the LSN's socket, and each asker gets the answer on its own port.
    let port = {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let shared = |n: u8| {
        let mut cfg =
            LanConfig::new(id(n)).bind(Some(SocketAddr::from(([0, 0, 0, 0], port))), None);
        cfg.targets = vec![SocketAddr::from(([127, 255, 255, 255], port))];
        cfg.wait = Duration::from_millis(300);
        cfg
    };
    let lsn = LanDiscovery::bind(shared(1)).await.unwrap();
    let me = Candidate { addr: LSN_ADDR.parse().unwrap(), id: Some(id(1)), source: Source::Lan };
    lsn.remember(me).await.unwrap();
    let (a, b) = (
        LanDiscovery::bind(shared(2)).await.unwrap(),
        LanDiscovery::bind(shared(3)).await.unwrap(),
    );
    let (found_a, found_b) = tokio::join!(a.discover(), b.discover());
    for found in [found_a.unwrap(), found_b.unwrap()] {
        assert_eq!(found, vec![me], "each asker hears the LSN");
    }
}
