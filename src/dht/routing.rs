//! [`RoutingTable`]: k-buckets with the least-recently-seen rule, bucket splitting and a
//! per-subnet limit.
//!
//! # What goes in
//!
//! Only **verified, admitted** peers: call [`RoutingTable::handle_verified`] for a contact the
//! link layer has authenticated, i.e. a peer with which an [`Endpoint`](crate::Endpoint)
//! session exists or from which a message just arrived on one (its admission certificate was
//! checked against the network key when the session opened). Contacts merely *named* in a
//! `KadNodes` or `KadValue` answer are hearsay: a lookup may try them, but they enter the table
//! only once a session to them has been established. This keeps forged or non-admitted ids out
//! of everyone's routing state.
//!
//! # Buckets
//!
//! The table is the tree of the Kademlia paper (§2.4) in its usual list form: bucket `j` holds
//! the contacts whose id shares exactly `j` leading bits with ours, except the last bucket,
//! which holds everything sharing at least `len − 1` bits, our own id's neighbourhood. Only that
//! last bucket splits, when it is full and a contact for it arrives; the far buckets never do.
//! A fully split table is the familiar "one bucket per `bucket_index`" table, but the split
//! form keeps up to k contacts of the near ranges in one bucket while they are sparse instead
//! of scattering them over many nearly empty ones. Lookups behave the same either way: every
//! range holds up to k of the contacts we know there, which is what `closest` needs. We do not
//! implement the paper's relaxed splitting of far buckets (§2.4), which matters only for
//! highly unbalanced id distributions; ids here are SHA-1 of keys, hence uniform.
//!
//! # Least recently seen
//!
//! Each bucket is ordered from least to most recently seen. A verified contact already present
//! moves to the tail. A new contact for a full bucket does **not** evict anyone (Kademlia §2.2:
//! long-lived nodes are the likeliest to stay): the table emits
//! [`RoutingEvent::Ping`] for the bucket's head and parks the newcomer. If the head answers
//! (the caller reports it through `handle_verified`), it moves to the tail and the newcomer is
//! dropped; if it fails ([`handle_failure`](RoutingTable::handle_failure)) or does not answer
//! within the request timeout ([`handle_timeout`](RoutingTable::handle_timeout)), it is
//! evicted and the newcomer takes its place. One ping per bucket is outstanding at a time;
//! newcomers arriving meanwhile are dropped.
//!
//! # Per-subnet limit
//!
//! A bucket holds at most `max_per_subnet` contacts whose addresses share a subnet (IPv4 /24,
//! IPv6 /64; IPv4-mapped IPv6 counts as IPv4), so one operator with a block of addresses cannot
//! fill it (eclipse attacks). Private (RFC 1918), unique-local, link-local, loopback and
//! unspecified addresses are **exempt**: whole device fleets legitimately share one LAN, and
//! such addresses are no scarce resource an attacker would have to buy.
//!
//! # Refresh
//!
//! A bucket into whose range no lookup went for the refresh interval yields
//! [`RoutingEvent::Refresh`] with a random id in its range (from the table's seeded RNG); the
//! caller runs a find_node lookup for it and reports every finished lookup through
//! [`handle_lookup`](RoutingTable::handle_lookup).

use std::{
    collections::VecDeque,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::DhtConfig;
use crate::{wire::Contact, NodeId, Timestamp, NODE_ID_LEN};

/// Number of bits in an id, hence the most buckets a table can have.
const ID_BITS: usize = NODE_ID_LEN * 8;

/// Consecutive failed requests after which a contact that is not a bucket head under a ping is
/// dropped. One lost datagram must not evict a good contact: the paper (§4.1) likewise keeps
/// an unresponsive contact until several requests in a row went unanswered.
pub const MAX_FAILURES: u32 = 3;

/// One contact in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoutingEntry {
    /// The contact, with the address it was last verified at.
    pub contact: Contact,
    /// When it was last verified (a session, a message, an answer).
    pub last_seen: Timestamp,
    /// Requests to it that failed since it was last seen.
    pub failures: u32,
}

/// What [`RoutingTable::handle_verified`] did with a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InsertOutcome {
    /// A new contact, now at the tail of its bucket.
    Inserted,
    /// A known contact, moved to the tail (its address updated).
    Updated,
    /// The bucket is full: its head must answer a ping, else the contact replaces it. A
    /// [`RoutingEvent::Ping`] for `head` was queued.
    Pending {
        /// The bucket's least-recently-seen contact.
        head: Contact,
    },
    /// The bucket is full and already waits for a ping answer: the contact was dropped.
    BucketFull,
    /// The bucket already holds the maximum number of contacts from the contact's subnet.
    SubnetFull,
    /// The contact is this node.
    OwnId,
}

