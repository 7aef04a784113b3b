//! Lookup tests: small hand-made cases, then a synthetic 1000-node network in virtual time.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    net::SocketAddr,
};

use rand::{seq::SliceRandom, Rng};
use rand_core::SeedableRng;

use super::*;
use crate::dht::RoutingTable;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn contact(n: u32) -> Contact {
    let id = NodeId::hash(&n.to_be_bytes());
    let [_, a, b, c] = n.to_be_bytes();
    Contact { id, addr: SocketAddr::from(([10, a, b, c], 4000)).into() }
}

fn record(key: NodeId) -> Record {
    Record {
        key,
        value: b"value".to_vec(),
        publisher: NodeId::hash(b"publisher"),
        publisher_key: [0; 32],
        version: 1,
        expires_at: T0.as_secs() + 3600,
        signature: [0; 64],
    }
}

fn config() -> DhtConfig {
    DhtConfig::default()
}

fn drain(lookup: &mut Lookup) -> Vec<LookupRequest> {
    std::iter::from_fn(|| lookup.poll_request()).collect()
}

#[test]
fn a_client_that_answers_hands_on_its_contacts_but_is_not_among_the_closest() {
    let target = NodeId::hash(b"target");
    let (client, server) = (contact(1), contact(2));
    let mut lookup = Lookup::find_node(T0, NodeId::hash(b"me"), target, [client], &config());
    assert_eq!(drain(&mut lookup).iter().map(|r| r.to).collect::<Vec<_>>(), [client]);
    lookup.handle_client_nodes(T0, &client.id, vec![server]);
    assert_eq!(drain(&mut lookup).iter().map(|r| r.to).collect::<Vec<_>>(), [server]);
    lookup.handle_nodes(T0, &server.id, vec![]);
    let result = lookup.poll_event().expect("finished");
    assert_eq!(result.outcome, LookupOutcome::Closest(vec![server]));
}

#[test]
fn keeps_alpha_requests_in_flight_to_the_closest() {
    let target = NodeId::hash(b"target");
    let seeds: Vec<Contact> = (0..20).map(contact).collect();
    let mut sorted = seeds.clone();
    sorted.sort_by_key(|c| c.id.distance(&target));
    let mut lookup = Lookup::find_node(T0, NodeId::hash(b"me"), target, seeds, &config());
    let sent = drain(&mut lookup);
    assert_eq!(sent.iter().map(|r| r.to).collect::<Vec<_>>(), sorted[..3].to_vec());
    assert!(sent.iter().all(|r| r.kind == LookupKind::FindNode && r.target == target));
    // An answer naming someone closer than everyone known frees one slot: exactly one new
    // request, to the newcomer.
    let closer = (100..10_000)
        .map(contact)
        .find(|c| c.id.distance(&target) < sorted[0].id.distance(&target))
        .unwrap();
    lookup.handle_nodes(T0, &sorted[0].id, vec![closer]);
    let next = drain(&mut lookup);
    assert_eq!(next.iter().map(|r| r.to).collect::<Vec<_>>(), vec![closer]);
    assert_eq!(lookup.poll_timeout(), Some(T0 + config().request_timeout));
}

#[test]
fn stalled_lookup_widens_to_k_and_finishes_when_the_k_closest_answered() {
    let target = NodeId::hash(b"target");
    let seeds: Vec<Contact> = (0..30).map(contact).collect();
    let mut lookup = Lookup::find_node(T0, NodeId::hash(b"me"), target, seeds.clone(), &config());
    let first = drain(&mut lookup);
    assert_eq!(first.len(), 3);
    // An answer with nothing new: stalled, so the rest of the 20 closest go out at once.
    lookup.handle_nodes(T0, &first[0].to.id, vec![]);
    let second = drain(&mut lookup);
    assert_eq!(second.len(), 20 - 3);
    let mut asked: Vec<Contact> = first.iter().chain(&second).map(|r| r.to).collect();
    for r in first.iter().skip(1).chain(&second) {
        lookup.handle_nodes(T0, &r.to.id, vec![]);
    }
    let result = lookup.poll_event().expect("finished");
    asked.sort_by_key(|c| c.id.distance(&target));
    assert_eq!(result.outcome, LookupOutcome::Closest(asked.clone()));
    assert_eq!(result.requests, 20);
    assert_eq!(result.hops, 1);
    assert!(result.is_success());
    assert!(lookup.poll_event().is_none(), "the result comes once");
    assert!(lookup.poll_request().is_none());
}

