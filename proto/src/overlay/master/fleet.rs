//! The master's fleet requests (see `overlay/fleet.rs`): one signed copy to each LSN of the
//! audience, sent again until the LSN acknowledges it, to LSNs that appear while it is open
//! or register again (an LSN that restarted lost what it held), and to every holder every
//! [`FLEET_RECHECK`] in case a restart went unnoticed; the children's takes come back in
//! batches, their answers as reports. It ends at its expiry, as [`MasterEvent::FleetEnded`].
//!
//! Saved in the store like the outbox: a restarted master sends it to the LSNs again, and a
//! node that answered before answers the repeat from its log (so it is not handled twice).
//! Who answered before the restart is not kept: the application had those answers already.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::SocketAddr,
    time::Duration,
};

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{requests::RETRY, Master, MasterEvent, PresenceEvent, RequestError, RequestId};
use crate::{
    codec::cbor,
    dht::StoreOp,
    overlay::{
        fleet::{self, Audience},
        SubnetKey,
    },
    wire::{self, Ack, FleetAcks, FleetRequest, Message, Request, Response},
    NodeId, Timestamp,
};

/// The store table of open fleet requests: an 8-byte big-endian id → the request.
pub const FLEET_TABLE: &str = "fleet";
/// Most fleet requests open at once (each LSN holds them all).
pub const MAX_FLEET_OPEN: usize = 64;
/// How often an LSN that holds a fleet request is asked again whether it still does (about
/// 400 B per LSN for a small request: a few bytes per node-hour).
pub const FLEET_RECHECK: Duration = Duration::from_secs(1800);
/// An LSN's copy not acknowledged within this is sent again, then after twice as long each
/// time, up to [`RETRY`]: a lost copy delays the LSN's whole subnet by this much, and the
/// WAN's round trip is tens of milliseconds (TCP's least retransmission timeout).
pub const FLEET_RETRY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Serialize_tuple, Deserialize_tuple)]
struct Saved {
    kind: String,
    body: serde_bytes::ByteBuf,
    /// Unix seconds.
    expires: u64,
    /// The subnet, for a subnet's request.
    subnet: Option<serde_bytes::ByteBuf>,
    /// The tag, for a tag's request (neither: all nodes).
    tag: Option<String>,
}

/// Where an open fleet request stands ([`Master::fleet_progress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetProgress {
    /// Nodes that answered.
    pub answered: usize,
    /// Nodes their LSN reported as having taken it (answered or not).
    pub took: usize,
    /// Nodes of the audience present now.
    pub present: usize,
}

struct Open {
    request: Request,
    /// The signature of a copy for all the LSN's nodes (tag requests sign each copy).
    signature: [u8; 64],
    audience: Audience,
    expires: Timestamp,
    /// LSNs that acknowledged their copy, when, and the nodes it named: asked again after
    /// [`FLEET_RECHECK`], or when the nodes with the tag under it changed.
    holders: BTreeMap<NodeId, (Timestamp, Option<Vec<NodeId>>)>,
    /// Nodes their LSN reported as having taken it.
    delivered: BTreeSet<NodeId>,
    answered: BTreeSet<NodeId>,
    next_send: Timestamp,
}

/// A copy sent to an LSN and not yet acknowledged.
struct SentCopy {
    id: RequestId,
    lsn: NodeId,
    /// The nodes it named (tag requests).
    nodes: Option<Vec<NodeId>>,
    at: Timestamp,
    /// Copies sent to this LSN before this one, unacknowledged.
    tries: u8,
}

impl SentCopy {
    /// When it is sent again if its LSN has not acknowledged it.
    fn due(&self) -> Timestamp {
        self.at + (FLEET_RETRY * (1u32 << self.tries.min(3))).min(RETRY)
    }
}

/// The open fleet requests.
#[derive(Default)]
pub(super) struct Fleet {
    open: BTreeMap<RequestId, Open>,
    /// Copies awaiting their LSN's Ack, by seq.
    sent: HashMap<u32, SentCopy>,
}

