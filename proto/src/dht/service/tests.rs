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
    d.handle_connected(now(), peer.node_id(), addr(2), true);
    while d.poll_message().is_some() {}
    let key = KeyKind::Provider.key(b"content");
    let mut record = Record::sign(&peer, key, b"offer".to_vec(), 1, now().as_secs() + 60);
    record.value = b"changed".to_vec();
    let store =
        Message::KadStore(Box::new(KadStore { rpc: 5, record, cache: false, client: false }));
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
    let ping = Message::KadPing(KadPing { rpc: 1, client: false });
    assert!(d.handle_message(now(), stranger, addr(3), ping.clone()).is_none());
    // Answered, but not admitted.
    assert!(matches!(d.poll_message(), Some((_, Message::KadPong(_)))));
    assert!(d.table().is_empty());
    d.handle_connected(now(), stranger, addr(3), true);
    assert!(d.table().contains(&stranger));
}

#[test]
fn a_peer_heard_through_a_relay_keeps_its_table_address_and_is_not_added_at_the_relays() {
    let mut d = dht();
    let (relayed, known) = (identity(3).node_id(), identity(4).node_id());
    // The node's stand-in for a relayed peer (`overlay/node/gsn.rs`).
    let relay = |id: &NodeId| crate::overlay::relay_addr(id);
    d.handle_connected(now(), relayed, relay(&relayed), true);
    let ping = Message::KadPing(KadPing { rpc: 1, client: false });
    assert!(d.handle_message(now(), relayed, relay(&relayed), ping.clone()).is_none());
    assert!(!d.table().contains(&relayed), "a stand-in address entered the table");
    d.handle_connected(now(), known, addr(4), true);
    assert!(d.handle_message(now(), known, relay(&known), ping).is_none());
    let entry = d.table().get(&known).expect("known");
    assert_eq!(entry.contact.addr.0, addr(4), "the relay's stand-in replaced its address");
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

/// Takes every queued message.
fn drain(d: &mut Dht) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| d.poll_message()).collect()
}

fn bytes(messages: &[(SocketAddr, Message)]) -> u64 {
    messages.iter().map(|(_, m)| crate::wire::encoded_len(m) as u64).sum()
}

#[test]
fn traffic_counts_maintenance_answers_and_queries_apart() {
    use crate::wire::KadFindValue;
    let mut d = dht();
    let peer = identity(2).node_id();
    // The first contact starts the bootstrap self-lookup: maintenance.
    d.handle_connected(now(), peer, addr(2), true);
    let bootstrap = drain(&mut d);
    assert!(matches!(bootstrap[..], [(_, Message::KadFindNode(_))]), "{bootstrap:?}");
    // Answering the peer's requests: answers.
    let ping = Message::KadPing(KadPing { rpc: 1, client: false });
    d.handle_message(now(), peer, addr(2), ping);
    let find =
        Message::KadFindValue(KadFindValue { rpc: 2, key: NodeId::hash(b"k"), client: false });
    d.handle_message(now(), peer, addr(2), find);
    let answers = drain(&mut d);
    assert_eq!(answers.len(), 2);
    // A get the application started: query.
    d.get(now(), KeyKind::Provider.key(b"content"));
    let query = drain(&mut d);
    assert!(matches!(query[..], [(_, Message::KadFindValue(_))]), "{query:?}");

    let t = d.traffic();
    assert_eq!((t.maintenance_msgs, t.maintenance_bytes), (1, bytes(&bootstrap)));
    assert_eq!((t.answer_msgs, t.answer_bytes), (2, bytes(&answers)));
    assert_eq!((t.query_msgs, t.query_bytes), (1, bytes(&query)));
    assert_eq!(t.msgs(), 4);
}