#[test]
fn timeouts_make_room_and_late_answers_count() {
    let target = NodeId::hash(b"t");
    let seeds: Vec<Contact> = (0..5).map(contact).collect();
    let cfg = config().k(3).alpha(2);
    let mut lookup = Lookup::find_node(T0, NodeId::hash(b"me"), target, seeds, &cfg);
    let first = drain(&mut lookup);
    assert_eq!(first.len(), 2);
    let deadline = lookup.poll_timeout().unwrap();
    lookup.handle_timeout(deadline);
    // Both timed out: two more go out, the silent ones no longer occupy slots.
    let second = drain(&mut lookup);
    assert_eq!(second.len(), 2);
    assert!(lookup.is_waiting_for(&first[0].to.id), "a late answer is still awaited");
    // A late answer from a timed-out peer is used.
    lookup.handle_nodes(deadline, &first[0].to.id, vec![]);
    lookup.handle_failure(deadline, &second[0].to.id);
    let rest = drain(&mut lookup);
    for r in second.iter().skip(1).chain(&rest) {
        lookup.handle_nodes(deadline, &r.to.id, vec![]);
    }
    let result = lookup.poll_event().expect("finished");
    let LookupOutcome::Closest(closest) = &result.outcome else { panic!("{result:?}") };
    assert!(closest.contains(&first[0].to));
    assert!(result.failed.contains(&first[1].to.id));
    assert!(result.failed.contains(&second[0].to.id));
    assert_eq!(result.elapsed, deadline.saturating_since(T0));
}

#[test]
fn all_seeds_silent_fails_after_the_timeout() {
    let mut lookup = Lookup::find_node(
        T0,
        NodeId::hash(b"me"),
        NodeId::hash(b"t"),
        (0..3).map(contact),
        &config(),
    );
    assert_eq!(drain(&mut lookup).len(), 3);
    let deadline = lookup.poll_timeout().unwrap();
    lookup.handle_timeout(deadline);
    let result = lookup.poll_event().expect("finished");
    assert_eq!(result.outcome, LookupOutcome::Failed);
    assert_eq!(result.failed.len(), 3);
    assert_eq!(result.hops, 0);
    assert!(!result.is_success());
    assert_eq!(lookup.poll_timeout(), None);
}

#[test]
fn no_seeds_fails_at_once() {
    let mut lookup = Lookup::find_value(T0, NodeId::hash(b"me"), NodeId::hash(b"k"), [], &config());
    assert!(lookup.is_finished());
    assert_eq!(lookup.poll_event().unwrap().outcome, LookupOutcome::Failed);
}

#[test]
fn own_id_unknown_peers_and_extra_contacts_are_ignored() {
    let me = contact(999);
    let target = NodeId::hash(b"t");
    let cfg = config().k(2).alpha(1);
    let mut lookup = Lookup::find_node(T0, me.id, target, [contact(1)], &cfg);
    assert_eq!(drain(&mut lookup).len(), 1);
    // Someone we did not ask.
    lookup.handle_nodes(T0, &contact(2).id, vec![contact(3)]);
    assert!(drain(&mut lookup).is_empty());
    // Our own id is never asked; only k contacts of an answer are used.
    lookup.handle_nodes(T0, &contact(1).id, vec![me, contact(4), contact(5), contact(6)]);
    let next = drain(&mut lookup);
    assert_eq!(next.len(), 1);
    assert!(next[0].to != me && next[0].to != contact(6));
    assert_eq!(lookup.peers.len(), 3);
}

#[test]
fn find_value_stops_at_the_first_record_and_names_the_cache_node() {
    let key = NodeId::hash(b"key");
    let seeds: Vec<Contact> = (0..10).map(contact).collect();
    let cfg = config().alpha(2);
    let mut lookup = Lookup::find_value(T0, NodeId::hash(b"me"), key, seeds, &cfg);
    let first = drain(&mut lookup);
    assert!(first.iter().all(|r| r.kind == LookupKind::FindValue));
    let message = first[0].message(7);
    assert!(
        matches!(message, Message::KadFindValue(KadFindValue { rpc: 7, key: k, client: false }) if k == key)
    );
    // The closest peer lacks it; the second has it.
    lookup.handle_nodes(T0, &first[0].to.id, vec![]);
    let wrong_key = record(NodeId::hash(b"other"));
    lookup.handle_record(T0, &first[1].to.id, wrong_key);
    assert!(!lookup.is_finished(), "a record for another key is a failure, not a result");
    let next = drain(&mut lookup);
    lookup.handle_record(T0, &next[0].to.id, record(key));
    let result = lookup.poll_event().expect("finished early");
    let LookupOutcome::Found { record: r, from, cache_at } = result.outcome else { panic!() };
    assert_eq!(r.key, key);
    assert_eq!(from, next[0].to);
    assert_eq!(cache_at, Some(first[0].to));
    assert!(result.failed.contains(&first[1].to.id));
    // It stopped without waiting for the requests still out.
    assert!(result.requests > result.queried.len() + result.failed.len());
    assert!(lookup.poll_request().is_none() && lookup.poll_timeout().is_none());
}