impl Master {
    /// Queues a request of `kind` with `body` for every node of `audience`, present now or
    /// before `ttl` runs out, each to handle it at most once. The master sends one copy per
    /// LSN; see [`fleet`](crate::overlay) for what that means for confidentiality (the LSNs
    /// read it). Each answer arrives as [`MasterEvent::Response`] with the id returned; the
    /// end as [`MasterEvent::FleetEnded`].
    ///
    /// # Errors
    /// [`RequestError::Full`] beyond [`MAX_FLEET_OPEN`], [`RequestError::TooLarge`],
    /// [`RequestError::BadTtl`]; nothing is queued then.
    pub fn request_fleet(
        &mut self,
        now: Timestamp,
        audience: Audience,
        kind: &str,
        body: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, RequestError> {
        if ttl.is_zero() || ttl > super::MAX_TTL {
            return Err(RequestError::BadTtl);
        }
        if self.fleet.open.len() >= MAX_FLEET_OPEN {
            return Err(RequestError::Full("fleet requests"));
        }
        let expires = (now + ttl).as_secs();
        let request = Request { id: 0, kind: kind.to_owned(), body: body.to_vec(), expires };
        let probe = FleetRequest {
            seq: u32::MAX,
            request,
            nodes: None,
            reply_key: [0; 32],
            signature: [0; 64],
        };
        let size = wire::encoded_len(&Message::FleetRequest(Box::new(probe)));
        if size > wire::MAX_FRAME_LEN - 64 {
            return Err(RequestError::TooLarge(format!("{size} bytes")));
        }
        let id = self.outbox.next_id(now);
        let (subnet, tag) = match audience {
            Audience::Subnet(s) => (Some(serde_bytes::ByteBuf::from(s.as_bytes().to_vec())), None),
            Audience::Tag(t) => (None, Some(t)),
            Audience::All => (None, None),
        };
        let body = serde_bytes::ByteBuf::from(body.to_vec());
        let saved = Saved { kind: kind.to_owned(), body, expires, subnet, tag };
        if self.durable_on() {
            let (key, value) = (id.to_be_bytes().to_vec(), cbor::to_vec(&saved));
            self.push_store_op(StoreOp::Put { table: FLEET_TABLE, key, value });
        }
        self.open_fleet(now, id, saved);
        Ok(id)
    }

    /// Restores the open fleet requests from the store's [`FLEET_TABLE`] entries
    /// (undecodable ones skipped); they go to the LSNs again at the next timer.
    pub fn restore_fleet(&mut self, now: Timestamp, entries: &[(Vec<u8>, Vec<u8>)]) {
        for (key, value) in entries {
            let (Ok(id), Ok(saved)) =
                (<[u8; 8]>::try_from(key.as_slice()), cbor::from_slice::<Saved>(value))
            else {
                tracing::warn!("undecodable fleet request skipped");
                continue;
            };
            let id = u64::from_be_bytes(id);
            self.outbox.bump(id);
            self.open_fleet(now, id, saved);
        }
    }

    /// Fleet requests open now.
    pub fn fleet_open(&self) -> usize {
        self.fleet.open.len()
    }

    /// Fleet request `id` while it is open: how many answered, took it, and are of its
    /// audience and present now (a walk over the present nodes).
    pub fn fleet_progress(&self, id: RequestId) -> Option<FleetProgress> {
        let open = self.fleet.open.get(&id)?;
        let present = self.present_in(&open.audience).count();
        let took = open.delivered.union(&open.answered).count();
        Some(FleetProgress { answered: open.answered.len(), took, present })
    }

    /// The present nodes of `audience`.
    fn present_in<'a>(&'a self, audience: &'a Audience) -> impl Iterator<Item = NodeId> + 'a {
        let topology = self.reg.topology();
        let nodes: Vec<NodeId> = topology
            .subnets
            .iter()
            .flat_map(|s| &s.lsns)
            .flat_map(|l| std::iter::once(l.id).chain(l.children.iter().map(|c| c.id)))
            .collect();
        nodes.into_iter().filter(move |n| self.in_audience(audience, n))
    }

    fn open_fleet(&mut self, now: Timestamp, id: RequestId, saved: Saved) {
        let audience = match saved.subnet.as_ref().map(|b| <[u8; 20]>::try_from(b.as_slice())) {
            Some(Ok(bytes)) => Audience::Subnet(SubnetKey::from_bytes(bytes)),
            Some(Err(_)) => return tracing::warn!(id, "fleet request with a bad subnet skipped"),
            None => saved.tag.map_or(Audience::All, Audience::Tag),
        };
        let request =
            Request { id, kind: saved.kind, body: saved.body.into_vec(), expires: saved.expires };
        let network = *self.ep.trust().network();
        let reply_key = self.ep.identity().x25519_public();
        let signature = fleet::sign(self.ep.identity(), &network, &request, &None, &reply_key);
        let open = Open {
            request,
            signature,
            audience,
            expires: Timestamp::from_secs(saved.expires),
            holders: BTreeMap::new(),
            delivered: BTreeSet::new(),
            answered: BTreeSet::new(),
            next_send: now,
        };
        self.fleet.open.insert(id, open);
    }

    /// The LSNs a fleet request goes to, with the nodes each is to hand it to (all of its
    /// own: none).
    pub(super) fn fleet_lsns(
        &self,
        audience: &Audience,
    ) -> Vec<(NodeId, SocketAddr, Option<Vec<NodeId>>)> {
        let all = |lsns: Vec<(NodeId, SocketAddr)>| {
            lsns.into_iter().map(|(id, addr)| (id, addr, None)).collect()
        };
        match audience {
            Audience::Subnet(subnet) => all(self.reg.subnet_lsn_addrs(subnet)),
            Audience::All => all(self.reg.lsn_addrs()),
            Audience::Tag(tag) => {
                let mut by_lsn: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
                for node in self.tagged(tag) {
                    if let Some((lsn, _)) = self.reg.next_hop(&node) {
                        by_lsn.entry(lsn).or_default().push(node);
                    }
                }
                by_lsn
                    .into_iter()
                    .filter_map(|(lsn, nodes)| {
                        self.reg.lsn_addr(&lsn).map(|addr| (lsn, addr, Some(nodes)))
                    })
                    .collect()
            }
        }
    }

    /// Whether `node` is of `audience` (as far as the master knows).
    fn in_audience(&self, audience: &Audience, node: &NodeId) -> bool {
        match audience {
            Audience::All => true,
            Audience::Subnet(subnet) => {
                self.reg.whereabouts(node).and_then(|(_, s)| s) == Some(*subnet)
            }
            Audience::Tag(tag) => self.has_tag(node, tag),
        }
    }

    pub(super) fn fleet_timers(&mut self, now: Timestamp) {
        let due: Vec<RequestId> = self
            .fleet
            .open
            .iter()
            .filter(|(_, o)| now >= o.expires || now >= o.next_send)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if self.fleet.open.get(&id).is_some_and(|o| now >= o.expires) {
                self.end_fleet(id);
            } else {
                self.send_fleet(now, id);
            }
        }
    }