#[test]
fn a_cache_copy_lives_for_the_cache_ttl_and_a_full_store_for_the_record_ttl() {
    let mut d = dht();
    let peer = identity(2);
    d.handle_connected(now(), peer.node_id(), addr(2), true);
    drain(&mut d);
    let expires = now().as_secs() + 24 * 3600;
    let cached = Record::sign(&peer, KeyKind::Provider.key(b"a"), vec![1], 1, expires);
    let full = Record::sign(&peer, KeyKind::Provider.key(b"b"), vec![2], 1, expires);
    for (rpc, record, cache) in [(7, cached.clone(), true), (8, full.clone(), false)] {
        let store = Message::KadStore(Box::new(KadStore { rpc, record, cache, client: false }));
        d.handle_message(now(), peer.node_id(), addr(2), store);
    }
    assert_eq!(d.records().len(), 2);
    let ttl = DhtConfig::default().cache_ttl;
    let later = now() + ttl + std::time::Duration::from_secs(1);
    d.handle_timeout(later);
    assert!(d.records().get(&cached.key).next().is_none(), "cache copy outlived its TTL");
    assert_eq!(d.records().get(&full.key).next(), Some(&full));
}

#[test]
fn a_get_leaves_a_cache_copy_marked_as_such_at_the_closest_node_without_the_value() {
    use crate::wire::KadValue;
    let mut d = dht();
    let (holder, empty) = (identity(2), identity(3));
    d.handle_connected(now(), holder.node_id(), addr(2), true);
    d.handle_connected(now(), empty.node_id(), addr(3), true);
    drain(&mut d);
    let key = KeyKind::Provider.key(b"content");
    let record = Record::sign(&holder, key, b"offer".to_vec(), 1, now().as_secs() + 3600);
    d.get(now(), key);
    let asks: Vec<(SocketAddr, u32)> = drain(&mut d)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::KadFindValue(f) => Some((to, f.rpc)),
            _ => None,
        })
        .collect();
    assert_eq!(asks.len(), 2);
    // The node without the value answers first; the holder's answer ends the lookup.
    let mut asks = asks;
    asks.sort_by_key(|(to, _)| *to != addr(3));
    for (to, rpc) in asks {
        let (peer, records) = if to == addr(2) {
            (holder.node_id(), vec![record.clone()])
        } else {
            (empty.node_id(), vec![])
        };
        let value = KadValue { rpc, records, closer: vec![], client: false };
        d.handle_message(now(), peer, to, Message::KadValue(Box::new(value)));
    }
    let got = d.poll_event().expect("get finished");
    assert!(matches!(&got, DhtEvent::Got { result: Ok(r), .. } if r == &vec![record.clone()]));
    let stores: Vec<_> = drain(&mut d)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Message::KadStore(s) => Some((to, *s)),
            _ => None,
        })
        .collect();
    assert_eq!(stores.len(), 1, "{stores:?}");
    assert_eq!(stores[0].0, addr(3));
    assert!(stores[0].1.cache);
    assert_eq!(stores[0].1.record, record);
}

#[test]
fn get_all_merges_the_records_of_every_holder_and_get_from_drops_foreign_publishers() {
    use crate::wire::KadValue;
    let (a, b) = (identity(2), identity(3));
    let key = KeyKind::Provider.key(b"content");
    let ra = Record::sign(&a, key, b"from a".to_vec(), 1, now().as_secs() + 3600);
    let rb = Record::sign(&b, key, b"from b".to_vec(), 1, now().as_secs() + 3600);
    for all in [true, false] {
        let mut d = dht();
        d.handle_connected(now(), a.node_id(), addr(2), true);
        d.handle_connected(now(), b.node_id(), addr(3), true);
        drain(&mut d);
        if all {
            d.get_all(now(), key);
        } else {
            d.get_from(now(), key, b.node_id());
        }
        let mut asks: Vec<(SocketAddr, u32)> = drain(&mut d)
            .into_iter()
            .filter_map(|(to, m)| match m {
                Message::KadFindValue(f) => Some((to, f.rpc)),
                _ => None,
            })
            .collect();
        // Node a answers first, with its own record only.
        asks.sort();
        for (to, rpc) in asks {
            let (peer, record) =
                if to == addr(2) { (a.node_id(), &ra) } else { (b.node_id(), &rb) };
            let value =
                KadValue { rpc, records: vec![record.clone()], closer: vec![], client: false };
            d.handle_message(now(), peer, to, Message::KadValue(Box::new(value)));
        }
        let Some(DhtEvent::Got { result: Ok(records), .. }) = d.poll_event() else {
            panic!("no records")
        };
        if all {
            assert_eq!(records, vec![ra.clone(), rb.clone()]);
        } else {
            assert_eq!(records, vec![rb.clone()]);
        }
    }
}

