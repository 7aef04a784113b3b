use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn contact(id: NodeId, addr: &str) -> Contact {
    Contact { id, addr: addr.parse::<SocketAddr>().unwrap().into() }
}

/// An id sharing exactly `shared` leading bits with `local`, the rest from `tail`.
fn id_at(local: &NodeId, shared: usize, tail: [u8; NODE_ID_LEN]) -> NodeId {
    let mut bytes = tail;
    let l = local.as_bytes();
    for bit in 0..=shared {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let want = if bit < shared { l[byte] & mask } else { (l[byte] & mask) ^ mask };
        bytes[byte] = (bytes[byte] & !mask) | want;
    }
    NodeId::from_bytes(bytes)
}

/// A table that pings a full bucket's head every time (no liveness window), to test the ping
/// rules on their own.
fn table(k: usize) -> RoutingTable {
    let config = DhtConfig::default().k(k).liveness_window(Duration::ZERO);
    RoutingTable::new(NodeId::hash(b"local"), &config, T0, [1; 32])
}

/// `n` distinct contacts all in bucket 0 (first bit differs), on distinct public subnets.
fn far_contacts(t: &RoutingTable, n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| {
            let id = id_at(&t.local_id(), 0, *NodeId::hash(&[i as u8]).as_bytes());
            contact(id, &format!("198.51.{i}.1:4000"))
        })
        .collect()
}

#[test]
fn own_id_is_refused() {
    let mut t = table(4);
    let me = contact(t.local_id(), "198.51.100.1:1");
    assert_eq!(t.handle_verified(T0, me), InsertOutcome::OwnId);
    assert!(t.is_empty());
}

#[test]
fn full_bucket_pings_head_and_keeps_it_when_it_answers() {
    let mut t = table(4);
    let c = far_contacts(&t, 5);
    for x in &c[..4] {
        assert_eq!(t.handle_verified(T0, *x), InsertOutcome::Inserted);
    }
    // The only bucket is also the last one, so it splits first; but all these contacts
    // differ from us in the first bit and stay in bucket 0, which then pings its head.
    assert_eq!(t.handle_verified(T0, c[4]), InsertOutcome::Pending { head: c[0] });
    assert_eq!(t.poll_event(), Some(RoutingEvent::Ping { contact: c[0] }));
    assert_eq!(t.poll_event(), None);
    // Meanwhile a second newcomer is dropped: one ping per bucket.
    let extra = contact(id_at(&t.local_id(), 0, [9; 20]), "198.51.200.1:1");
    assert_eq!(t.handle_verified(T0, extra), InsertOutcome::BucketFull);
    // The head answers: it moves to the tail, the newcomer is gone, nothing is evicted
    // when the ping deadline passes.
    let later = T0 + Duration::from_millis(300);
    assert_eq!(t.handle_verified(later, c[0]), InsertOutcome::Updated);
    t.handle_timeout(later + Duration::from_secs(10));
    let order: Vec<NodeId> = t.buckets[0].entries.iter().map(|e| e.contact.id).collect();
    assert_eq!(order, vec![c[1].id, c[2].id, c[3].id, c[0].id]);
    assert!(!t.contains(&c[4].id));
}

#[test]
fn silent_head_is_replaced_after_the_timeout() {
    let mut t = table(4);
    let c = far_contacts(&t, 5);
    for x in &c {
        t.handle_verified(T0, *x);
    }
    let deadline = T0 + DhtConfig::default().request_timeout;
    assert_eq!(t.poll_timeout(), Some(deadline));
    t.handle_timeout(deadline - Duration::from_millis(1));
    assert!(t.contains(&c[0].id));
    t.handle_timeout(deadline);
    assert!(!t.contains(&c[0].id));
    let order: Vec<NodeId> = t.buckets[0].entries.iter().map(|e| e.contact.id).collect();
    assert_eq!(order, vec![c[1].id, c[2].id, c[3].id, c[4].id]);
}

#[test]
fn failed_head_is_replaced_at_once_other_failures_need_several() {
    let mut t = table(4);
    let c = far_contacts(&t, 5);
    for x in &c {
        t.handle_verified(T0, *x);
    }
    t.handle_failure(T0, &c[1].id);
    assert!(t.contains(&c[1].id), "one failure does not evict a non-head contact");
    t.handle_failure(T0, &c[0].id);
    assert!(!t.contains(&c[0].id) && t.contains(&c[4].id));
    for _ in 1..MAX_FAILURES {
        t.handle_failure(T0, &c[1].id);
    }
    assert!(!t.contains(&c[1].id));
    // Seeing a contact resets its failures.
    t.handle_failure(T0, &c[2].id);
    t.handle_verified(T0, c[2]);
    assert_eq!(t.get(&c[2].id).unwrap().failures, 0);
}