    /// Sends request `id` to every LSN of its audience that does not hold it, or held it
    /// longer ago than [`FLEET_RECHECK`], and has no copy in flight (see [`FLEET_RETRY`]): LSNs
    /// registering one after another while the master recovers would otherwise each have
    /// every unacknowledged copy sent again (LSNs² copies).
    fn send_fleet(&mut self, now: Timestamp, id: RequestId) {
        let Some(open) = self.fleet.open.get(&id) else { return };
        let flying: HashSet<NodeId> = (self.fleet.sent.values())
            .filter(|c| c.id == id && now < c.due())
            .map(|c| c.lsn)
            .collect();
        let due: Vec<(NodeId, SocketAddr, Option<Vec<NodeId>>)> = self
            .fleet_lsns(&open.audience)
            .into_iter()
            .filter(|(lsn, _, nodes)| {
                !flying.contains(lsn)
                    && open
                        .holders
                        .get(lsn)
                        .is_none_or(|(t, held)| now >= *t + FLEET_RECHECK || held != nodes)
            })
            .collect();
        let (request, signature) = (open.request.clone(), open.signature);
        // A copy past its due time is sent again (replaced) or its LSN left: either way its
        // seq no longer awaits an Ack, so the table stays bounded.
        let tried: HashMap<NodeId, u8> = (self.fleet.sent.values())
            .filter(|c| c.id == id)
            .map(|c| (c.lsn, c.tries.saturating_add(1)))
            .collect();
        self.fleet.sent.retain(|_, c| c.id != id || now < c.due());
        let network = *self.ep.trust().network();
        let reply_key = self.ep.identity().x25519_public();
        for (lsn, addr, nodes) in due {
            let seq = self.next_seq();
            let signature = match &nodes {
                Some(_) => fleet::sign(self.ep.identity(), &network, &request, &nodes, &reply_key),
                None => signature,
            };
            let tries = tried.get(&lsn).copied().unwrap_or(0);
            let sent = SentCopy { id, lsn, nodes: nodes.clone(), at: now, tries };
            self.fleet.sent.insert(seq, sent);
            let copy = FleetRequest { seq, request: request.clone(), nodes, reply_key, signature };
            self.send(now, addr, Message::FleetRequest(Box::new(copy)));
        }
        let next = self.fleet.sent.values().filter(|c| c.id == id).map(SentCopy::due).min();
        if let Some(open) = self.fleet.open.get_mut(&id) {
            open.next_send = next.unwrap_or(now + RETRY);
        }
    }