/// An id whose first bit differs from `me`'s (bucket 0), the rest from `tail`.
fn far_id(me: &NodeId, tail: u8) -> NodeId {
    let mut bytes = [tail; 20];
    bytes[0] = (me.as_bytes()[0] ^ 0x80) & 0x80 | (tail & 0x7f);
    NodeId::from_bytes(bytes)
}

#[test]
fn an_answered_request_proves_its_contact_alive_so_no_ping_follows() {
    use crate::wire::KadNodes;
    use std::time::Duration;
    let me = identity(1).node_id();
    let config = DhtConfig::default().k(2);
    let mut d = Dht::new(now(), me, NodeId::hash(b"master"), config, [1; 32]);
    let (a, b, c) = (far_id(&me, 1), far_id(&me, 2), far_id(&me, 3));
    d.handle_connected(now(), a, addr(1), true);
    d.handle_connected(now(), b, addr(2), true);
    drain(&mut d);
    // B sends us a request at 10 min; at 20 min A answers one of ours.
    let ten = now() + Duration::from_secs(600);
    d.handle_message(ten, b, addr(2), Message::KadPing(KadPing { rpc: 1, client: false }));
    let twenty = now() + Duration::from_secs(1200);
    d.find_node(twenty, NodeId::hash(b"somewhere"));
    let asked = drain(&mut d);
    let rpc = asked
        .iter()
        .find_map(|(to, m)| match m {
            Message::KadFindNode(f) if *to == addr(1) => Some(f.rpc),
            _ => None,
        })
        .expect("A is asked");
    let answer = Message::KadNodes(KadNodes { rpc, nodes: vec![], client: false });
    assert!(d.handle_message(twenty, a, addr(1), answer).is_none());
    drain(&mut d);
    // A newcomer for the full bucket: both contacts were heard from within the liveness
    // window, so nobody is pinged and the newcomer is dropped.
    d.handle_connected(twenty, c, addr(3), true);
    let sent = drain(&mut d);
    assert!(!sent.iter().any(|(_, m)| matches!(m, Message::KadPing(_))), "{sent:?}");
    assert!(!d.table().contains(&c));
    assert_eq!(d.traffic().causes.ping.msgs, 0);
}

#[test]
fn a_request_from_a_contact_postpones_the_refresh_of_its_bucket() {
    use crate::wire::KadFindNode;
    use std::time::Duration;
    let me = identity(1).node_id();
    let config = DhtConfig::default().k(1);
    let mut d = Dht::new(now(), me, NodeId::hash(b"master"), config, [1; 32]);
    let far = far_id(&me, 1);
    // Shares the first bit with us, not the second: bucket 1 once the table splits.
    let mut bytes = [2u8; 20];
    bytes[0] = me.as_bytes()[0] & 0x80 | (!me.as_bytes()[0] & 0x40);
    let near = NodeId::from_bytes(bytes);
    d.handle_connected(now(), far, addr(1), true);
    d.handle_connected(now(), near, addr(2), true);
    assert_eq!(d.table().bucket_of(&far), Some(0));
    assert_eq!(d.table().bucket_of(&near), Some(1));
    drain(&mut d);
    // Half an hour in, the far contact's lookup asks us something.
    let half = now() + Duration::from_secs(1800);
    let ask =
        Message::KadFindNode(KadFindNode { rpc: 9, target: NodeId::hash(b"x"), client: false });
    d.handle_message(half, far, addr(1), ask);
    drain(&mut d);
    // At the hour only bucket 1 is refreshed.
    d.handle_timeout(now() + Duration::from_secs(3600));
    let targets: Vec<Option<usize>> = drain(&mut d)
        .iter()
        .filter_map(|(_, m)| match m {
            Message::KadFindNode(f) => Some(d.table().bucket_of(&f.target)),
            _ => None,
        })
        .collect();
    assert!(!targets.is_empty());
    assert!(targets.iter().all(|b| *b == Some(1)), "{targets:?}");
}

