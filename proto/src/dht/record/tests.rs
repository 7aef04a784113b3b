use std::time::Duration;

use rand_core::SeedableRng;

use super::*;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
const HOUR: Duration = Duration::from_secs(3600);

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

struct Fixture {
    master: Identity,
    alice: Identity,
    bob: Identity,
    store: RecordStore,
}

fn fixture(config: DhtConfig) -> Fixture {
    let master = identity(1);
    let store = RecordStore::new(&config, master.node_id());
    Fixture { master, alice: identity(2), bob: identity(3), store }
}

fn rec(who: &Identity, key: &[u8], value: &[u8], version: u64) -> Record {
    Record::sign(who, KeyKind::Provider.key(key), value.to_vec(), version, T0.as_secs() + 7200)
}

#[test]
fn sign_and_verify() {
    let f = fixture(DhtConfig::default());
    let r = rec(&f.alice, b"k", b"v", 1);
    assert_eq!(r.verify(&f.alice.verifying_key()), Ok(()));
    assert_eq!(r.verify(&f.bob.verifying_key()), Err(RecordError::KeyMismatch));
    for tamper in 0..5 {
        let mut bad = r.clone();
        match tamper {
            0 => bad.value.push(0),
            1 => bad.version += 1,
            2 => bad.expires_at += 1,
            3 => bad.key = NodeId::hash(b"other"),
            _ => bad.signature[0] ^= 1,
        }
        assert_eq!(bad.verify(&f.alice.verifying_key()), Err(RecordError::BadSignature));
    }
    // A signature made for another purpose over the same body does not verify.
    let body = SignedRecord {
        key: &r.key,
        value: &r.value,
        publisher: &r.publisher,
        version: r.version,
        expires_at: r.expires_at,
    };
    let mut foreign = r.clone();
    foreign.signature = f.alice.sign(&signed_bytes(domain::ENVELOPE, &body)).to_bytes();
    assert_eq!(foreign.verify(&f.alice.verifying_key()), Err(RecordError::BadSignature));
}

#[test]
fn key_kinds_are_distinct() {
    let subject = NodeId::hash(b"n");
    let kinds = [KeyKind::Contact, KeyKind::Trust, KeyKind::Provider, KeyKind::Gsn];
    let keys: std::collections::HashSet<NodeId> =
        kinds.iter().map(|k| k.key(subject.as_bytes())).collect();
    assert_eq!(keys.len(), 4);
    assert!(!keys.contains(&subject));
}

#[test]
fn refusals_have_their_own_errors() {
    let mut f = fixture(DhtConfig::default().max_record_size(8));
    let (a, ak) = (&f.alice, f.alice.verifying_key());
    assert_eq!(
        f.store.put(T0, rec(a, b"k", &[0; 9], 1), &ak),
        Err(RecordError::TooLarge { size: 9, max: 8 })
    );
    let old = Record::sign(a, KeyKind::Provider.key(b"k"), b"v".to_vec(), 1, T0.as_secs());
    assert_eq!(f.store.put(T0, old, &ak), Err(RecordError::Expired));
    assert_eq!(
        f.store.put(T0, rec(a, b"k", b"v", 1), &f.bob.verifying_key()),
        Err(RecordError::KeyMismatch)
    );
    let mut forged = rec(a, b"k", b"v", 1);
    forged.value = b"w".to_vec();
    assert_eq!(f.store.put(T0, forged, &ak), Err(RecordError::BadSignature));
    assert!(f.store.is_empty());
}

#[test]
fn versions_replace_only_upwards_per_publisher() {
    let mut f = fixture(DhtConfig::default());
    let (ak, bk) = (f.alice.verifying_key(), f.bob.verifying_key());
    assert_eq!(f.store.put(T0, rec(&f.alice, b"k", b"v2", 2), &ak), Ok(StoreOutcome::Stored));
    assert_eq!(
        f.store.put(T0, rec(&f.alice, b"k", b"v1", 1), &ak),
        Err(RecordError::StaleVersion { offered: 1, held: 2 })
    );
    assert_eq!(
        f.store.put(T0, rec(&f.alice, b"k", b"other", 2), &ak),
        Err(RecordError::StaleVersion { offered: 2, held: 2 })
    );
    assert_eq!(f.store.put(T0, rec(&f.alice, b"k", b"v2", 2), &ak), Ok(StoreOutcome::Renewed));
    assert_eq!(
        f.store.put(T0, rec(&f.alice, b"k", b"v3", 3), &ak),
        Ok(StoreOutcome::Replaced { previous: 2 })
    );
    // Bob publishes under the same key without touching Alice's record.
    assert_eq!(f.store.put(T0, rec(&f.bob, b"k", b"b", 1), &bk), Ok(StoreOutcome::Stored));
    let key = KeyKind::Provider.key(b"k");
    let values: Vec<&[u8]> = f.store.get(&key).map(|r| &r.value[..]).collect();
    assert_eq!(values.len(), 2);
    assert!(values.contains(&&b"v3"[..]) && values.contains(&&b"b"[..]));
    assert_eq!(f.store.get_from(&key, &f.alice.node_id()).unwrap().version, 3);
}