#[test]
fn find_all_goes_on_past_the_first_holder_until_the_k_closest_answered() {
    let key = NodeId::hash(b"key");
    let seeds: Vec<Contact> = (0..10).map(contact).collect();
    let cfg = config().k(4).alpha(2);
    let mut lookup = Lookup::find_all(T0, NodeId::hash(b"me"), key, seeds, &cfg);
    let mut holders = Vec::new();
    let mut answered = 0;
    while !lookup.is_finished() {
        let requests = drain(&mut lookup);
        assert!(!requests.is_empty(), "a running lookup always has requests out");
        for r in requests {
            assert_eq!(r.kind, LookupKind::FindValue);
            answered += 1;
            // Every other node asked holds a record.
            if answered % 2 == 1 {
                holders.push(r.to);
                lookup.handle_record(T0, &r.to.id, record(key));
            } else {
                lookup.handle_nodes(T0, &r.to.id, vec![]);
            }
        }
    }
    let result = lookup.poll_event().expect("finished");
    assert!(holders.len() >= 2, "stopped at the first holder");
    assert_eq!(result.queried.len(), 4, "the k = 4 closest answered");
    let LookupOutcome::Found { from, cache_at, .. } = result.outcome else { panic!() };
    assert_eq!(from, holders[0]);
    assert_eq!(cache_at, None);
}

#[test]
fn request_messages_carry_the_target() {
    let r =
        LookupRequest { to: contact(1), target: NodeId::hash(b"x"), kind: LookupKind::FindNode };
    assert_eq!(
        r.message(3),
        Message::KadFindNode(KadFindNode { rpc: 3, target: NodeId::hash(b"x"), client: false })
    );
}

/// A synthetic network: every node knows its k closest and, like a routing table, up to a few
/// random nodes of every bucket. Nodes answer from that knowledge after a per-node latency;
/// dead nodes never answer.
struct Network {
    contacts: Vec<Contact>,
    index: HashMap<NodeId, usize>,
    knows: Vec<Vec<Contact>>,
    latency: Vec<Duration>,
    dead: HashSet<usize>,
    holders: HashSet<usize>,
}

impl Network {
    fn new(n: usize, k: usize, per_bucket: usize, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let contacts: Vec<Contact> =
            (0..n as u32).map(|i| contact(i + seed as u32 * 100_000)).collect();
        let index = contacts.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let knows = contacts
            .iter()
            .map(|me| {
                let mut others: Vec<&Contact> = contacts.iter().filter(|c| c.id != me.id).collect();
                others.sort_by_key(|c| c.id.distance(&me.id));
                let mut known: Vec<Contact> = others[..k].iter().map(|c| **c).collect();
                let mut by_bucket: HashMap<usize, Vec<Contact>> = HashMap::new();
                for c in &others[k..] {
                    by_bucket.entry(me.id.bucket_index(&c.id).unwrap()).or_default().push(**c);
                }
                let mut buckets: Vec<_> = by_bucket.into_iter().collect();
                buckets.sort_by_key(|(b, _)| *b);
                for (_, mut cs) in buckets {
                    cs.shuffle(&mut rng);
                    known.extend(cs.into_iter().take(per_bucket));
                }
                known
            })
            .collect();
        let latency = (0..n).map(|_| Duration::from_millis(rng.gen_range(10..200))).collect();
        Network { contacts, index, knows, latency, dead: HashSet::new(), holders: HashSet::new() }
    }