#[test]
fn removing_a_pinged_head_admits_the_waiting_contact() {
    let mut t = table(4);
    let c = far_contacts(&t, 5);
    for x in &c {
        t.handle_verified(T0, *x);
    }
    assert_eq!(t.remove(&c[0].id), Some(c[0]));
    assert!(t.contains(&c[4].id));
    assert_eq!(t.remove(&c[0].id), None);
    assert_eq!(t.remove(&c[2].id), Some(c[2]));
    assert_eq!(t.len(), 3);
    // No ping is pending any more: the only timer left is the refresh.
    assert_eq!(t.poll_timeout(), Some(T0 + DhtConfig::default().refresh_interval));
}

#[test]
fn bucket_around_own_id_splits() {
    let mut t = table(2);
    let local = t.local_id();
    // Two contacts per depth 0..6, each on its own subnet: far more than k in total.
    let mut all = Vec::new();
    for shared in 0..6 {
        for j in 0..2u8 {
            let id = id_at(&local, shared, [j + 16 * shared as u8; 20]);
            let c = contact(id, &format!("203.0.{}.1:1", shared * 2 + j as usize));
            assert_eq!(t.handle_verified(T0, c), InsertOutcome::Inserted, "{shared}/{j}");
            all.push(c);
        }
    }
    assert_eq!(t.len(), 12);
    assert!(t.num_buckets() >= 6);
    for c in &all {
        assert!(t.contains(&c.id));
    }
}

#[test]
fn subnet_limit_applies_to_public_addresses_only() {
    let mut t = table(8);
    let local = t.local_id();
    let ids: Vec<NodeId> = (0..4u8).map(|i| id_at(&local, 0, [i; 20])).collect();
    assert_eq!(t.handle_verified(T0, contact(ids[0], "203.0.113.1:1")), InsertOutcome::Inserted);
    assert_eq!(t.handle_verified(T0, contact(ids[1], "203.0.113.2:1")), InsertOutcome::Inserted);
    assert_eq!(t.handle_verified(T0, contact(ids[2], "203.0.113.3:1")), InsertOutcome::SubnetFull);
    // The same /24 as IPv4-mapped IPv6 counts too.
    assert_eq!(
        t.handle_verified(T0, contact(ids[2], "[::ffff:203.0.113.3]:1")),
        InsertOutcome::SubnetFull
    );
    // A /64 for IPv6.
    assert_eq!(t.handle_verified(T0, contact(ids[2], "[2001:db8::1]:1")), InsertOutcome::Inserted);
    assert_eq!(t.handle_verified(T0, contact(ids[3], "[2001:db8::2]:1")), InsertOutcome::Inserted);
    // A known contact moving into a full subnet is refused and keeps its old address.
    assert_eq!(t.handle_verified(T0, contact(ids[3], "203.0.113.9:1")), InsertOutcome::SubnetFull);
    // Private, loopback, link-local and unique-local addresses are exempt.
    let mut lan = table(8);
    for i in 0..8u8 {
        let addr = match i % 4 {
            0 => format!("192.168.1.{i}:1"),
            1 => format!("127.0.0.{i}:1"),
            2 => format!("[fd00::{i}]:1"),
            _ => format!("[fe80::{i}]:1"),
        };
        let c = contact(id_at(&lan.local_id(), 0, [i; 20]), &addr);
        assert_eq!(lan.handle_verified(T0, c), InsertOutcome::Inserted);
    }
}

#[test]
fn stale_buckets_yield_refresh_targets_in_their_range() {
    let mut t = table(2);
    let local = t.local_id();
    for shared in 0..4 {
        for j in 0..2u8 {
            let id = id_at(&local, shared, [j + 7 * shared as u8; 20]);
            t.handle_verified(T0, contact(id, &format!("10.0.{shared}.{j}:1")));
        }
    }
    let buckets = t.num_buckets();
    assert!(buckets > 1);
    let hour = DhtConfig::default().refresh_interval;
    // A lookup into bucket 0 half an hour in postpones its refresh.
    let half = T0 + hour / 2;
    t.handle_lookup(half, &id_at(&local, 0, [0xAA; 20]));
    assert_eq!(t.poll_timeout(), Some(T0 + hour));
    t.handle_timeout(T0 + hour);
    let mut refreshed = HashSet::new();
    while let Some(event) = t.poll_event() {
        let RoutingEvent::Refresh { target } = event else { panic!("{event:?}") };
        refreshed.insert(t.bucket_of(&target).unwrap());
    }
    let expected: HashSet<usize> = (1..buckets).collect();
    assert_eq!(refreshed, expected);
    assert_eq!(t.poll_timeout(), Some(half + hour));
}