    fn end_fleet(&mut self, id: RequestId) {
        let Some(open) = self.fleet.open.remove(&id) else { return };
        self.fleet.sent.retain(|_, c| c.id != id);
        if self.durable_on() {
            let key = id.to_be_bytes().to_vec();
            self.push_store_op(StoreOp::Remove { table: FLEET_TABLE, key });
        }
        let unanswered: Vec<NodeId> = open.delivered.difference(&open.answered).copied().collect();
        let unreached = self
            .present_in(&open.audience)
            .filter(|n| !open.delivered.contains(n) && !open.answered.contains(n))
            .count();
        for node in &unanswered {
            let error = RequestError::Expired { delivered: true };
            self.events.push_back(MasterEvent::RequestFailed { id, node: *node, error });
        }
        self.events.push_back(MasterEvent::FleetEnded {
            id,
            answered: open.answered.len(),
            unanswered: unanswered.len(),
            unreached,
        });
    }

    /// An Ack from `peer`: true if it settled a fleet request's copy.
    pub(super) fn fleet_acked(&mut self, now: Timestamp, peer: NodeId, seq: u32) -> bool {
        let Some(copy) = self.fleet.sent.get(&seq) else { return false };
        if copy.lsn != peer {
            self.refusals.answer += 1;
            return true;
        }
        let Some(copy) = self.fleet.sent.remove(&seq) else { return true };
        if let Some(open) = self.fleet.open.get_mut(&copy.id) {
            open.holders.insert(copy.lsn, (now, copy.nodes));
        }
        true
    }

    /// An LSN's batch of children that took a fleet request: only its own children count.
    pub(super) fn on_fleet_acks(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        a: FleetAcks,
    ) {
        if !self.reg.is_lsn(&peer) {
            self.refusals.relay += 1;
            return;
        }
        self.send(now, addr, Message::Ack(Ack { seq: a.seq }));
        let Some(open) = self.fleet.open.get_mut(&a.id) else { return };
        for node in a.nodes {
            if node == peer || self.reg.next_hop(&node).is_some_and(|(hop, _)| hop == peer) {
                open.delivered.insert(node);
            } else {
                self.refusals.answer += 1;
            }
        }
    }

    /// A node's answer to a fleet request: reported once per node.
    pub(super) fn fleet_response(&mut self, node: NodeId, r: Response) {
        let Some(open) = self.fleet.open.get(&r.id) else { return };
        if !open.delivered.contains(&node) && !self.in_audience(&open.audience, &node) {
            return;
        }
        let Some(open) = self.fleet.open.get_mut(&r.id) else { return };
        if !open.answered.insert(node) {
            return;
        }
        let (id, status, body) = (r.id, r.status, r.body);
        self.events.push_back(MasterEvent::Response { id, node, status, body });
    }

    /// An LSN registered (again, perhaps after a restart): it gets the open requests.
    pub(super) fn fleet_lsn_registered(&mut self, now: Timestamp, lsn: &NodeId) {
        for open in self.fleet.open.values_mut() {
            open.holders.remove(lsn);
            open.next_send = open.next_send.min(now);
        }
    }

    /// An LSN that became present (again) may have lost what it held: it gets the open
    /// requests.
    pub(super) fn fleet_presence(&mut self, now: Timestamp, events: &[PresenceEvent]) {
        for event in events {
            if let PresenceEvent::Joined { node, lsn } = event {
                if node == lsn {
                    for open in self.fleet.open.values_mut() {
                        open.holders.remove(node);
                        open.next_send = open.next_send.min(now);
                    }
                }
            }
        }
    }

    pub(super) fn fleet_deadline(&self) -> Option<Timestamp> {
        self.fleet.open.values().map(|o| o.next_send.min(o.expires)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unacknowledged_copy_is_sent_again_after_1_2_4_then_5_seconds() {
        let at = Timestamp::from_secs(100);
        let lsn = NodeId::from_bytes([1; 20]);
        let due = |tries| SentCopy { id: 1, lsn, nodes: None, at, tries }.due();
        let waits: Vec<u64> = (0..6).map(|k| due(k).saturating_since(at).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5]);
    }
}