#[test]
fn master_overrides_a_key() {
    let mut f = fixture(DhtConfig::default());
    let (ak, bk, mk) = (f.alice.verifying_key(), f.bob.verifying_key(), f.master.verifying_key());
    f.store.put(T0, rec(&f.alice, b"k", b"a", 5), &ak).unwrap();
    f.store.put(T0, rec(&f.bob, b"k", b"b", 1), &bk).unwrap();
    f.store.put(T0, rec(&f.alice, b"elsewhere", b"a", 1), &ak).unwrap();
    assert_eq!(f.store.put(T0, rec(&f.master, b"k", b"m", 1), &mk), Ok(StoreOutcome::Stored));
    let key = KeyKind::Provider.key(b"k");
    let held: Vec<NodeId> = f.store.get(&key).map(|r| r.publisher).collect();
    assert_eq!(held, vec![f.master.node_id()]);
    let mut removed: Vec<RecordEvent> = std::iter::from_fn(|| f.store.poll_event()).collect();
    removed.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(removed.len(), 2);
    assert!(removed.contains(&RecordEvent::Removed { key, publisher: f.alice.node_id() }));
    // Nobody else may publish under the master's key, even with a higher version.
    assert_eq!(f.store.put(T0, rec(&f.alice, b"k", b"a", 9), &ak), Err(RecordError::NotPublisher));
    // Other keys are unaffected.
    assert_eq!(f.store.len(), 2);
}

#[test]
fn limits_per_publisher_and_in_total() {
    let mut f = fixture(DhtConfig::default().max_records_per_publisher(2).max_records(4));
    let (ak, bk, mk) = (f.alice.verifying_key(), f.bob.verifying_key(), f.master.verifying_key());
    f.store.put(T0, rec(&f.alice, b"1", b"", 1), &ak).unwrap();
    f.store.put(T0, rec(&f.alice, b"2", b"", 1), &ak).unwrap();
    assert_eq!(
        f.store.put(T0, rec(&f.alice, b"3", b"", 1), &ak),
        Err(RecordError::TooMany { max: 2 })
    );
    // Replacing one's own record is not a new record.
    assert!(f.store.put(T0, rec(&f.alice, b"2", b"", 2), &ak).is_ok());
    f.store.put(T0, rec(&f.bob, b"1", b"", 1), &bk).unwrap();
    // The master is exempt from the per-publisher limit, not from the total.
    f.store.put(T0, rec(&f.master, b"m1", b"", 1), &mk).unwrap();
    assert_eq!(
        f.store.put(T0, rec(&f.master, b"m2", b"", 1), &mk),
        Err(RecordError::Full { max: 4 })
    );
    // Removing frees the publisher's quota.
    f.store.remove(&KeyKind::Provider.key(b"1"), &f.alice.node_id()).unwrap();
    assert!(f.store.put(T0, rec(&f.alice, b"3", b"", 1), &ak).is_ok());
}

#[test]
fn records_expire_and_are_republished() {
    let mut f = fixture(DhtConfig::default());
    let ak = f.alice.verifying_key();
    // Expires by its own time (2 h), republished every hour until then.
    let short = rec(&f.alice, b"short", b"", 1);
    f.store.put(T0, short.clone(), &ak).unwrap();
    // Claims a year, but lives one TTL (24 h) unless stored again.
    let long = Record::sign(
        &f.alice,
        KeyKind::Provider.key(b"long"),
        vec![],
        1,
        T0.as_secs() + 365 * 86_400,
    );
    f.store.put(T0, long.clone(), &ak).unwrap();
    assert_eq!(f.store.poll_timeout(), Some(T0 + HOUR));
    f.store.handle_timeout(T0 + HOUR);
    let events: Vec<RecordEvent> = std::iter::from_fn(|| f.store.poll_event()).collect();
    assert_eq!(events.len(), 2);
    assert!(events.contains(&RecordEvent::Republish { record: short.clone() }));
    // Someone else stores `long` at 1.5 h: our 2 h republish is skipped.
    f.store.put(T0 + HOUR + HOUR / 2, long.clone(), &ak).unwrap();
    f.store.handle_timeout(T0 + 2 * HOUR);
    let events: Vec<RecordEvent> = std::iter::from_fn(|| f.store.poll_event()).collect();
    assert_eq!(events, vec![RecordEvent::Removed { key: short.key, publisher: short.publisher }]);
    assert_eq!(f.store.len(), 1);
    let renewed = T0 + HOUR + HOUR / 2;
    // Nobody stores it again: gone one TTL after the last store.
    let ttl = DhtConfig::default().record_ttl;
    let mut now = T0 + 2 * HOUR;
    while let Some(t) = f.store.poll_timeout() {
        assert!(t >= now);
        now = t;
        f.store.handle_timeout(now);
    }
    assert_eq!(now, renewed + ttl);
    assert!(f.store.is_empty());
}

