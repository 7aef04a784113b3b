//! Whole-network tests: real nodes under the real driver, over the real UDP and TCP transports,
//! inside turmoil with fixed seeds.

use std::time::Duration;

use fleetmesh::{
    endpoint::DisconnectReason,
    secure::HandshakeError,
    trust::{Authority, CertError, TokenEnrollment},
    wire::{AppMessage, Message},
    Event, Identity,
};
use fleetmesh_testkit::{Fleet, TransportKind};
use rand_core::SeedableRng;

fn app(id: u64) -> Message {
    Message::App(AppMessage { id, data: format!("message {id}").into_bytes() })
}

fn got_app(events: &[Event], id: u64) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Message { message: Message::App(m), .. } if m.id == id))
}

/// Two nodes certified by one master complete a secure session and talk both ways.
fn two_nodes_talk(kind: TransportKind, seed: u64) {
    let mut fleet = Fleet::builder(seed).transport(kind).build();
    let a = fleet.add_node("a");
    let b = fleet.add_node("b");
    let (ctl_a, ctl_b, addr_b) = (fleet.control("a"), fleet.control("b"), fleet.addr("b"));
    fleet.client("test", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl_a.send_to(addr_b, app(1)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        ctl_b.send(a, app(2)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(3)).unwrap();
    let ev_a = fleet.events("a");
    let ev_b = fleet.events("b");
    assert!(
        ev_a.iter()
            .any(|e| matches!(e, Event::Connected { peer, initiator: true, .. } if *peer == b)),
        "{ev_a:?}"
    );
    assert!(
        ev_b.iter()
            .any(|e| matches!(e, Event::Connected { peer, initiator: false, .. } if *peer == a)),
        "{ev_b:?}"
    );
    assert!(got_app(&ev_b, 1), "{ev_b:?}");
    assert!(got_app(&ev_a, 2), "{ev_a:?}");
}

#[test]
fn secure_session_over_udp() {
    two_nodes_talk(TransportKind::Udp, 1);
}

#[test]
fn secure_session_over_tcp() {
    two_nodes_talk(TransportKind::Tcp, 2);
}

#[test]
fn secure_session_over_ipv6_udp() {
    let mut fleet = Fleet::builder(3).ipv6(true).build();
    fleet.add_node("a");
    fleet.add_node("b");
    let (ctl, addr_b) = (fleet.control("a"), fleet.addr("b"));
    assert!(addr_b.is_ipv6());
    fleet.client("test", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.send_to(addr_b, app(1)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(2)).unwrap();
    assert!(got_app(&fleet.events("b"), 1));
}

/// A node holding another network's certificate is refused, over both transports.
fn foreign_node_refused(kind: TransportKind, seed: u64) {
    let mut fleet = Fleet::builder(seed).transport(kind).build();
    fleet.add_node("a");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed + 100);
    let mut other = Authority::new(Identity::generate(&mut rng));
    let intruder = Identity::generate(&mut rng);
    let foreign = other.issue(
        &intruder.verifying_key(),
        intruder.x25519_public(),
        fleetmesh::trust::CertFlags::NONE,
        fleetmesh::Timestamp::from_secs(1_700_000_000),
        Duration::from_secs(86_400),
    );
    // It even believes in our network key: only its certificate is foreign.
    let network = fleet.network_key();
    fleet.add_node_with("x", intruder, Some(foreign), network);
    let (ctl, addr_a) = (fleet.control("x"), fleet.addr("a"));
    fleet.client("test", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.send_to(addr_a, app(1)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(12)).unwrap();
    let ev_a = fleet.events("a");
    assert!(
        ev_a.iter().any(|e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::Certificate(CertError::WrongNetwork(_)),
                ..
            }
        )),
        "{ev_a:?}"
    );
    assert!(!got_app(&ev_a, 1));
    assert!(!ev_a.iter().any(|e| matches!(e, Event::Connected { .. })));
    // The intruder's queued message is handed back when its handshake gives up.
    let ev_x = fleet.events("x");
    assert!(
        ev_x.iter().any(|e| matches!(e, Event::ConnectFailed { unsent, .. } if unsent.len() == 1)),
        "{ev_x:?}"
    );
}

#[test]
fn foreign_certificate_refused_over_udp() {
    foreign_node_refused(TransportKind::Udp, 4);
}

#[test]
fn foreign_certificate_refused_over_tcp() {
    foreign_node_refused(TransportKind::Tcp, 5);
}

#[test]
fn node_enrolls_with_the_master_over_udp_then_reaches_a_peer() {
    let mut fleet = Fleet::builder(6).build();
    fleet.add_master("master", || {
        let mut tokens = TokenEnrollment::new();
        tokens.add_token("install-1");
        Box::new(tokens)
    });
    fleet.add_node("peer");
    let network = fleet.network_key();
    let id = fleet.add_node_with_token("new", "install-1");
    let (ctl, addr_m, addr_p) = (fleet.control("new"), fleet.addr("master"), fleet.addr("peer"));
    let master_id = network.master_id();
    fleet.client("test", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.connect(addr_m, Some(master_id)).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        ctl.send_to(addr_p, app(9)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(4)).unwrap();
    let ev = fleet.events("new");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Enrolled { certificate } if certificate.node_id() == id)),
        "{ev:?}"
    );
    assert!(got_app(&fleet.events("peer"), 9));
}

