//! The service alone: refusals on the wire, admission to the routing table, typed errors.

use std::net::SocketAddr;

use rand_core::SeedableRng;

use crate::{
    dht::{Dht, DhtConfig, DhtError, DhtEvent, KeyKind},
    wire::{ErrorCode, KadPing, KadStore, Message, Record},
    Identity, NodeId, Timestamp,
};

fn identity(n: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(n))
}

fn now() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

fn dht() -> Dht {
    Dht::new(now(), identity(1).node_id(), NodeId::hash(b"master"), DhtConfig::default(), [1; 32])
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4000))
}

#[test]
fn a_forged_record_sent_to_store_is_refused_with_the_reason() {
    let mut d = dht();
    let peer = identity(2);
    d.handle_connected(now(), peer.node_id(), addr(2));
    while d.poll_message().is_some() {}
    let key = KeyKind::Provider.key(b"content");
    let mut record = Record::sign(&peer, key, b"offer".to_vec(), 1, now().as_secs() + 60);
    record.value = b"changed".to_vec();
    let store = Message::KadStore(Box::new(KadStore { rpc: 5, record }));
    assert!(d.handle_message(now(), peer.node_id(), addr(2), store).is_none());
    let (to, answer) = d.poll_message().expect("an answer");
    assert_eq!(to, addr(2));
    let Message::Error(error) = answer else { panic!("{answer:?}") };
    assert_eq!((error.seq, error.code), (5, ErrorCode::REFUSED));
    assert!(error.detail.contains("signature"), "{}", error.detail);
    assert!(d.records().is_empty());
}

#[test]
fn only_peers_with_an_authenticated_session_enter_the_table() {
    let mut d = dht();
    let stranger = identity(3).node_id();
    let ping = Message::KadPing(KadPing { rpc: 1 });
    assert!(d.handle_message(now(), stranger, addr(3), ping.clone()).is_none());
    // Answered, but not admitted.
    assert!(matches!(d.poll_message(), Some((_, Message::KadPong(_)))));
    assert!(d.table().is_empty());
    d.handle_connected(now(), stranger, addr(3));
    assert!(d.table().contains(&stranger));
}

#[test]
fn queries_without_peers_fail_with_no_peers_and_bad_records_are_refused_at_once() {
    let mut d = dht();
    let get = d.get(now(), KeyKind::Trust.key(b"x"));
    assert!(matches!(
        d.poll_event(),
        Some(DhtEvent::Got { query, result: Err(DhtError::NoPeers), .. }) if query == get
    ));
    let me = identity(1);
    let expired = Record::sign(&me, KeyKind::Trust.key(b"x"), vec![1], 1, now().as_secs() - 1);
    d.put(now(), expired);
    assert!(matches!(
        d.poll_event(),
        Some(DhtEvent::Put {
            result: Err(DhtError::Refused(crate::dht::RecordError::Expired)),
            ..
        })
    ));
}