#[test]
fn a_client_never_refreshes_its_idle_buckets() {
    use std::time::Duration;
    for client in [false, true] {
        let me = identity(1).node_id();
        let mut d = Dht::new(now(), me, NodeId::hash(b"master"), DhtConfig::default(), [1; 32]);
        d.set_client(now(), client);
        for i in 2..6u8 {
            d.handle_connected(now(), identity(u64::from(i)).node_id(), addr(i), true);
        }
        // The bootstrap lookup's requests, never answered here, time out.
        d.handle_timeout(now() + Duration::from_secs(60));
        drain(&mut d);
        d.handle_timeout(now() + Duration::from_secs(3700));
        let lookups =
            drain(&mut d).iter().filter(|(_, m)| matches!(m, Message::KadFindNode(_))).count();
        assert_eq!(lookups == 0, client, "client {client}: {lookups} refresh requests");
        assert_eq!(d.traffic().causes.refresh.msgs == 0, client);
    }
}

#[test]
fn a_holder_republishes_into_a_neighbourhood_it_knows_first_hand_without_a_lookup() {
    let hour = std::time::Duration::from_secs(3600);
    // One per subnet: the table admits only a few contacts of one subnet per bucket.
    let spread = |i: u8| SocketAddr::from(([10, i, 0, 1], 4000));
    // k = 3: the table knows k contacts there. k = 20: it knows fewer (the fleet has no more),
    // as many as when the record was stored here.
    for (k, fresh) in [(3, true), (3, false), (20, true), (20, false)] {
        let me = identity(1).node_id();
        let config = DhtConfig::default().k(k);
        let mut d = Dht::new(now(), me, NodeId::hash(b"master"), config, [1; 32]);
        let peers: Vec<Identity> = (2..5).map(identity).collect();
        for (i, p) in peers.iter().enumerate() {
            d.handle_connected(now(), p.node_id(), spread(2 + i as u8), true);
        }
        drain(&mut d);
        // The bootstrap lookup's requests, never answered here, time out now.
        d.handle_timeout(now() + std::time::Duration::from_secs(60));
        drain(&mut d);
        let key = KeyKind::Provider.key(b"content");
        let record = Record::sign(&peers[0], key, b"offer".to_vec(), 1, now().as_secs() + 86_400);
        let store =
            Message::KadStore(Box::new(KadStore { rpc: 9, record, cache: false, client: false }));
        d.handle_message(now(), peers[0].node_id(), spread(2), store);
        drain(&mut d);
        if fresh {
            // Traffic that flows anyway proves all three alive shortly before the republish.
            let late = now() + hour - std::time::Duration::from_secs(600);
            for (i, p) in peers.iter().enumerate() {
                let ping = Message::KadPing(KadPing { rpc: 20 + i as u32, client: false });
                d.handle_message(late, p.node_id(), spread(2 + i as u8), ping);
            }
            drain(&mut d);
        }
        d.handle_timeout(now() + hour);
        let sent = drain(&mut d);
        let lookups = (sent.iter())
            .filter(|(_, m)| matches!(m, Message::KadFindNode(f) if f.target == key))
            .count();
        // A republish renews (`renew.rs`): one renew per peer for this single record.
        let stores = (sent.iter())
            .filter(|(_, m)| matches!(m, Message::KadStore(_) | Message::KadRenew(_)))
            .count();
        if fresh {
            assert_eq!((lookups, stores), (0, 3), "k = {k}: {sent:?}");
        } else {
            assert!(lookups > 0 && stores == 0, "k = {k}, stale contacts: a lookup; {sent:?}");
        }
    }
}