/// What the table asks its owner to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoutingEvent {
    /// Send a `KadPing` to `contact`, the head of a full bucket. Report the answer with
    /// [`handle_verified`](RoutingTable::handle_verified), a failure with
    /// [`handle_failure`](RoutingTable::handle_failure); silence is caught by the table's own
    /// timer after the request timeout.
    Ping {
        /// The contact to ping.
        contact: Contact,
    },
    /// Run a find_node lookup for `target` to refresh a bucket nobody looked into lately.
    Refresh {
        /// A random id in the stale bucket's range.
        target: NodeId,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    candidate: Contact,
    candidate_seen: Timestamp,
    head: NodeId,
    deadline: Timestamp,
}

#[derive(Clone, Debug)]
struct Bucket {
    /// Least recently seen first.
    entries: Vec<RoutingEntry>,
    pending: Option<Pending>,
    /// Last lookup into this range (or the bucket's creation).
    refreshed: Timestamp,
}

impl Bucket {
    fn new(now: Timestamp) -> Self {
        Bucket { entries: Vec::new(), pending: None, refreshed: now }
    }

    fn position(&self, id: &NodeId) -> Option<usize> {
        self.entries.iter().position(|e| e.contact.id == *id)
    }

    /// Whether `contact` may join without breaking the subnet limit (not counting `except`).
    fn subnet_allows(&self, contact: &Contact, except: Option<&NodeId>, max: usize) -> bool {
        let Some(net) = Subnet::of(&contact.addr.0) else { return true };
        let same = self
            .entries
            .iter()
            .filter(|e| Some(&e.contact.id) != except)
            .filter(|e| Subnet::of(&e.contact.addr.0) == Some(net))
            .count();
        same < max
    }
}

/// A subnet for the per-bucket limit: the /24 of an IPv4 address, the /64 of an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Subnet {
    V4([u8; 3]),
    V6([u8; 8]),
}

impl Subnet {
    /// The subnet of `addr`, or `None` for addresses exempt from the limit (private,
    /// unique-local, link-local, loopback, unspecified).
    pub(crate) fn of(addr: &SocketAddr) -> Option<Subnet> {
        let ip = match addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let exempt = v4.is_private()
                    || v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified();
                let [a, b, c, _] = v4.octets();
                (!exempt).then_some(Subnet::V4([a, b, c]))
            }
            IpAddr::V6(v6) => {
                let exempt = v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local();
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                (!exempt).then_some(Subnet::V6(prefix))
            }
        }
    }
}

/// The Kademlia routing table of one node. See the [module docs](self) for the rules.
///
/// ```
/// use fleetmesh::dht::{DhtConfig, InsertOutcome, RoutingTable};
/// use fleetmesh::{wire::Contact, NodeId, Timestamp};
///
/// let now = Timestamp::from_secs(1_700_000_000);
/// let mut table = RoutingTable::new(NodeId::hash(b"me"), &DhtConfig::default(), now, [7; 32]);
/// let addr: std::net::SocketAddr = "192.0.2.1:4000".parse().unwrap();
/// let peer = Contact { id: NodeId::hash(b"peer"), addr: addr.into() };
/// // The link layer verified `peer`'s certificate: it may enter the table.
/// assert_eq!(table.handle_verified(now, peer), InsertOutcome::Inserted);
/// assert_eq!(table.closest(&peer.id, 20), vec![peer]);
/// ```
#[derive(Clone, Debug)]
pub struct RoutingTable {
    local: NodeId,
    k: usize,
    max_per_subnet: usize,
    request_timeout: Duration,
    refresh_interval: Duration,
    /// Never empty; see the module docs for which ids each bucket covers.
    buckets: Vec<Bucket>,
    events: VecDeque<RoutingEvent>,
    rng: ChaCha20Rng,
}

impl RoutingTable {
    /// An empty table for the node `local`. `seed` drives the refresh targets.
    pub fn new(local: NodeId, config: &DhtConfig, now: Timestamp, seed: [u8; 32]) -> Self {
        RoutingTable {
            local,
            k: config.k,
            max_per_subnet: config.max_per_subnet,
            request_timeout: config.request_timeout,
            refresh_interval: config.refresh_interval,
            buckets: vec![Bucket::new(now)],
            events: VecDeque::new(),
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// This node's id.
    pub fn local_id(&self) -> NodeId {
        self.local
    }

    /// Number of contacts held.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.entries.len()).sum()
    }

    /// Whether the table holds no contact.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.entries.is_empty())
    }

    /// Number of buckets (grows as the bucket around our own id splits).
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The bucket `id` belongs in, or `None` for our own id.
    pub fn bucket_of(&self, id: &NodeId) -> Option<usize> {
        let shared = self.local.distance(id).leading_zeros() as usize;
        (shared < ID_BITS).then(|| shared.min(self.buckets.len() - 1))
    }