    /// A network whose nodes know exactly what real [`RoutingTable`]s hold after each node
    /// verified every other one, in random order (full buckets keep their old contacts: the
    /// pings are never answered, so nothing is evicted).
    fn from_routing_tables(n: usize, config: &DhtConfig, seed: u64) -> Self {
        let mut net = Network::new(n, 0, 0, seed);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        for (i, me) in net.contacts.iter().enumerate() {
            let mut table = RoutingTable::new(me.id, config, T0, [i as u8; 32]);
            let mut others = net.contacts.clone();
            others.shuffle(&mut rng);
            for c in others {
                table.handle_verified(T0, c);
            }
            net.knows[i] = table.iter().map(|e| e.contact).collect();
        }
        net
    }

    fn closest_known(&self, node: usize, target: &NodeId, k: usize) -> Vec<Contact> {
        let mut known = self.knows[node].clone();
        known.sort_by_key(|c| c.id.distance(target));
        known.truncate(k);
        known
    }

    /// The true k closest live nodes to `target`, other than `local`.
    fn truth(&self, local: usize, target: &NodeId, k: usize) -> Vec<Contact> {
        let mut live: Vec<Contact> = (0..self.contacts.len())
            .filter(|i| *i != local && !self.dead.contains(i))
            .map(|i| self.contacts[i])
            .collect();
        live.sort_by_key(|c| c.id.distance(target));
        live.truncate(k);
        live
    }

    /// Runs `lookup` to its end in virtual time.
    fn run(&self, mut lookup: Lookup, k: usize) -> LookupResult {
        let mut now = T0;
        let mut inbox = BinaryHeap::new();
        let mut seq = 0u64;
        loop {
            while let Some(req) = lookup.poll_request() {
                let node = self.index[&req.to.id];
                if !self.dead.contains(&node) {
                    seq += 1;
                    inbox.push(Reverse((now + 2 * self.latency[node], seq, node)));
                }
            }
            if let Some(result) = lookup.poll_event() {
                return result;
            }
            let timer = lookup.poll_timeout();
            let delivery = inbox.peek().map(|Reverse((at, _, _))| *at);
            match (delivery, timer) {
                (Some(at), t) if t.is_none_or(|t| at <= t) => {
                    let Reverse((at, _, node)) = inbox.pop().unwrap();
                    now = at;
                    let from = self.contacts[node].id;
                    if lookup.kind() == LookupKind::FindValue && self.holders.contains(&node) {
                        lookup.handle_record(now, &from, record(lookup.target()));
                    } else {
                        let closer = self.closest_known(node, &lookup.target(), k);
                        lookup.handle_nodes(now, &from, closer);
                    }
                }
                (_, Some(t)) => {
                    now = t;
                    lookup.handle_timeout(now);
                }
                _ => panic!("lookup stuck: no request in flight, no result"),
            }
        }
    }
}

fn random_id(rng: &mut impl Rng) -> NodeId {
    NodeId::from_bytes(rng.gen())
}

#[test]
fn synthetic_network_lookups_find_the_true_k_closest() {
    let k = 20;
    let net = Network::new(1000, k, 3, 1);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let mut max_hops = 0;
    for round in 0..20 {
        let local = rng.gen_range(0..1000);
        let target = random_id(&mut rng);
        let seeds = net.closest_known(local, &target, k);
        let lookup = Lookup::find_node(T0, net.contacts[local].id, target, seeds, &config());
        let result = net.run(lookup, k);
        assert_eq!(
            result.outcome,
            LookupOutcome::Closest(net.truth(local, &target, k)),
            "round {round}"
        );
        assert!(result.failed.is_empty());
        assert!(result.hops >= 1);
        max_hops = max_hops.max(result.hops);
        // Iterative lookups in a 1000-node network touch a small part of it.
        assert!(result.requests < 120, "round {round}: {} requests", result.requests);
    }
    assert!(max_hops <= 6, "{max_hops} hops");
}

#[test]
fn lookups_over_real_routing_tables_find_the_true_k_closest() {
    let k = 20;
    let net = Network::from_routing_tables(400, &config(), 5);
    // The tables split around their own ids: far more than k contacts each, but not everyone.
    let sizes: Vec<usize> = net.knows.iter().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| n > 2 * k && n < 399), "{sizes:?}");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(15);
    for round in 0..20 {
        let local = rng.gen_range(0..400);
        let target = random_id(&mut rng);
        let seeds = net.closest_known(local, &target, k);
        let lookup = Lookup::find_node(T0, net.contacts[local].id, target, seeds, &config());
        let result = net.run(lookup, k);
        let truth = net.truth(local, &target, k);
        assert_eq!(result.outcome, LookupOutcome::Closest(truth), "round {round}");
    }
}

