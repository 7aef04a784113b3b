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
//! [`handle_lookup`](RoutingTable::handle_lookup), and every contact that answered one of its
//! lookups, or sent it a request, through [`handle_touched`](RoutingTable::handle_touched): a
//! lookup that asked a contact in a bucket's range went into that range (paper §2.3: a bucket
//! is refreshed only if no node lookup went into it for an hour), and a request is the
//! sender's lookup or store going through us, traffic that flows anyway and keeps the
//! sender's range in use.
//!
//! A bucket whose contacts were all heard from within the refresh interval is not refreshed
//! either: the refresh exists to replace dead contacts and find missing ones (paper §2.3,
//! "pathological cases in which there are no lookups for a particular ID range"), and a bucket
//! whose every contact spoke to us lately (requests, answers) is in use. It is checked again
//! when its least recently seen contact's hour is up.

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
    /// The bucket is full and either its contacts were all heard from within the liveness
    /// window or it already waits for a ping answer: the contact was dropped.
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

    /// Whether the bucket holds contacts and every one was heard from after `since` with no
    /// request failing since.
    fn heard_since(&self, since: Timestamp) -> bool {
        !self.entries.is_empty()
            && self.entries.iter().all(|e| e.last_seen > since && e.failures == 0)
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
/// use fleetmesh_proto::dht::{DhtConfig, InsertOutcome, RoutingTable};
/// use fleetmesh_proto::{wire::Contact, NodeId, Timestamp};
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
    liveness_window: Duration,
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
            liveness_window: config.liveness_window,
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
        self.closest_where(target, n, |_| true)
    }

    /// Like [`closest`](Self::closest), among the contacts `keep` accepts.
    pub fn closest_where(
        &self,
        target: &NodeId,
        n: usize,
        keep: impl Fn(&Contact) -> bool,
    ) -> Vec<Contact> {
        let mut all: Vec<Contact> = self.iter().map(|e| e.contact).filter(|c| keep(c)).collect();
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
            if bucket.heard_since(now - self.liveness_window) {
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

    /// A lookup of ours got an answer from `id`, or `id` sent us a request: traffic went into
    /// the range of `id`'s bucket, which needs no refresh for another interval.
    pub fn handle_touched(&mut self, now: Timestamp, id: &NodeId) {
        self.handle_lookup(now, id);
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
    /// stale buckets (those with a contact not heard from within the interval; see the
    /// [module docs](self)).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let interval = self.refresh_interval;
        for index in 0..self.buckets.len() {
            if self.buckets[index].pending.as_ref().is_some_and(|p| p.deadline <= now) {
                self.evict_head(index);
            }
            let bucket = &mut self.buckets[index];
            if bucket.refreshed + interval <= now {
                if bucket.heard_since(now - interval) {
                    // Every contact spoke lately: look again when the oldest's hour is up.
                    let oldest = bucket.entries.iter().map(|e| e.last_seen).min();
                    bucket.refreshed = oldest.unwrap_or(now).max(bucket.refreshed);
                    continue;
                }
                bucket.refreshed = now;
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
mod tests;