#[test]
fn seeded_republish_times_spread_and_the_first_holder_spares_the_others() {
    let config = DhtConfig::default();
    let mut first = fixture(config.clone());
    let mut second = fixture(config);
    first.store.seed([1; 32]);
    second.store.seed([2; 32]);
    let ak = first.alice.verifying_key();
    // Two holders get the same record at the same moment (a put's stores).
    let r = rec(&first.alice, b"k", b"v", 1);
    first.store.put(T0, r.clone(), &ak).unwrap();
    second.store.put(T0, r.clone(), &ak).unwrap();
    let (a, b) = (first.store.poll_timeout().unwrap(), second.store.poll_timeout().unwrap());
    assert_ne!(a, b, "the holders must not republish in one burst");
    for t in [a, b] {
        assert!(t > T0 + HOUR - HOUR / 10 && t <= T0 + HOUR, "{t:?}");
    }
    // The first to come due republishes; its store reaches the other, which then skips its
    // own turn.
    let (early, late) = if a < b { (&mut first, &mut second) } else { (&mut second, &mut first) };
    let due = a.min(b);
    early.store.handle_timeout(due);
    assert_eq!(early.store.poll_event(), Some(RecordEvent::Republish { record: r.clone() }));
    late.store.put(due, r.clone(), &ak).unwrap();
    late.store.handle_timeout(a.max(b));
    assert_eq!(late.store.poll_event(), None);
    assert!(late.store.poll_timeout().unwrap() > due + HOUR - HOUR / 10);
}

#[test]
fn cached_copies_are_short_lived_and_never_republished() {
    let mut f = fixture(DhtConfig::default());
    let ak = f.alice.verifying_key();
    let r = rec(&f.alice, b"c", b"", 1);
    assert_eq!(f.store.put_cached(T0, r.clone(), &ak), Ok(StoreOutcome::Stored));
    let cache_ttl = DhtConfig::default().cache_ttl;
    assert_eq!(f.store.poll_timeout(), Some(T0 + cache_ttl));
    f.store.handle_timeout(T0 + cache_ttl);
    assert!(f.store.is_empty());
    let events: Vec<RecordEvent> = std::iter::from_fn(|| f.store.poll_event()).collect();
    assert_eq!(events, vec![RecordEvent::Removed { key: r.key, publisher: r.publisher }]);
    // A cache copy of a record held for the network does not demote it.
    f.store.put(T0, r.clone(), &ak).unwrap();
    assert_eq!(f.store.put_cached(T0, r.clone(), &ak), Ok(StoreOutcome::Renewed));
    assert_eq!(f.store.poll_timeout(), Some(T0 + HOUR));
}

#[test]
fn records_carry_their_publisher_key_and_verify_without_a_lookup() {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    let alice = Identity::generate(&mut rng);
    let mallory = Identity::generate(&mut rng);
    let record = Record::sign(&alice, NodeId::hash(b"k"), b"v".to_vec(), 1, T0.as_secs() + 60);
    assert_eq!(record.embedded_key().unwrap(), alice.verifying_key());
    record.verify_embedded().unwrap();
    // Swapping in another key (to sign a forgery with it) no longer matches the publisher id.
    let mut swapped = record.clone();
    swapped.publisher_key = mallory.verifying_key().to_bytes();
    assert_eq!(swapped.verify_embedded(), Err(RecordError::KeyMismatch));
    // Re-signing under Mallory while claiming Alice's id fails the same way.
    let mut forged =
        Record::sign(&mallory, NodeId::hash(b"k"), b"evil".to_vec(), 2, T0.as_secs() + 60);
    forged.publisher = alice.node_id();
    assert_eq!(forged.verify_embedded(), Err(RecordError::KeyMismatch));
    // A tampered value fails the signature.
    let mut tampered = record;
    tampered.value = b"w".to_vec();
    assert_eq!(tampered.verify_embedded(), Err(RecordError::BadSignature));
}

