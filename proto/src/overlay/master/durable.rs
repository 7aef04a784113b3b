//! What the master keeps across restarts: the certificates it issued, its revocation list and
//! a registry of every node it has seen. Presence stays soft state, rebuilt from the LSNs.
//!
//! Sans-IO like the DHT's persistence: the master emits [`StoreOp`]s (drained with
//! [`Master::poll_store`]) that its driver writes, in order, to a key-value store (the
//! `fleetmesh` crate's `Store` trait: redb on disk, or any database behind the trait), and is
//! given what was saved at startup ([`Master::restore`], from [`MasterSaved::from_tables`]).
//! The driver writes before it sends, so a certificate is on disk before it leaves the master.
//!
//! Tables (keys are node ids):
//! * [`CERTS_TABLE`]: the latest certificate issued to each node (CBOR);
//! * [`NODES_TABLE`]: a [`KnownNode`] per node seen present (CBOR);
//! * [`REVOCATIONS_TABLE`]: the current revocation list under the key `current` (CBOR);
//! * [`LSNS_TABLE`]: the address of each LSN's session (CBOR [`WireAddr`]), so that a
//!   restarted master can tell every LSN at once to register again, instead of waiting for
//!   each to notice (its periodic master check, up to about three minutes).

use std::collections::{BTreeMap, VecDeque};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{Master, PresenceEvent};
use crate::{
    codec::cbor,
    dht::StoreOp,
    trust::{Certificate, RevocationList},
    wire::{ErrorCode, ErrorMessage, Message, WireAddr},
    NodeId, Timestamp,
};

/// Table of the certificates issued.
pub const CERTS_TABLE: &str = "master.certs";
/// Table of the nodes seen.
pub const NODES_TABLE: &str = "master.nodes";
/// Table of the revocation list.
pub const REVOCATIONS_TABLE: &str = "master.revocations";
/// Table of the LSNs and their session addresses.
pub const LSNS_TABLE: &str = "master.lsns";
const CURRENT: &[u8] = b"current";
/// LSNs told per [`WAKE_GAP`] after a restart: each answers with its registration and the
/// whole list of its children, so a large fleet's LSNs are spread over a few seconds.
const WAKE_BATCH: usize = 64;
const WAKE_GAP: std::time::Duration = std::time::Duration::from_millis(100);
/// Most nodes the registry keeps; beyond it, new nodes are not recorded (and a warning says
/// so). Only certified nodes become present, so this also bounds what a peer can make it grow.
pub const MAX_KNOWN_NODES: usize = 1_000_000;
/// How long past its expiry the master keeps a node's certificate (for clock skew between
/// master and node): after that it is forgotten, in memory and in [`CERTS_TABLE`]. An expired
/// certificate opens no session, so its node must enroll again and the new certificate
/// replaces it; the registry of certificates is thus bounded by the certificates still valid
/// (each spent a token use, or renewed one that did).
pub const CERT_GRACE: std::time::Duration = std::time::Duration::from_secs(86_400);
/// Most often the master looks for expired certificates.
const CERT_SWEEP: std::time::Duration = std::time::Duration::from_secs(3_600);