#[test]
fn a_crashed_node_restarts_with_its_identity_and_reconnects() {
    let mut fleet = Fleet::builder(7).build();
    let a = fleet.add_node("a");
    let b = fleet.add_node("b");
    let (ctl_a, addr_b) = (fleet.control("a"), fleet.addr("b"));
    fleet.client("first", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl_a.send_to(addr_b, app(1)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(2)).unwrap();
    assert!(got_app(&fleet.events("b"), 1));

    fleet.crash("b");
    fleet.run_for(Duration::from_secs(1)).unwrap();
    fleet.bounce("b");
    // The restarted node (same id, fresh sessions) reaches out; A replaces its stale session.
    let (ctl_b, addr_a) = (fleet.control("b"), fleet.addr("a"));
    fleet.client("second", async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ctl_b.send_to(addr_a, app(2)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(2)).unwrap();
    let ev_a = fleet.events("a");
    assert!(got_app(&ev_a, 2), "{ev_a:?}");
    let connects =
        ev_a.iter().filter(|e| matches!(e, Event::Connected { peer, .. } if *peer == b)).count();
    assert_eq!(connects, 2, "{ev_a:?}");
    assert_eq!(fleet.node_id("a"), a);
}

#[test]
fn a_partition_idles_the_session_out_and_healing_allows_a_new_one() {
    let mut fleet = Fleet::builder(8).build();
    fleet.add_node("a");
    let b = fleet.add_node("b");
    let (ctl_a, addr_b) = (fleet.control("a"), fleet.addr("b"));
    let ctl = ctl_a.clone();
    fleet.client("open", async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.send_to(addr_b, app(1)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(1)).unwrap();
    fleet.partition("a", "b");
    fleet.run_for(Duration::from_secs(185)).unwrap();
    assert!(fleet
        .events("a")
        .contains(&Event::Disconnected { peer: b, reason: DisconnectReason::Idle }));
    fleet.repair("a", "b");
    fleet.client("again", async move {
        ctl_a.send_to(addr_b, app(2)).await?;
        Ok(())
    });
    fleet.run_for(Duration::from_secs(2)).unwrap();
    assert!(got_app(&fleet.events("b"), 2));
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut fleet = Fleet::builder(seed).build();
        fleet.add_node("a");
        fleet.add_node("b");
        let (ctl, addr_b) = (fleet.control("a"), fleet.addr("b"));
        fleet.client("test", async move {
            ctl.send_to(addr_b, app(1)).await?;
            Ok(())
        });
        fleet.run_for(Duration::from_secs(2)).unwrap();
        fleet
            .log()
            .all()
            .into_iter()
            .map(|r| format!("{} {:?} {:?}", r.host, r.at, r.event))
            .collect::<Vec<_>>()
    };
    let first = run(11);
    assert!(!first.is_empty());
    assert_eq!(first, run(11));
}
