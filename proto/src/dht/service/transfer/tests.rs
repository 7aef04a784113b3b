//! The join transfer alone: who hands what to whom, and its bounds.

use std::{net::SocketAddr, time::Duration};

use rand_core::SeedableRng;

use super::{Handoff, MAX_HANDED, MAX_PER_MINUTE, MAX_PER_NEWCOMER};
use crate::{
    dht::{Dht, DhtConfig, KeyKind},
    wire::{KadFindNode, KadStore, Message, Record},
    Identity, NodeId, Timestamp,
};

fn identity(n: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(n))
}

fn now() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// One address per /24, so the table's subnet limit never applies.
fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, i, 0, 1], 4000))
}

/// An id `n` away from `key` in its last byte: small `n`, close to the key.
fn near(key: &NodeId, n: u8) -> NodeId {
    let mut bytes = *key.as_bytes();
    bytes[19] ^= n;
    NodeId::from_bytes(bytes)
}

/// Our id where the test does not place us: far from the keys (which come from `KeyKind`).
fn far_me() -> NodeId {
    identity(1).node_id()
}

fn record(key: NodeId, n: u64) -> Record {
    Record::sign(&identity(9), key, vec![n as u8], n, now().as_secs() + 3600)
}

/// A service with id `me` holding `records`, stored by the certified peer `storer` at
/// `addr(1)`, with everything it sent drained.
fn holding(me: NodeId, config: DhtConfig, storer: NodeId, records: &[Record]) -> Dht {
    let config = config.join_transfer(true);
    let mut d = Dht::new(now(), me, NodeId::hash(b"master"), config, [1; 32]);
    d.handle_connected(now(), storer, addr(1), true);
    for (rpc, record) in records.iter().enumerate() {
        let store =
            KadStore { rpc: rpc as u32, record: record.clone(), cache: false, client: false };
        d.handle_message(now(), storer, addr(1), Message::KadStore(Box::new(store)));
    }
    assert_eq!(d.records().len(), records.len());
    while d.poll_message().is_some() {}
    d
}

/// The records sent to `to` in `KadStore`s, draining everything.
fn handed(d: &mut Dht, to: SocketAddr) -> Vec<Record> {
    std::iter::from_fn(|| d.poll_message())
        .filter_map(|(a, m)| match m {
            Message::KadStore(s) if a == to => {
                assert!(!s.cache, "a transfer is a full store");
                Some(s.record)
            }
            _ => None,
        })
        .collect()
}

fn self_lookup(d: &mut Dht, at: Timestamp, peer: NodeId, a: SocketAddr) {
    let find = Message::KadFindNode(KadFindNode { rpc: 1, target: peer, client: false });
    assert!(d.handle_message(at, peer, a, find).is_none());
}

#[test]
fn a_newcomer_gets_the_records_once_and_again_after_it_rejoins() {
    let key = KeyKind::Provider.key(b"content");
    let r = record(key, 1);
    let mut d = holding(far_me(), DhtConfig::default(), near(&key, 0x40), std::slice::from_ref(&r));
    // A new contact near the key: handed the record on entering the table.
    let newcomer = near(&key, 1);
    d.handle_connected(now(), newcomer, addr(2), true);
    assert_eq!(handed(&mut d, addr(2)), vec![r.clone()]);
    assert_eq!(d.traffic().causes.transfer.msgs, 1);
    // Seen again, a lookup of someone else's id through it: nothing more.
    d.handle_connected(now(), newcomer, addr(2), true);
    let other =
        Message::KadFindNode(KadFindNode { rpc: 2, target: NodeId::hash(b"x"), client: false });
    d.handle_message(now(), newcomer, addr(2), other);
    assert!(handed(&mut d, addr(2)).is_empty());
    // Its self-lookup says it (re)started, maybe empty: handed again.
    self_lookup(&mut d, now(), newcomer, addr(2));
    assert_eq!(handed(&mut d, addr(2)), vec![r]);
}

#[test]
fn a_self_lookup_without_a_certified_session_gets_nothing() {
    let key = KeyKind::Provider.key(b"content");
    let mut d = holding(far_me(), DhtConfig::default(), near(&key, 0x40), &[record(key, 1)]);
    self_lookup(&mut d, now(), near(&key, 1), addr(3));
    assert!(handed(&mut d, addr(3)).is_empty());
}