/// A node the master has seen present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize_tuple, Deserialize_tuple)]
pub struct KnownNode {
    /// When it was first present, UNIX seconds.
    pub first_seen: u64,
    /// When it last became present or left, UNIX seconds.
    pub last_seen: u64,
    /// Its address when last present (as its LSN reported it).
    pub last_addr: Option<WireAddr>,
    /// Its subnet when last present (the key the master files subnets under).
    #[serde(with = "serde_bytes")]
    pub subnet: Vec<u8>,
    /// Tags from the token that admitted it (an entry saved before tags existed has none).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// What the master saved: the input of [`Master::restore`].
#[derive(Clone, Debug, Default)]
pub struct MasterSaved {
    /// Certificates issued (undecodable entries skipped).
    pub certs: Vec<Certificate>,
    /// The node registry.
    pub nodes: Vec<(NodeId, KnownNode)>,
    /// The revocation list, if any.
    pub revocations: Option<RevocationList>,
    /// The LSNs when the master stopped, with their session addresses.
    pub lsns: Vec<(NodeId, WireAddr)>,
}

type Entries = [(Vec<u8>, Vec<u8>)];

impl MasterSaved {
    /// Decodes the tables' entries (see the module docs). Entries that do not decode are
    /// skipped with a warning: a registry entry is rebuilt when the node is next present.
    pub fn from_tables(
        certs: &Entries,
        nodes: &Entries,
        revocations: &Entries,
        lsns: &Entries,
    ) -> Self {
        MasterSaved {
            lsns: keyed(LSNS_TABLE, lsns),
            certs: certs.iter().filter_map(|(_, v)| decode(CERTS_TABLE, v)).collect(),
            nodes: keyed(NODES_TABLE, nodes),
            revocations: revocations
                .iter()
                .find(|(k, _)| k == CURRENT)
                .and_then(|(_, v)| decode(REVOCATIONS_TABLE, v)),
        }
    }
}

/// A table keyed by node id, decoded (entries with a bad key or value skipped).
fn keyed<T: serde::de::DeserializeOwned>(table: &str, entries: &Entries) -> Vec<(NodeId, T)> {
    entries
        .iter()
        .filter_map(|(k, v)| {
            let id = NodeId::from_bytes(k.as_slice().try_into().ok()?);
            Some((id, decode(table, v)?))
        })
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(table: &str, v: &[u8]) -> Option<T> {
    let result = cbor::from_slice(v);
    if let Err(error) = &result {
        tracing::warn!(table, %error, "undecodable master state entry skipped");
    }
    result.ok()
}

/// The master's durable side: the registry and the writes not yet drained.
#[derive(Default)]
pub(super) struct Durable {
    known: BTreeMap<NodeId, KnownNode>,
    /// The LSNs as saved (session addresses).
    lsns: BTreeMap<NodeId, WireAddr>,
    /// After a restart: LSNs still to tell, and when the next batch is due.
    wake: Vec<(NodeId, WireAddr)>,
    wake_at: Timestamp,
    ops: VecDeque<StoreOp>,
    /// Off until [`Master::restore`]: a master without a store writes nothing.
    on: bool,
    /// When to look for expired certificates next.
    cert_sweep_at: Timestamp,
}

impl Master {
    /// Switches persistence on and restores what was saved: issued certificates (so the master
    /// can seal messages to every node it enrolled), the revocation list, the node registry
    /// and the certificate serial numbers. Call before the master's first input.
    pub fn restore(&mut self, saved: MasterSaved) {
        self.durable.on = true;
        let next_serial = saved.certs.iter().map(|c| c.body.serial + 1).max().unwrap_or(1);
        self.ep.resume_serials(next_serial);
        for cert in saved.certs {
            self.reg.remember_certificate(cert);
        }
        if let Some(list) = saved.revocations {
            if let Err(error) = self.ep.update_revocations(list) {
                tracing::warn!(%error, "saved revocation list refused");
            }
        }
        self.durable.known = saved.nodes.into_iter().collect();
        self.durable.lsns = saved.lsns.iter().copied().collect();
        self.durable.wake = saved.lsns;
    }

    /// After a restart, tells the LSNs of before, a batch at a time, that we do not know them
    /// (`NOT_ADMITTED`, over a session we open): each registers again at once and reports its
    /// children, so presence is rebuilt in seconds.
    pub(super) fn wake_lsns(&mut self, now: Timestamp) {
        if self.durable.wake.is_empty() || now < self.durable.wake_at {
            return;
        }
        let from = self.durable.wake.len().saturating_sub(WAKE_BATCH);
        let batch: Vec<(NodeId, WireAddr)> = self.durable.wake.drain(from..).collect();
        self.durable.wake_at = now + WAKE_GAP;
        for (id, addr) in batch {
            if self.reg.is_lsn(&id) {
                continue; // It registered on its own already.
            }
            self.ep.connect(now, addr.0, Some(id));
            let detail = "the master restarted: register again".to_owned();
            let error = ErrorMessage { seq: 0, code: ErrorCode::NOT_ADMITTED, detail };
            self.send(now, addr.0, Message::Error(error));
        }
    }

    /// When [`wake_lsns`](Self::wake_lsns) has work.
    pub(super) fn wake_deadline(&self) -> Option<Timestamp> {
        (!self.durable.wake.is_empty()).then_some(self.durable.wake_at)
    }

    /// Whether the master writes to a store (after [`restore`](Self::restore)).
    pub(super) fn durable_on(&self) -> bool {
        self.durable.on
    }

    pub(super) fn push_store_op(&mut self, op: StoreOp) {
        self.durable.ops.push_back(op);
    }

    /// The next write for the master's store; none before [`restore`](Self::restore).
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.durable.ops.pop_front()
    }

    /// Every node the master has seen present, with when and where.
    pub fn known_nodes(&self) -> impl Iterator<Item = (&NodeId, &KnownNode)> {
        self.durable.known.iter()
    }

    /// Forgets expired certificates ([`CERT_GRACE`] after their expiry), at most once every
    /// [`CERT_SWEEP`], and removes them from the store.
    pub(super) fn sweep_certificates(&mut self, now: Timestamp) {
        if self.cert_sweep_deadline().is_none_or(|t| now < t) {
            return;
        }
        self.durable.cert_sweep_at = now + CERT_SWEEP;
        for node in self.reg.forget_expired_certificates(now, CERT_GRACE) {
            if self.durable.on {
                let key = node.as_bytes().to_vec();
                self.durable.ops.push_back(StoreOp::Remove { table: CERTS_TABLE, key });
            }
        }
    }

    /// When [`sweep_certificates`](Self::sweep_certificates) has work: only when a
    /// certificate expires, so a fleet whose certificates are all valid gets no timer.
    pub(super) fn cert_sweep_deadline(&self) -> Option<Timestamp> {
        let expiry = Timestamp::from_secs(self.reg.earliest_expiry()?) + CERT_GRACE;
        Some(expiry.max(self.durable.cert_sweep_at))
    }

    /// Certificates the master keeps to seal messages to nodes: those it issued that are
    /// still valid, or expired less than [`CERT_GRACE`] ago (swept hourly).
    pub fn certificates_kept(&self) -> usize {
        self.reg.certificate_count()
    }

    pub(super) fn save_certificate(&mut self, cert: &Certificate) {
        if self.durable.on {
            let key = cert.node_id().as_bytes().to_vec();
            let value = cbor::to_vec(cert);
            self.durable.ops.push_back(StoreOp::Put { table: CERTS_TABLE, key, value });
        }
    }

    pub(super) fn save_revocations(&mut self, list: &RevocationList) {
        if self.durable.on {
            let (key, value) = (CURRENT.to_vec(), cbor::to_vec(list));
            self.durable.ops.push_back(StoreOp::Put { table: REVOCATIONS_TABLE, key, value });
        }
    }

    /// Files presence changes in the registry.
    pub(super) fn note_presence(&mut self, now: Timestamp, events: &[PresenceEvent]) {
        if !self.durable.on {
            return;
        }
        for event in events {
            let node = match event {
                PresenceEvent::Joined { node, .. }
                | PresenceEvent::Parted { node, .. }
                | PresenceEvent::Moved { node, .. } => *node,
                PresenceEvent::Rerouted { node, .. } => {
                    // A standby that succeeded its LSN in the subnet (rerouted to itself), or
                    // an LSN that yielded and is now a child: the LSN table must follow, or
                    // a restarted master does not wake the subnet's LSN.
                    self.note_lsn(node);
                    continue;
                }
            };
            let whereabouts = self.reg.whereabouts(&node);
            let known = &mut self.durable.known;
            if !known.contains_key(&node) && known.len() >= MAX_KNOWN_NODES {
                tracing::warn!(%node, "node registry full; node not recorded");
                continue;
            }
            let entry = known.entry(node).or_insert_with(|| KnownNode {
                first_seen: now.as_secs(),
                last_seen: now.as_secs(),
                last_addr: None,
                subnet: Vec::new(),
                tags: Vec::new(),
            });
            entry.last_seen = now.as_secs();
            if let Some((addr, subnet)) = whereabouts {
                entry.last_addr = Some(addr.into());
                if let Some(subnet) = subnet {
                    entry.subnet = subnet.as_bytes().to_vec();
                }
            }
            let (key, value) = (node.as_bytes().to_vec(), cbor::to_vec(&*entry));
            self.durable.ops.push_back(StoreOp::Put { table: NODES_TABLE, key, value });
            self.note_lsn(&node);
        }
    }

    /// Records `node`'s tags (those of the token that admitted it) in the registry, creating
    /// its entry if it has not been present yet. Tags outside the registry's bounds are
    /// dropped: at most 16, each at most 64 bytes.
    pub fn set_tags(&mut self, now: Timestamp, node: NodeId, mut tags: Vec<String>) {
        tags.retain(|t| !t.is_empty() && t.len() <= 64);
        tags.sort();
        tags.dedup();
        tags.truncate(16);
        let known = &mut self.durable.known;
        if !known.contains_key(&node) && known.len() >= MAX_KNOWN_NODES {
            tracing::warn!(%node, "node registry full; tags not recorded");
            return;
        }
        let entry = known.entry(node).or_insert_with(|| KnownNode {
            first_seen: now.as_secs(),
            last_seen: now.as_secs(),
            last_addr: None,
            subnet: Vec::new(),
            tags: Vec::new(),
        });
        if entry.tags == tags {
            return;
        }
        entry.tags = tags;
        if self.durable.on {
            let (key, value) = (node.as_bytes().to_vec(), cbor::to_vec(&*entry));
            self.durable.ops.push_back(StoreOp::Put { table: NODES_TABLE, key, value });
        }
    }

    /// The nodes admitted with a token carrying `tag`.
    pub(super) fn tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = NodeId> + 'a {
        self.durable
            .known
            .iter()
            .filter(move |(_, k)| k.tags.iter().any(|t| t == tag))
            .map(|(n, _)| *n)
    }

    /// Whether `node` was admitted with a token carrying `tag`.
    pub(super) fn has_tag(&self, node: &NodeId, tag: &str) -> bool {
        self.durable.known.get(node).is_some_and(|k| k.tags.iter().any(|t| t == tag))
    }

    /// Keeps [`LSNS_TABLE`] in step with the registry for `node`.
    fn note_lsn(&mut self, node: &NodeId) {
        let key = node.as_bytes().to_vec();
        let now_lsn = self.reg.lsn_addr(node).filter(|_| self.reg.is_lsn(node)).map(WireAddr);
        match now_lsn {
            Some(addr) if self.durable.lsns.get(node) != Some(&addr) => {
                self.durable.lsns.insert(*node, addr);
                let value = cbor::to_vec(&addr);
                self.durable.ops.push_back(StoreOp::Put { table: LSNS_TABLE, key, value });
            }
            None if self.durable.lsns.remove(node).is_some() => {
                self.durable.ops.push_back(StoreOp::Remove { table: LSNS_TABLE, key });
            }
            _ => {}
        }
    }
}