#[test]
fn synthetic_network_lookups_converge_around_dead_nodes() {
    let k = 20;
    // Every node knows up to k contacts per bucket, like a real routing table, and a fifth of
    // the network never answers (but is still in everyone's tables, as after a mass failure).
    let mut net = Network::new(1000, k, k, 2);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(12);
    let local = 0;
    while net.dead.len() < 200 {
        let n = rng.gen_range(1..1000);
        net.dead.insert(n);
    }
    let (rounds, mut found, mut failed) = (20, 0, 0);
    for round in 0..rounds {
        let target = random_id(&mut rng);
        let seeds = net.closest_known(local, &target, k);
        let lookup = Lookup::find_node(T0, net.contacts[local].id, target, seeds, &config());
        let result = net.run(lookup, k);
        let truth = net.truth(local, &target, k);
        let LookupOutcome::Closest(closest) = &result.outcome else { panic!("{result:?}") };
        assert!(closest.iter().all(|c| !net.dead.contains(&net.index[&c.id])));
        // The nearest half is exact. At the far end a live node can be missed: answers hold k
        // contacts, dead ones included, so when dead nodes sit among the k closest the live
        // ones just beyond are named by nobody. Kademlia's guarantee is statistical once
        // nodes fail (and tables that evict the dead, as ours do, soften it).
        assert_eq!(closest[..k / 2], truth[..k / 2], "round {round}");
        found += closest.iter().filter(|c| truth.contains(c)).count();
        assert!(result.failed.iter().all(|id| net.dead.contains(&net.index[id])));
        failed += result.failed.len();
        // Timeouts cost time, but α parallel requests keep them from adding up one by one.
        assert!(result.elapsed < Duration::from_secs(20), "{:?}", result.elapsed);
    }
    let recall = found as f64 / (rounds * k) as f64;
    eprintln!("recall of the true {k} closest live nodes, 20 % dead: {recall:.3}");
    // Measured 0.960 with these seeds (0.943 with 25 % dead).
    assert!(recall >= 0.93, "recall {recall}");
    assert!(failed > 0, "the lookups met dead nodes");
}

#[test]
fn synthetic_network_find_value_stops_early_and_names_the_closest_non_holder() {
    let k = 20;
    let mut net = Network::new(1000, k, 3, 3);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(13);
    for round in 0..10 {
        let key = random_id(&mut rng);
        let local = rng.gen_range(0..1000);
        // The record sits on the k closest nodes except the closest three (say they joined
        // after it was stored).
        let truth = net.truth(local, &key, k);
        net.holders = truth[3..].iter().map(|c| net.index[&c.id]).collect();
        let seeds = net.closest_known(local, &key, k);
        let find_node = net
            .run(Lookup::find_node(T0, net.contacts[local].id, key, seeds.clone(), &config()), k);
        let result =
            net.run(Lookup::find_value(T0, net.contacts[local].id, key, seeds, &config()), k);
        let LookupOutcome::Found { record: r, from, cache_at } = &result.outcome else {
            panic!("round {round}: {result:?}")
        };
        assert_eq!(r.key, key);
        assert!(net.holders.contains(&net.index[&from.id]));
        assert!(result.requests <= find_node.requests, "round {round}");
        // The cache target answered without the value, and no such answerer is closer.
        let cache_at = cache_at.expect("someone answered without the value");
        assert!(!net.holders.contains(&net.index[&cache_at.id]));
        let mut non_holders = result.queried.iter().filter(|c| c.id != from.id);
        assert!(non_holders.clone().any(|c| *c == cache_at));
        assert!(non_holders.all(|c| c.id.distance(&key) >= cache_at.id.distance(&key)));
        assert!(result.hops >= 1);
    }
}

#[test]
fn synthetic_network_find_value_without_record_converges_on_the_k_closest() {
    let k = 20;
    let net = Network::new(1000, k, 3, 4);
    let key = NodeId::hash(b"nobody has this");
    let seeds = net.closest_known(5, &key, k);
    let result = net.run(Lookup::find_value(T0, net.contacts[5].id, key, seeds, &config()), k);
    assert_eq!(result.outcome, LookupOutcome::NotFound(net.truth(5, &key, k)));
    assert!(!result.is_success());
}