#[test]
fn a_surplus_copy_waits_longer_and_a_peers_store_does_not_bring_it_forward() {
    let mut f = fixture(DhtConfig::default());
    let ak = f.alice.verifying_key();
    let r =
        Record::sign(&f.alice, KeyKind::Provider.key(b"k"), vec![], 1, T0.as_secs() + 2 * 86_400);
    let (key, publisher) = (r.key, r.publisher);
    f.store.put(T0, r.clone(), &ak).unwrap();
    f.store.handle_timeout(T0 + HOUR);
    assert!(matches!(f.store.poll_event(), Some(RecordEvent::Republish { .. })));
    // Our republish found k nodes closer and one took it: the next waits 2 intervals.
    assert!(f.store.surplus(T0 + HOUR, &key, &publisher));
    assert_eq!(f.store.poll_timeout(), Some(T0 + 3 * HOUR));
    // A peer that thinks us among the k closest stores it: the copy is renewed, the wait
    // stays.
    f.store.put(T0 + 2 * HOUR, r.clone(), &ak).unwrap();
    assert_eq!(f.store.poll_timeout(), Some(T0 + 3 * HOUR));
    f.store.handle_timeout(T0 + 2 * HOUR + HOUR / 2);
    assert_eq!(f.store.poll_event(), None, "no republish before the longer wait");
    // Surplus again and again: 4, then 8 intervals, never more.
    let mut now = T0 + 3 * HOUR;
    for wait in [4, 8, 8] {
        f.store.handle_timeout(now);
        assert!(matches!(f.store.poll_event(), Some(RecordEvent::Republish { .. })));
        f.store.put(now, r.clone(), &ak).unwrap(); // keeps it from expiring
        assert!(f.store.surplus(now, &key, &publisher));
        assert_eq!(f.store.poll_timeout(), Some(now + wait * HOUR), "wait {wait}");
        now = now + wait * HOUR;
    }
    // A republish that finds us close again: back to every interval.
    f.store.handle_timeout(now);
    assert!(matches!(f.store.poll_event(), Some(RecordEvent::Republish { .. })));
    f.store.responsible(&key, &publisher);
    f.store.put(now, r.clone(), &ak).unwrap();
    assert_eq!(f.store.poll_timeout(), Some(now + HOUR));
    // The copy kept answering gets throughout; unknown or cached copies are not surplus.
    assert_eq!(f.store.get(&key).count(), 1);
    assert!(!f.store.surplus(now, &NodeId::hash(b"other"), &publisher));
    let cached = Record::sign(&f.bob, KeyKind::Provider.key(b"c"), vec![], 1, now.as_secs() + 3600);
    f.store.put_cached(now, cached.clone(), &f.bob.verifying_key()).unwrap();
    assert!(!f.store.surplus(now, &cached.key, &cached.publisher));
}

#[test]
fn a_renew_renews_only_a_held_copy_of_that_version_as_a_store_would() {
    let mut f = fixture(DhtConfig::default());
    let ak = f.alice.verifying_key();
    let held = rec(&f.alice, b"held", b"v", 2);
    let cached = rec(&f.alice, b"cached", b"v", 1);
    f.store.put(T0, held.clone(), &ak).unwrap();
    f.store.put_cached(T0, cached.clone(), &ak).unwrap();
    let later = T0 + HOUR / 2;
    let of = |r: &Record, version| crate::wire::RecordRef {
        key: r.key,
        publisher: r.publisher,
        version,
    };
    assert!(!f.store.renew(later, &of(&held, 1)), "an older version");
    assert!(!f.store.renew(later, &of(&held, 3)), "a newer version");
    assert!(!f.store.renew(later, &of(&cached, 1)), "a cache copy is not held for the network");
    assert!(!f.store.renew(later, &of(&rec(&f.bob, b"held", b"v", 2), 2)), "another publisher");
    // Renewed: its republish moves to an hour after the renew, as a store's would.
    assert!(f.store.renew(later, &of(&held, 2)));
    f.store.handle_timeout(T0 + HOUR);
    assert!(std::iter::from_fn(|| f.store.poll_event())
        .all(|e| !matches!(e, RecordEvent::Republish { .. })));
    assert!(f.store.get(&held.key).any(|r| r == &held));
    // Nothing outlives its own signed expiry (2 h after T0), renewed or not.
    assert!(!f.store.renew(T0 + 2 * HOUR, &of(&held, 2)));
}
