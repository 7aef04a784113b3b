//! Republishing in short, both ends: one renew per peer for the records due together, full
//! stores only where a peer lacks one, failures, and the holder's answers.

use std::{net::SocketAddr, time::Duration};

use rand_core::SeedableRng;

use crate::{
    dht::{Dht, DhtConfig, KeyKind},
    wire::{
        encoded_len, ErrorCode, KadPing, KadRenew, KadRenewed, KadStore, KadStored, Message,
        Record, RecordRef, MAX_RENEW_ENTRIES,
    },
    Identity, NodeId, Timestamp,
};

fn identity(n: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(n))
}

fn now() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// One per subnet: the table admits only a few contacts of one subnet per bucket.
fn spread(i: u8) -> SocketAddr {
    SocketAddr::from(([10, i, 0, 1], 4000))
}

fn drain(d: &mut Dht) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| d.poll_message()).collect()
}

fn store(rpc: u32, record: Record) -> Message {
    Message::KadStore(Box::new(KadStore { rpc, record, cache: false, client: false }))
}

/// A node with k = 3 and three peers, holding `n` records stored by the first peer.
fn holder(n: usize) -> (Dht, Vec<Identity>, Vec<Record>) {
    let config = DhtConfig::default().k(3);
    let mut d = Dht::new(now(), identity(1).node_id(), NodeId::hash(b"master"), config, [1; 32]);
    let peers: Vec<Identity> = (2..5).map(identity).collect();
    for (i, p) in peers.iter().enumerate() {
        d.handle_connected(now(), p.node_id(), spread(2 + i as u8), true);
    }
    drain(&mut d);
    // The bootstrap lookup's requests, never answered here, time out.
    d.handle_timeout(now() + Duration::from_secs(60));
    drain(&mut d);
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let key = KeyKind::Provider.key(format!("content {i}").as_bytes());
            Record::sign(&peers[0], key, b"offer".to_vec(), 1, now().as_secs() + 86_400)
        })
        .collect();
    for (i, r) in records.iter().enumerate() {
        d.handle_message(now(), peers[0].node_id(), spread(2), store(i as u32, r.clone()));
    }
    drain(&mut d);
    (d, peers, records)
}

#[test]
fn a_republish_renews_at_each_peer_in_one_message_and_stores_only_what_a_peer_lacks() {
    let (mut d, peers, records) = holder(3);
    // Traffic that flows anyway proves the peers alive: the republish skips its lookups.
    let late = now() + Duration::from_secs(50 * 60);
    for (i, p) in peers.iter().enumerate() {
        let ping = Message::KadPing(KadPing { rpc: 20 + i as u32, client: false });
        d.handle_message(late, p.node_id(), spread(2 + i as u8), ping);
    }
    drain(&mut d);
    // All three come due within the hour's last tenth; the node is woken after the last.
    let due = now() + Duration::from_secs(3600);
    d.handle_timeout(due);
    let sent = drain(&mut d);
    let renews: Vec<(SocketAddr, KadRenew)> = (sent.iter())
        .filter_map(|(a, m)| match m {
            Message::KadRenew(r) => Some((*a, (**r).clone())),
            _ => None,
        })
        .collect();
    assert_eq!(renews.len(), 3, "one renew per peer: {sent:?}");
    assert!(!sent.iter().any(|(_, m)| matches!(m, Message::KadStore(_))), "{sent:?}");
    for (_, r) in &renews {
        let mut named = r.records.clone();
        named.sort_by_key(|r| r.key);
        let mut all: Vec<RecordRef> = records.iter().map(RecordRef::of).collect();
        all.sort_by_key(|r| r.key);
        assert_eq!(named, all, "the records due together, in one renew");
    }
    // Three renews cost less than half the nine stores they replace.
    let renew_bytes: usize = sent.iter().map(|(_, m)| encoded_len(m)).sum();
    let store_bytes: usize = records.iter().map(|r| 3 * encoded_len(&store(1, r.clone()))).sum();
    assert!(renew_bytes * 2 < store_bytes, "{renew_bytes} B against {store_bytes} B");

    // The first peer held all three, the second lacks the second named, the third is silent.
    let at = |i: u8| renews.iter().find(|(a, _)| *a == spread(i)).map(|(_, r)| r.clone());
    let (first, second) = (at(2).unwrap(), at(3).unwrap());
    let answer = |rpc, missing| Message::KadRenewed(KadRenewed { rpc, missing, client: false });
    d.handle_message(due, peers[0].node_id(), spread(2), answer(first.rpc, vec![]));
    assert!(drain(&mut d).is_empty(), "nothing more for the peer that held everything");
    d.handle_message(due, peers[1].node_id(), spread(3), answer(second.rpc, vec![1]));
    let sent = drain(&mut d);
    let [(to, Message::KadStore(s))] = sent.as_slice() else { panic!("one store: {sent:?}") };
    assert_eq!(*to, spread(3));
    assert_eq!(RecordRef::of(&s.record), second.records[1]);
    let stored = Message::KadStored(KadStored { rpc: s.rpc, client: false });
    d.handle_message(due, peers[1].node_id(), spread(3), stored);
    assert!(d.running() > 0, "the silent peer's renew is still out");
    // The silent peer's renew times out: a failure against it, and the republishes end.
    d.handle_timeout(due + Duration::from_secs(60));
    let silent = d.table().get(&peers[2].node_id()).map(|e| e.failures);
    assert!(silent.is_none_or(|f| f > 0), "a failed renew counts against the peer");
    assert_eq!(d.running(), 0);
}

#[test]
fn a_holder_renews_what_it_holds_and_names_the_rest_missing() {
    let (mut d, peers, records) = holder(1);
    let other = Record::sign(
        &peers[1],
        KeyKind::Provider.key(b"not here"),
        b"x".to_vec(),
        1,
        now().as_secs() + 86_400,
    );
    let newer = RecordRef { version: 2, ..RecordRef::of(&records[0]) };
    let names = vec![RecordRef::of(&records[0]), RecordRef::of(&other), newer];
    let renew =
        |rpc, records| Message::KadRenew(Box::new(KadRenew { rpc, records, client: false }));
    let later = now() + Duration::from_secs(50 * 60);
    d.handle_message(later, peers[1].node_id(), spread(3), renew(7, names));
    let sent = drain(&mut d);
    assert!(
        sent.contains(&(
            spread(3),
            Message::KadRenewed(KadRenewed { rpc: 7, missing: vec![1, 2], client: false })
        )),
        "{sent:?}"
    );
    // The renewed copy's republish moved to an hour after the renew.
    assert!(d.records().poll_timeout().unwrap() > later + Duration::from_secs(54 * 60));
    // A renew naming too many records is refused whole.
    let many = vec![RecordRef::of(&records[0]); MAX_RENEW_ENTRIES + 1];
    d.handle_message(later, peers[1].node_id(), spread(3), renew(8, many));
    let sent = drain(&mut d);
    let refused = sent
        .iter()
        .any(|(_, m)| matches!(m, Message::Error(e) if e.seq == 8 && e.code == ErrorCode::REFUSED));
    assert!(refused, "{sent:?}");
}