    /// The entry for `id`, if held.
    pub fn get(&self, id: &NodeId) -> Option<&RoutingEntry> {
        let bucket = &self.buckets[self.bucket_of(id)?];
        bucket.entries.iter().find(|e| e.contact.id == *id)
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.get(id).is_some()
    }

    /// Every entry, bucket by bucket (farthest bucket first), least recently seen first within
    /// a bucket. Use it to persist the table.
    pub fn iter(&self) -> impl Iterator<Item = &RoutingEntry> + '_ {
        self.buckets.iter().flat_map(|b| b.entries.iter())
    }

    /// Up to `n` contacts closest to `target` by XOR distance, closest first.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<Contact> {
        let mut all: Vec<Contact> = self.iter().map(|e| e.contact).collect();
        if n < all.len() {
            all.select_nth_unstable_by_key(n, |c| c.id.distance(target));
            all.truncate(n);
        }
        all.sort_unstable_by_key(|c| c.id.distance(target));
        all
    }

    /// A contact the link layer verified (see the [module docs](self)) was seen at `now`:
    /// insert it, or move it to the tail of its bucket.
    pub fn handle_verified(&mut self, now: Timestamp, contact: Contact) -> InsertOutcome {
        let Some(mut index) = self.bucket_of(&contact.id) else { return InsertOutcome::OwnId };
        let (k, max_per_subnet) = (self.k, self.max_per_subnet);
        loop {
            let last = self.buckets.len() - 1;
            let bucket = &mut self.buckets[index];
            if let Some(pos) = bucket.position(&contact.id) {
                if !bucket.subnet_allows(&contact, Some(&contact.id), max_per_subnet) {
                    return InsertOutcome::SubnetFull;
                }
                let mut entry = bucket.entries.remove(pos);
                entry.contact = contact;
                entry.last_seen = now;
                entry.failures = 0;
                bucket.entries.push(entry);
                // The head answered: it stays, the parked newcomer goes.
                if bucket.pending.as_ref().is_some_and(|p| p.head == contact.id) {
                    bucket.pending = None;
                }
                return InsertOutcome::Updated;
            }
            if !bucket.subnet_allows(&contact, None, max_per_subnet) {
                return InsertOutcome::SubnetFull;
            }
            if bucket.entries.len() < k {
                bucket.entries.push(RoutingEntry { contact, last_seen: now, failures: 0 });
                return InsertOutcome::Inserted;
            }
            if index == last && last + 1 < ID_BITS {
                self.split_last(now);
                index = self.bucket_of(&contact.id).unwrap_or(index);
                continue;
            }
            if bucket.pending.is_some() {
                return InsertOutcome::BucketFull;
            }
            let head = bucket.entries[0].contact;
            bucket.pending = Some(Pending {
                candidate: contact,
                candidate_seen: now,
                head: head.id,
                deadline: now + self.request_timeout,
            });
            self.events.push_back(RoutingEvent::Ping { contact: head });
            return InsertOutcome::Pending { head };
        }
    }

    /// A request to `id` failed (no answer, session refused, link lost). The head of a bucket
    /// under a ping is replaced at once by the contact waiting for its place; any other contact
    /// is dropped after [`MAX_FAILURES`] failures in a row.
    pub fn handle_failure(&mut self, _now: Timestamp, id: &NodeId) {
        let Some(index) = self.bucket_of(id) else { return };
        let bucket = &mut self.buckets[index];
        if bucket.pending.as_ref().is_some_and(|p| p.head == *id) {
            self.evict_head(index);
            return;
        }
        if let Some(pos) = bucket.position(id) {
            bucket.entries[pos].failures += 1;
            if bucket.entries[pos].failures >= MAX_FAILURES {
                bucket.entries.remove(pos);
            }
        }
    }

    /// A lookup for `target` finished at `now`: the bucket covering it needs no refresh for
    /// another interval.
    pub fn handle_lookup(&mut self, now: Timestamp, target: &NodeId) {
        if let Some(index) = self.bucket_of(target) {
            self.buckets[index].refreshed = now;
        }
    }

    /// Removes `id` (e.g. its certificate was revoked); returns its contact if it was held. If
    /// it was a bucket head under a ping, the contact waiting for its place takes it.
    pub fn remove(&mut self, id: &NodeId) -> Option<Contact> {
        let index = self.bucket_of(id)?;
        let bucket = &mut self.buckets[index];
        let contact = bucket.entries[bucket.position(id)?].contact;
        if bucket.pending.as_ref().is_some_and(|p| p.head == *id) {
            // The pinged head leaves anyway: the contact waiting for its place takes it.
            self.evict_head(index);
        } else {
            bucket.entries.retain(|e| e.contact.id != *id);
        }
        Some(contact)
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do: a ping
    /// deadline or a bucket refresh.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.buckets
            .iter()
            .flat_map(|b| {
                let ping = b.pending.as_ref().map(|p| p.deadline);
                ping.into_iter().chain([b.refreshed + self.refresh_interval])
            })
            .min()
    }

    /// Evicts heads that did not answer their ping in time, and queues refresh lookups for
    /// stale buckets.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for index in 0..self.buckets.len() {
            if self.buckets[index].pending.as_ref().is_some_and(|p| p.deadline <= now) {
                self.evict_head(index);
            }
            if self.buckets[index].refreshed + self.refresh_interval <= now {
                self.buckets[index].refreshed = now;
                let target = self.random_id_in(index);
                self.events.push_back(RoutingEvent::Refresh { target });
            }
        }
    }

    /// The next thing the table asks for.
    pub fn poll_event(&mut self) -> Option<RoutingEvent> {
        self.events.pop_front()
    }

    /// Replaces the pinged head of bucket `index` by the contact waiting for its place.
    fn evict_head(&mut self, index: usize) {
        let max = self.max_per_subnet;
        let bucket = &mut self.buckets[index];
        let Some(pending) = bucket.pending.take() else { return };
        if let Some(pos) = bucket.position(&pending.head) {
            bucket.entries.remove(pos);
        }
        let fits = bucket.entries.len() < self.k
            && bucket.position(&pending.candidate.id).is_none()
            && bucket.subnet_allows(&pending.candidate, None, max);
        if fits {
            bucket.entries.push(RoutingEntry {
                contact: pending.candidate,
                last_seen: pending.candidate_seen,
                failures: 0,
            });
        }
    }

    /// Splits the last bucket (our own id's range) in two: the contacts sharing exactly
    /// `len − 1` bits with us stay, the closer ones move to a new last bucket.
    fn split_last(&mut self, now: Timestamp) {
        let depth = self.buckets.len() - 1;
        let local = self.local;
        let last = self.buckets.last_mut().expect("the table always has a bucket");
        let (stay, go): (Vec<RoutingEntry>, Vec<RoutingEntry>) = last
            .entries
            .drain(..)
            .partition(|e| local.distance(&e.contact.id).leading_zeros() as usize == depth);
        last.entries = stay;
        let mut closer = Bucket::new(now);
        closer.entries = go;
        closer.refreshed = last.refreshed;
        // A parked newcomer follows its pinged head if both land on the same side; otherwise
        // the ping is moot (the split made room), and the newcomer is retried as a fresh insert.
        let pending = last.pending.take();
        self.buckets.push(closer);
        if let Some(p) = pending {
            let head_at = self.bucket_of(&p.head);
            if head_at == self.bucket_of(&p.candidate.id) {
                if let Some(i) = head_at {
                    self.buckets[i].pending = Some(p);
                }
            } else {
                self.handle_verified(p.candidate_seen, p.candidate);
            }
        }
    }

    /// A random id in bucket `index`'s range.
    fn random_id_in(&mut self, index: usize) -> NodeId {
        let mut bytes = [0u8; NODE_ID_LEN];
        self.rng.fill_bytes(&mut bytes);
        let local = self.local.as_bytes();
        let is_last = index == self.buckets.len() - 1;
        for bit in 0..ID_BITS {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let own = local[byte] & mask;
            let value = if bit < index {
                own
            } else if bit == index && !is_last {
                own ^ mask
            } else {
                continue;
            };
            bytes[byte] = (bytes[byte] & !mask) | value;
        }
        if bytes == *local {
            bytes[NODE_ID_LEN - 1] ^= 1;
        }
        NodeId::from_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
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

    fn table(k: usize) -> RoutingTable {
        let config = DhtConfig::default().k(k);
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
        assert_eq!(
            t.handle_verified(T0, contact(ids[0], "203.0.113.1:1")),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.handle_verified(T0, contact(ids[1], "203.0.113.2:1")),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.handle_verified(T0, contact(ids[2], "203.0.113.3:1")),
            InsertOutcome::SubnetFull
        );
        // The same /24 as IPv4-mapped IPv6 counts too.
        assert_eq!(
            t.handle_verified(T0, contact(ids[2], "[::ffff:203.0.113.3]:1")),
            InsertOutcome::SubnetFull
        );
        // A /64 for IPv6.
        assert_eq!(
            t.handle_verified(T0, contact(ids[2], "[2001:db8::1]:1")),
            InsertOutcome::Inserted
        );
        assert_eq!(
            t.handle_verified(T0, contact(ids[3], "[2001:db8::2]:1")),
            InsertOutcome::Inserted
        );
        // A known contact moving into a full subnet is refused and keeps its old address.
        assert_eq!(
            t.handle_verified(T0, contact(ids[3], "203.0.113.9:1")),
            InsertOutcome::SubnetFull
        );
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
            prop_assert!(got
                .windows(2)
                .all(|w| w[0].id.distance(target) < w[1].id.distance(target)));
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
}