#[test]
fn a_full_bucket_heard_from_lately_drops_the_newcomer_without_a_ping() {
    let config = DhtConfig::default().k(4);
    let mut t = RoutingTable::new(NodeId::hash(b"local"), &config, T0, [1; 32]);
    let c = far_contacts(&t, 6);
    for x in &c[..4] {
        assert_eq!(t.handle_verified(T0, *x), InsertOutcome::Inserted);
    }
    // Ten minutes later every contact in the bucket counts as alive: no ping.
    let soon = T0 + Duration::from_secs(600);
    assert_eq!(t.handle_verified(soon, c[4]), InsertOutcome::BucketFull);
    assert_eq!(t.poll_event(), None);
    assert!(!t.contains(&c[4].id));
    // The head spoke at 10 min, the others not since T0: at 20 min the new head (c[1]) is
    // past the window and is pinged.
    t.handle_verified(soon, c[0]);
    let later = T0 + Duration::from_secs(1200);
    assert_eq!(t.handle_verified(later, c[5]), InsertOutcome::Pending { head: c[1] });
    assert_eq!(t.poll_event(), Some(RoutingEvent::Ping { contact: c[1] }));
}

#[test]
fn a_bucket_a_lookup_went_into_is_not_refreshed() {
    let mut t = table(2);
    let local = t.local_id();
    for shared in 0..3 {
        for j in 0..2u8 {
            let id = id_at(&local, shared, [j + 7 * shared as u8; 20]);
            t.handle_verified(T0, contact(id, &format!("10.0.{shared}.{j}:1")));
        }
    }
    let buckets = t.num_buckets();
    let hour = DhtConfig::default().refresh_interval;
    // A lookup of ours got an answer from a contact in bucket 1 (not its target's bucket).
    let half = T0 + hour / 2;
    t.handle_touched(half, &id_at(&local, 1, [0x55; 20]));
    t.handle_timeout(T0 + hour);
    let mut refreshed = HashSet::new();
    while let Some(event) = t.poll_event() {
        let RoutingEvent::Refresh { target } = event else { panic!("{event:?}") };
        refreshed.insert(t.bucket_of(&target).unwrap());
    }
    let expected: HashSet<usize> = (0..buckets).filter(|&b| b != 1).collect();
    assert_eq!(refreshed, expected);
    // Its turn comes an hour after the lookup.
    assert_eq!(t.poll_timeout(), Some(half + hour));
}

#[test]
fn a_bucket_whose_contacts_all_spoke_lately_is_not_refreshed() {
    let mut t = table(2);
    let local = t.local_id();
    let far: Vec<Contact> =
        (0..2u8).map(|j| contact(id_at(&local, 0, [j; 20]), &format!("10.0.0.{j}:1"))).collect();
    let near = contact(id_at(&local, 1, [9; 20]), "10.0.1.1:1");
    for c in far.iter().chain([&near]) {
        t.handle_verified(T0, *c);
    }
    assert_eq!(t.bucket_of(&far[0].id), Some(0));
    assert_eq!(t.bucket_of(&near.id), Some(1));
    let hour = DhtConfig::default().refresh_interval;
    // Both far contacts sent us something at 50 min (a request, an answer); the near one did
    // not.
    let spoke = T0 + Duration::from_secs(3000);
    for c in &far {
        t.handle_verified(spoke, *c);
    }
    t.handle_timeout(T0 + hour);
    let events: Vec<RoutingEvent> = std::iter::from_fn(|| t.poll_event()).collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let RoutingEvent::Refresh { target } = events[0] else { panic!("{events:?}") };
    assert_eq!(t.bucket_of(&target), Some(1));
    // Bucket 0 is looked at again an hour after its oldest contact spoke. Both speak again
    // meanwhile, but a request to one of them fails after that: the bucket is stale.
    assert_eq!(t.poll_timeout(), Some(spoke + hour));
    for c in &far {
        t.handle_verified(T0 + Duration::from_secs(4200), *c);
    }
    t.handle_failure(T0 + Duration::from_secs(4500), &far[1].id);
    t.handle_timeout(spoke + hour);
    let events: Vec<RoutingEvent> = std::iter::from_fn(|| t.poll_event()).collect();
    assert!(
        matches!(events[..], [RoutingEvent::Refresh { target }] if t.bucket_of(&target) == Some(0)),
        "{events:?}"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Verified { shared: usize, tail: [u8; 20], net: u8, host: u8 },
    Fail(usize),
    Remove(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..12, any::<[u8; 20]>(), 0u8..4, 0u8..6)
            .prop_map(|(shared, tail, net, host)| Op::Verified { shared, tail, net, host }),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (0u64..3000).prop_map(Op::Advance),
    ]
}