#[test]
fn contacts_at_lan_addresses_are_handed_to_askers_on_that_lan_only() {
    use crate::{overlay::LocalNetwork, wire::KadFindNode};
    let mut d = dht();
    d.set_local_network(LocalNetwork { addr: "10.0.0.1".parse().unwrap(), prefix_len: 24 });
    // Two neighbours on our LAN (10.0.0.0/24), one peer known at a public address.
    let (lan_a, lan_b, public) = (identity(2), identity(3), identity(4));
    let public_addr = SocketAddr::from(([203, 0, 113, 7], 4000));
    d.handle_connected(now(), lan_a.node_id(), addr(2), true);
    d.handle_connected(now(), lan_b.node_id(), addr(3), true);
    d.handle_connected(now(), public.node_id(), public_addr, true);
    drain(&mut d);
    let ask = |d: &mut Dht, from: &Identity, at: SocketAddr| {
        let find =
            Message::KadFindNode(KadFindNode { rpc: 9, target: NodeId::hash(b"t"), client: false });
        assert!(d.handle_message(now(), from.node_id(), at, find).is_none());
        let answers = drain(d);
        let [(to, Message::KadNodes(nodes))] = answers.as_slice() else { panic!("{answers:?}") };
        assert_eq!(*to, at);
        let mut ids: Vec<NodeId> = nodes.nodes.iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<NodeId>| {
        ids.sort();
        ids
    };
    // A LAN neighbour learns everyone.
    let all = sorted(vec![lan_a.node_id(), lan_b.node_id(), public.node_id()]);
    assert_eq!(ask(&mut d, &lan_a, addr(2)), all);
    // The public peer (elsewhere) learns only what it can reach: our LAN addresses would
    // name nothing, or another host on its own LAN.
    assert_eq!(ask(&mut d, &public, public_addr), vec![public.node_id()]);
}

#[test]
fn a_peer_that_opened_the_session_enters_the_table_with_its_first_message_unless_a_client() {
    let mut d = dht();
    let (server, client) = (identity(3).node_id(), identity(4).node_id());
    // Sessions they opened: nobody admitted yet.
    d.handle_connected(now(), server, addr(3), false);
    d.handle_connected(now(), client, addr(4), false);
    assert!(d.table().is_empty());
    let ping = |client| Message::KadPing(KadPing { rpc: 1, client });
    assert!(d.handle_message(now(), server, addr(3), ping(false)).is_none());
    assert!(d.handle_message(now(), client, addr(4), ping(true)).is_none());
    // Both answered, as a server answers (and the first contact starts the bootstrap).
    let sent: Vec<_> = std::iter::from_fn(|| d.poll_message()).collect();
    let pongs: Vec<_> = sent.iter().filter(|(_, m)| matches!(m, Message::KadPong(_))).collect();
    assert_eq!(pongs.len(), 2, "{sent:?}");
    assert!(pongs.iter().all(|(_, m)| crate::dht::sent_by_client(m) == Some(false)));
    assert!(d.table().contains(&server));
    assert!(!d.table().contains(&client), "a client entered the table");
    // A contact that turns client (it moved behind a NAT) leaves the table.
    assert!(d.handle_message(now(), server, addr(3), ping(true)).is_none());
    assert!(d.table().is_empty());
}

#[test]
fn a_client_says_so_in_every_message_keeps_no_copy_and_announces_itself_when_it_serves() {
    let mut d = dht();
    d.set_client(now(), true);
    assert!(d.is_client());
    let peer = identity(2);
    d.handle_connected(now(), peer.node_id(), addr(2), true);
    // Its bootstrap lookup.
    let sent: Vec<_> = std::iter::from_fn(|| d.poll_message()).collect();
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|(_, m)| crate::dht::sent_by_client(m) == Some(true)), "{sent:?}");
    // A put with fewer than k nodes around: a server would keep a copy (it is among the k
    // closest); a client does not.
    let me = identity(1);
    let key = KeyKind::Provider.key(b"content");
    let record = Record::sign(&me, key, b"offer".to_vec(), 1, now().as_secs() + 600);
    d.put(now(), record);
    let find = std::iter::from_fn(|| d.poll_message())
        .find_map(|(_, m)| match m {
            Message::KadFindNode(f) if f.target == key => Some(f),
            _ => None,
        })
        .expect("the put's lookup");
    assert!(find.client);
    let nodes = crate::wire::KadNodes { rpc: find.rpc, nodes: vec![], client: false };
    d.handle_message(now(), peer.node_id(), addr(2), Message::KadNodes(nodes));
    let stores: Vec<_> = std::iter::from_fn(|| d.poll_message())
        .filter(|(_, m)| matches!(m, Message::KadStore(s) if s.client))
        .collect();
    assert_eq!(stores.len(), 1, "one store, at the peer");
    assert!(d.records().is_empty(), "the client kept a copy");
    // Serving now: it looks itself up, so its neighbours learn it; its messages say so.
    d.set_client(now(), false);
    let sent: Vec<_> = std::iter::from_fn(|| d.poll_message()).collect();
    let me_id = me.node_id();
    assert!(
        sent.iter()
            .any(|(_, m)| matches!(m, Message::KadFindNode(f) if f.target == me_id && !f.client)),
        "{sent:?}"
    );
}