#[test]
fn only_the_nearest_holders_send_and_only_what_the_newcomer_should_hold() {
    // k = 2. We (identity 1) are far from the key compared with the contacts below.
    let key = KeyKind::Provider.key(b"content");
    let config = || DhtConfig::default().k(2);
    let r = record(key, 1);

    // (The newcomers announce themselves with a self-lookup: with k = 2 a full bucket may
    // keep them out of the table.)
    // Two contacts nearer the key than we are: we are not among the two nearest, so a
    // newcomer near the key is left to them.
    let mut d = holding(far_me(), config(), near(&key, 0x10), std::slice::from_ref(&r));
    d.handle_connected(now(), near(&key, 0x11), addr(4), true);
    d.handle_connected(now(), near(&key, 1), addr(2), true);
    self_lookup(&mut d, now(), near(&key, 1), addr(2));
    assert!(handed(&mut d, addr(2)).is_empty(), "a third holder sent");

    // One contact nearer than we are: we are second. A newcomer the two of us keep out of
    // the k = 2 closest gets nothing...
    let mut d = holding(far_me(), config(), near(&key, 0x10), std::slice::from_ref(&r));
    let far = NodeId::from_bytes([!key.as_bytes()[0]; 20]);
    assert!(far.distance(&key) > far_me().distance(&key));
    d.handle_connected(now(), far, addr(5), true);
    self_lookup(&mut d, now(), far, addr(5));
    assert!(handed(&mut d, addr(5)).is_empty(), "sent to a node outside the k closest");
    // ...one nearer the key than we are gets the record.
    d.handle_connected(now(), near(&key, 1), addr(2), true);
    self_lookup(&mut d, now(), near(&key, 1), addr(2));
    // (Once on entering the table, once more for the self-lookup if it entered.)
    let got = handed(&mut d, addr(2));
    assert!(!got.is_empty() && got.iter().all(|g| *g == r), "{got:?}");
}

#[test]
fn transfers_are_bounded_per_newcomer_and_per_minute_nearest_first() {
    let base = KeyKind::Provider.key(b"content");
    // 40 records under keys near `base`, nearer the newcomers the smaller `n`.
    let records: Vec<Record> = (1..=40).map(|n| record(near(&base, n as u8), n)).collect();
    // We are the nearest to every key, so rule 2 lets us send them all.
    let mut d = holding(near(&base, 0x41), DhtConfig::default(), near(&base, 0x80), &records);
    let mut total = 0;
    for i in 0..6u8 {
        let at = if i == 5 { now() + Duration::from_secs(61) } else { now() };
        let peer = near(&base, 0xc0 + i);
        d.handle_connected(at, peer, addr(10 + i), true);
        let got = handed(&mut d, addr(10 + i));
        let expected = match i {
            0..=3 => MAX_PER_NEWCOMER,
            // The minute's budget is spent (4 × 32 = 128)...
            4 => 0,
            // ...and renewed a minute later.
            _ => MAX_PER_NEWCOMER,
        };
        assert_eq!(got.len(), expected, "newcomer {i}");
        if i == 0 {
            let mut nearest: Vec<Record> = records.clone();
            nearest.sort_by_key(|r| peer.distance(&r.key));
            nearest.truncate(MAX_PER_NEWCOMER);
            assert_eq!(got, nearest);
        }
        total += got.len();
    }
    assert_eq!(total, MAX_PER_MINUTE + MAX_PER_NEWCOMER);
}

#[test]
fn the_memory_of_what_was_handed_is_bounded_and_forgets_the_oldest() {
    let mut h = Handoff::default();
    let r = record(KeyKind::Provider.key(b"content"), 1);
    let peer = |i: usize| NodeId::hash(&i.to_le_bytes());
    for i in 0..MAX_HANDED + 10 {
        h.note(peer(i), &r);
    }
    assert_eq!((h.handed.len(), h.order.len()), (MAX_HANDED, MAX_HANDED));
    assert!(!h.was_handed(&peer(0), &r));
    assert!(h.was_handed(&peer(MAX_HANDED + 9), &r));
    h.forget(&peer(MAX_HANDED + 9));
    assert!(!h.was_handed(&peer(MAX_HANDED + 9), &r));
    assert_eq!(h.handed.len(), MAX_HANDED - 1);
}

#[test]
fn off_by_default() {
    let key = KeyKind::Provider.key(b"content");
    let storer = near(&key, 0x40);
    let mut d = Dht::new(now(), far_me(), NodeId::hash(b"master"), DhtConfig::default(), [1; 32]);
    d.handle_connected(now(), storer, addr(1), true);
    let store = KadStore { rpc: 1, record: record(key, 1), cache: false, client: false };
    d.handle_message(now(), storer, addr(1), Message::KadStore(Box::new(store)));
    while d.poll_message().is_some() {}
    d.handle_connected(now(), near(&key, 1), addr(2), true);
    self_lookup(&mut d, now(), near(&key, 1), addr(2));
    assert!(handed(&mut d, addr(2)).is_empty());
}