fn check_invariants(t: &RoutingTable, target: &NodeId) -> Result<(), TestCaseError> {
    let last = t.buckets.len() - 1;
    let mut seen = HashSet::new();
    for (index, bucket) in t.buckets.iter().enumerate() {
        prop_assert!(bucket.entries.len() <= t.k, "bucket {} over k", index);
        let mut nets = std::collections::HashMap::new();
        for e in &bucket.entries {
            prop_assert!(e.contact.id != t.local, "own id inserted");
            prop_assert!(seen.insert(e.contact.id), "duplicate {:?}", e.contact.id);
            let shared = t.local.distance(&e.contact.id).leading_zeros() as usize;
            if index < last {
                prop_assert_eq!(shared, index);
            } else {
                prop_assert!(shared >= last);
            }
            if let Some(net) = Subnet::of(&e.contact.addr.0) {
                *nets.entry(net).or_insert(0usize) += 1;
            }
        }
        prop_assert!(nets.values().all(|&n| n <= t.max_per_subnet), "subnet limit");
    }
    for n in [0, 1, 5, t.len(), t.len() + 3] {
        let got = t.closest(target, n);
        let mut brute: Vec<Contact> = t.iter().map(|e| e.contact).collect();
        brute.sort_by_key(|c| c.id.distance(target));
        brute.truncate(n);
        prop_assert!(got.windows(2).all(|w| w[0].id.distance(target) < w[1].id.distance(target)));
        prop_assert_eq!(got, brute);
    }
    Ok(())
}

proptest! {
    #[test]
    fn invariants_hold(
        ops in proptest::collection::vec(op(), 1..200),
        target in any::<[u8; 20]>(),
    ) {
        let config = DhtConfig::default().k(3).max_per_subnet(2);
        let local = NodeId::hash(b"prop");
        let mut t = RoutingTable::new(local, &config, T0, [3; 32]);
        let mut now = T0;
        let target = NodeId::from_bytes(target);
        for op in ops {
            match op {
                Op::Verified { shared, tail, net, host } => {
                    // Occasionally our own id, to check it is refused.
                    let own = host == 5 && net == 3;
                    let id = if own { local } else { id_at(&local, shared, tail) };
                    let addr = format!("203.0.{net}.{host}:4000");
                    t.handle_verified(now, contact(id, &addr));
                }
                Op::Fail(i) => {
                    let ids: Vec<NodeId> = t.iter().map(|e| e.contact.id).collect();
                    if !ids.is_empty() { t.handle_failure(now, &ids[i % ids.len()]); }
                }
                Op::Remove(i) => {
                    let ids: Vec<NodeId> = t.iter().map(|e| e.contact.id).collect();
                    if !ids.is_empty() { t.remove(&ids[i % ids.len()]); }
                }
                Op::Advance(ms) => {
                    now = now + Duration::from_millis(ms);
                    if t.poll_timeout().is_some_and(|d| d <= now) { t.handle_timeout(now); }
                }
            }
            while t.poll_event().is_some() {}
            check_invariants(&t, &target)?;
        }
    }

    #[test]
    fn refresh_targets_fall_in_their_bucket(seed in any::<[u8; 32]>(), splits in 1usize..10) {
        let config = DhtConfig::default().k(1);
        let local = NodeId::hash(&seed);
        let mut t = RoutingTable::new(local, &config, T0, seed);
        for shared in 0..splits {
            let tail: [u8; 20] = seed[..20].try_into().unwrap();
            t.handle_verified(T0, contact(id_at(&local, shared, tail), "10.0.0.1:1"));
        }
        for index in 0..t.num_buckets() {
            let target = t.random_id_in(index);
            prop_assert_eq!(t.bucket_of(&target), Some(index));
        }
    }
}
