//! The master's presence registry: who is present, under which LSN, by which route; which
//! LSNs serve which subnet. Deadlines live in ordered sets so the master's timer stays cheap
//! with tens of thousands of nodes.

mod certs;
mod groups;
mod lsns;
mod suspect;
mod view;
mod yielded;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    time::Duration,
};

use self::groups::Groups;
use super::PresenceEvent;
use crate::{
    overlay::{MasterConfig, SubnetKey},
    trust::Certificate,
    wire::{Contact, PartReason, PresenceChange, PresenceKind},
    NodeId, Timestamp,
};

pub(super) struct NodeRecord {
    lsn: NodeId,
    addr: SocketAddr,
    route: Vec<NodeId>,
    last_seen: Timestamp,
    rtt: Option<Duration>,
    /// Not present right now, but expected back (its LSN died, it yielded or moved) until the
    /// deadline; then it is reported parted for this reason.
    pending: Option<(PartReason, Timestamp)>,
}

struct LsnRecord {
    subnet: SubnetKey,
    contact: Contact,
    /// Where the LSN's session with the master is (its public address), as of the last
    /// message from it.
    addr: SocketAddr,
    /// Its key in `lsn_expiry`: when last heard from, plus `slack`.
    expires: Timestamp,
    /// Silence allowed beyond `MasterConfig::lsn_timeout`, for an LSN that announced a
    /// longer keepalive period.
    slack: Duration,
    /// When it registered as this subnet's LSN (kept when it registers again): of two LSNs in
    /// a subnet, the one registered first is senior and the other yields to it
    /// (`node/rival.rs`). Only we can vouch for that; an uptime an LSN claims proves nothing.
    since: Timestamp,
}

#[derive(Default)]
pub(super) struct Registry {
    nodes: BTreeMap<NodeId, NodeRecord>,
    /// The nodes whose record names each LSN (the LSN's own record included, pending ones
    /// too), so that an LSN's children are found without a pass over the whole fleet.
    under: Groups<NodeId>,
    lsns: BTreeMap<NodeId, LsnRecord>,
    /// The LSNs of each subnet (kept with `lsns`): asked on every LSN's ping.
    lsns_by_subnet: Groups<SubnetKey>,
    lsn_expiry: BTreeSet<(Timestamp, NodeId)>,
    pending: BTreeSet<(Timestamp, NodeId)>,
    designates: HashMap<SubnetKey, (Contact, Timestamp)>,
    certs: HashMap<NodeId, Certificate>,
    /// The earliest expiry among `certs` still to be forgotten (`certs.rs`).
    earliest_expiry: Option<u64>,
    /// Nodes recently told the LSNs of their subnet, and when.
    told: HashMap<NodeId, Timestamp>,
    /// LSNs that left (shut down, revoked, lost) within the grace period, with their subnet:
    /// the standby that reports replacing one is still handed the children its list missed.
    /// Oldest first, at most [`MAX_GONE`].
    gone: std::collections::VecDeque<(NodeId, SubnetKey, Timestamp)>,
    /// LSNs filed under the rival they yielded to, on their word, until when (`yielded.rs`).
    /// At most [`MAX_GONE`].
    yielded: BTreeMap<NodeId, Timestamp>,
    present: usize,
}

/// Most departed LSNs remembered for their standby's takeover report.
const MAX_GONE: usize = 4096;

impl Registry {
    /// `peer` was heard from at `addr`, over its authenticated session.
    pub(super) fn seen(&mut self, now: Timestamp, peer: &NodeId, addr: SocketAddr) {
        if let Some(rec) = self.nodes.get_mut(peer) {
            rec.last_seen = now;
        }
        if let Some(lsn) = self.lsns.get_mut(peer) {
            // Its session may have moved since it registered (UDP to TCP, a NAT rebinding):
            // everything for its subnet goes where the session is now.
            lsn.addr = addr;
        }
        self.touch_lsn(now, peer);
    }

    /// Restarts an LSN's silence timer.
    fn touch_lsn(&mut self, now: Timestamp, peer: &NodeId) {
        let Some(lsn) = self.lsns.get_mut(peer) else { return };
        self.lsn_expiry.remove(&(lsn.expires, *peer));
        lsn.expires = now + lsn.slack;
        self.lsn_expiry.insert((lsn.expires, *peer));
    }

    /// An LSN announced its keepalive period: it may stay silent two and a half of them.
    pub(super) fn set_keepalive(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        period: Duration,
        cfg: &MasterConfig,
    ) {
        let Some(lsn) = self.lsns.get_mut(peer) else { return };
        lsn.slack = (period * 5 / 2).saturating_sub(cfg.lsn_timeout);
        self.touch_lsn(now, peer);
    }

    pub(super) fn is_present(&self, node: &NodeId) -> bool {
        self.nodes.get(node).is_some_and(|r| r.pending.is_none())
    }

    pub(super) fn present_count(&self) -> usize {
        self.present
    }

    /// The LSN `node` would be reported replacing, when `reporter` announces it lost: a
    /// registered LSN of the reporter's own subnet. Returns its children as contacts. `None`
    /// for the reporter's own child, even one that was an LSN until lately: its loss is an
    /// ordinary one (a dead standby handed to its successor with the children of the LSN
    /// before it stayed present for good, its loss report taken for a takeover claim).
    pub(super) fn replaced_children(
        &self,
        reporter: &NodeId,
        node: &NodeId,
    ) -> Option<Vec<Contact>> {
        if node != reporter && self.nodes.get(node).is_some_and(|r| r.lsn == *reporter) {
            return None;
        }
        let subnet = self.subnet_of(node).or_else(|| {
            self.gone.iter().rev().find(|(id, _, _)| id == node).map(|(_, subnet, _)| *subnet)
        });
        if subnet.is_none() || subnet != self.subnet_of(reporter) {
            return None;
        }
        Some(self.contacts_under(node, |id, _| id != node && id != reporter))
    }

    /// The records naming `lsn` that `keep` accepts, as contacts.
    fn contacts_under(
        &self,
        lsn: &NodeId,
        keep: impl Fn(&NodeId, &NodeRecord) -> bool,
    ) -> Vec<Contact> {
        self.records_under(lsn)
            .filter(|(id, r)| keep(id, r))
            .map(|(id, r)| Contact { id: *id, addr: crate::wire::WireAddr(r.addr) })
            .collect()
    }

    /// Whether any node is filed under `lsn`, adopted ones not yet reported included.
    pub(super) fn has_any_under(&self, lsn: &NodeId) -> bool {
        self.records_under(lsn).any(|(id, _)| id != lsn)
    }

    pub(super) fn children_of(&self, lsn: &NodeId) -> Vec<NodeId> {
        self.records_under(lsn)
            .filter(|(id, r)| *id != lsn && r.pending.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The records naming `lsn` (its own included), in id order.
    fn records_under<'a>(
        &'a self,
        lsn: &NodeId,
    ) -> impl Iterator<Item = (&'a NodeId, &'a NodeRecord)> + 'a {
        self.under.ids(lsn).filter_map(|id| self.nodes.get_key_value(id))
    }

    /// Files a node's record (replacing any it had), keeping `under` in step.
    fn put_node(&mut self, node: NodeId, rec: NodeRecord) -> Option<NodeRecord> {
        self.under.put(&mut self.nodes, node, rec, |r| r.lsn)
    }

    /// Takes a node's record out, keeping `under` in step.
    fn take_node(&mut self, node: &NodeId) -> Option<NodeRecord> {
        self.under.take(&mut self.nodes, node, |r| r.lsn)
    }

    pub(super) fn remember_certificate(&mut self, cert: Certificate) {
        let expires = cert.body.expires_at;
        self.earliest_expiry = Some(self.earliest_expiry.map_or(expires, |e| e.min(expires)));
        self.certs.insert(cert.node_id(), cert);
    }

    pub(super) fn certificate(&self, node: &NodeId) -> Option<&Certificate> {
        self.certs.get(node)
    }

    /// The LSN that leads `node` (the node itself, if it is one) and the address its session
    /// uses now.
    pub(super) fn next_hop(&self, node: &NodeId) -> Option<(NodeId, SocketAddr)> {
        let rec = self.nodes.get(node).filter(|r| r.pending.is_none())?;
        self.lsns.get(&rec.lsn).map(|l| (rec.lsn, l.addr))
    }

    pub(super) fn set_rtt(&mut self, node: &NodeId, rtt: Duration) {
        if let Some(rec) = self.nodes.get_mut(node) {
            rec.rtt = Some(rtt);
        }
    }

    /// The LSNs to name to a querier; when there are none, the querier is designated to become
    /// the LSN (and named to later queriers for a while), and the answer is empty.
    pub(super) fn lsns_for_query(
        &mut self,
        now: Timestamp,
        subnet: SubnetKey,
        querier: Contact,
        cfg: &MasterConfig,
    ) -> Vec<Contact> {
        let lsns: Vec<Contact> =
            self.subnet_lsns(&subnet).into_iter().filter(|c| c.id != querier.id).collect();
        self.told.retain(|_, at| now < *at + cfg.requery_window);
        if self.lsns.contains_key(&querier.id) {
            return lsns;
        }
        if !lsns.is_empty() {
            // Asking again so soon means the LSNs we named were unreachable from there: let it
            // lead its part of the subnet; the LSNs settle once they can talk
            // (`node/rival.rs`).
            if self.told.remove(&querier.id).is_none() {
                self.told.insert(querier.id, now);
                return lsns;
            }
            return Vec::new();
        }
        match self.designates.get(&subnet) {
            Some((d, until)) if *until > now && d.id != querier.id => vec![*d],
            _ => {
                self.designates.insert(subnet, (querier, now + cfg.designate_ttl));
                Vec::new()
            }
        }
    }

    /// Withdraws `querier`'s designation as `subnet`'s LSN (made by `lsns_for_query`).
    pub(super) fn undesignate(&mut self, subnet: &SubnetKey, querier: &NodeId) {
        if self.designates.get(subnet).is_some_and(|(d, _)| d.id == *querier) {
            self.designates.remove(subnet);
        }
    }

    /// Designates `lsn` as `subnet`'s LSN: it is named to the subnet's queriers for a while.
    pub(super) fn designate(
        &mut self,
        now: Timestamp,
        subnet: SubnetKey,
        lsn: Contact,
        cfg: &MasterConfig,
    ) {
        self.designates.insert(subnet, (lsn, now + cfg.designate_ttl));
    }

    /// `subnet`'s LSNs, senior first (by registration, then id).
    pub(super) fn subnet_lsns(&self, subnet: &SubnetKey) -> Vec<Contact> {
        let mut lsns: Vec<&LsnRecord> = self.subnet_lsn_records(subnet).map(|(_, l)| l).collect();
        lsns.sort_by_key(|l| (l.since, l.contact.id));
        lsns.into_iter().map(|l| l.contact).collect()
    }

    /// `subnet`'s LSNs, in id order.
    fn subnet_lsn_records<'a>(
        &'a self,
        subnet: &SubnetKey,
    ) -> impl Iterator<Item = (&'a NodeId, &'a LsnRecord)> + 'a {
        self.lsns_by_subnet.ids(subnet).filter_map(|id| self.lsns.get_key_value(id))
    }

    /// The LSNs of `lsn`'s subnet, when it has rivals there.
    pub(super) fn rivals_of(&self, lsn: &NodeId) -> Option<Vec<Contact>> {
        let subnet = self.subnet_of(lsn)?;
        let lsns = self.subnet_lsns(&subnet);
        (lsns.len() > 1).then_some(lsns)
    }

    /// Every LSN and where its session with the master is.
    pub(super) fn subnet_lsn_addrs(&self, subnet: &SubnetKey) -> Vec<(NodeId, SocketAddr)> {
        self.subnet_lsn_records(subnet).map(|(id, l)| (*id, l.addr)).collect()
    }

    /// Files an LSN's record (replacing any it had), keeping `lsns_by_subnet` in step.
    fn put_lsn(&mut self, id: NodeId, rec: LsnRecord) -> Option<LsnRecord> {
        self.lsns_by_subnet.put(&mut self.lsns, id, rec, |r| r.subnet)
    }

    /// Takes an LSN's record out, keeping `lsns_by_subnet` in step.
    fn take_lsn(&mut self, id: &NodeId) -> Option<LsnRecord> {
        self.lsns_by_subnet.take(&mut self.lsns, id, |r| r.subnet)
    }

    fn subnet_of(&self, lsn: &NodeId) -> Option<SubnetKey> {
        self.lsns.get(lsn).map(|l| l.subnet)
    }

    /// A node is (again) present under `lsn`; returns the event describing how.
    fn place(
        &mut self,
        now: Timestamp,
        node: NodeId,
        lsn: NodeId,
        addr: SocketAddr,
        route: Vec<NodeId>,
    ) -> Option<PresenceEvent> {
        let event = match self.nodes.get(&node) {
            None => Some(PresenceEvent::Joined { node, lsn }),
            Some(rec) => {
                let moved = rec.pending.is_some_and(|(r, _)| r == PartReason::Moved)
                    || (rec.lsn != lsn
                        && self
                            .subnet_of(&rec.lsn)
                            .zip(self.subnet_of(&lsn))
                            .is_some_and(|(a, b)| a != b));
                if moved {
                    Some(PresenceEvent::Moved { node, from: rec.lsn, to: lsn })
                } else if rec.lsn != lsn || rec.pending.is_some() {
                    Some(PresenceEvent::Rerouted { node, from: rec.lsn, to: lsn })
                } else {
                    None
                }
            }
        };
        let previous = self.put_node(
            node,
            NodeRecord { lsn, addr, route, last_seen: now, rtt: None, pending: None },
        );
        match previous {
            Some(prev) => {
                if let Some((_, until)) = prev.pending {
                    self.pending.remove(&(until, node));
                    self.present += 1;
                }
                if let Some(rec) = self.nodes.get_mut(&node) {
                    rec.rtt = prev.rtt;
                }
            }
            None => self.present += 1,
        }
        event
    }

    #[cfg(test)]
    pub(super) fn forget(&mut self, node: &NodeId) {
        self.remove(node, PartReason::Lost);
    }

    /// Removes a node; returns the Parted event if it was present.
    fn remove(&mut self, node: &NodeId, reason: PartReason) -> Option<PresenceEvent> {
        let rec = self.take_node(node)?;
        match rec.pending {
            Some((_, until)) => {
                self.pending.remove(&(until, *node));
            }
            None => self.present -= 1,
        }
        Some(PresenceEvent::Parted { node: *node, reason })
    }

    fn set_pending(&mut self, node: &NodeId, reason: PartReason, until: Timestamp) {
        let Some(rec) = self.nodes.get_mut(node) else { return };
        match rec.pending {
            Some((_, old)) => {
                self.pending.remove(&(old, *node));
            }
            None => self.present -= 1,
        }
        rec.pending = Some((reason, until));
        self.pending.insert((until, *node));
    }

    /// Registers (or refreshes) an LSN.
    pub(super) fn register_lsn(
        &mut self,
        now: Timestamp,
        subnet: SubnetKey,
        contact: Contact,
        addr: SocketAddr,
    ) -> Vec<PresenceEvent> {
        let id = contact.id;
        if self.designates.get(&subnet).is_some_and(|(d, _)| d.id == id) {
            self.designates.remove(&subnet);
        }
        let since = self.lsns.get(&id).filter(|l| l.subnet == subnet).map_or(now, |l| l.since);
        let rec = LsnRecord { subnet, contact, addr, expires: now, slack: Duration::ZERO, since };
        if let Some(old) = self.put_lsn(id, rec) {
            self.lsn_expiry.remove(&(old.expires, id));
        }
        self.touch_lsn(now, &id);
        self.place(now, id, id, addr, vec![id]).into_iter().collect()
    }

    /// Applies one presence change reported by `lsn`.
    pub(super) fn apply(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        change: &PresenceChange,
        route: &[NodeId],
        cfg: &MasterConfig,
    ) -> Vec<PresenceEvent> {
        let node = change.node;
        if node == *lsn {
            return Vec::new();
        }
        match change.kind {
            PresenceKind::Joined => {
                let mut events = Vec::new();
                if self.lsns.contains_key(&node) {
                    // An LSN that yielded (or moved) now reports to another LSN.
                    self.drop_lsn(now, &node, cfg);
                }
                let mut full_route = vec![node];
                full_route.extend_from_slice(route);
                events.extend(self.place(now, node, *lsn, change.addr.0, full_route));
                events
            }
            PresenceKind::Parted(reason) => {
                // A standby reporting the LSN it replaced.
                if self.lsns.contains_key(&node) && self.subnet_of(&node) == self.subnet_of(lsn) {
                    return self.lsn_gone(now, &node, reason, cfg);
                }
                // Only the node's current LSN may report it gone: a part from an old LSN
                // that arrives after the node joined elsewhere is stale.
                if self.nodes.get(&node).is_none_or(|r| r.lsn != *lsn) {
                    return Vec::new();
                }
                if reason == PartReason::Moved {
                    self.set_pending(&node, reason, now + cfg.grace);
                    return Vec::new();
                }
                self.remove(&node, reason).into_iter().collect()
            }
        }
    }

    /// An LSN announced its part.
    pub(super) fn lsn_parted(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        reason: PartReason,
        cfg: &MasterConfig,
    ) -> Vec<PresenceEvent> {
        if !self.lsns.contains_key(lsn) {
            return Vec::new();
        }
        self.lsn_gone(now, lsn, reason, cfg)
    }

    /// An LSN is gone (lost, shut down, moved, yielded): its children wait for another LSN to
    /// report them.
    fn lsn_gone(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        reason: PartReason,
        cfg: &MasterConfig,
    ) -> Vec<PresenceEvent> {
        self.drop_lsn(now, lsn, cfg);
        let mut events = Vec::new();
        match reason {
            PartReason::Yield | PartReason::Moved => self.set_pending(lsn, reason, now + cfg.grace),
            _ => events.extend(self.remove(lsn, reason)),
        }
        events
    }

    /// Forgets the LSN role of `lsn`; its children become pending.
    fn drop_lsn(&mut self, now: Timestamp, lsn: &NodeId, cfg: &MasterConfig) {
        if let Some(rec) = self.take_lsn(lsn) {
            self.lsn_expiry.remove(&(rec.expires, *lsn));
            self.gone.retain(|(_, _, until)| *until > now);
            if self.gone.len() >= MAX_GONE {
                self.gone.pop_front();
            }
            self.gone.push_back((*lsn, rec.subnet, now + cfg.grace));
        }
        for child in self.children_of(lsn) {
            self.set_pending(&child, PartReason::Lost, now + cfg.grace);
        }
    }

    /// Replaces `lsn`'s children with `nodes` (the answer to a resync).
    pub(super) fn resync(
        &mut self,
        now: Timestamp,
        lsn: &NodeId,
        nodes: &[Contact],
        cfg: &MasterConfig,
    ) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        let listed: BTreeSet<NodeId> = nodes.iter().map(|c| c.id).collect();
        for child in self.children_of(lsn) {
            if !listed.contains(&child) {
                events.extend(self.unlisted(now, &child, cfg));
            }
        }
        // A listed node that is an LSN itself is left alone: the list may be older than its
        // takeover (the LSN still counts the standby that took over from it), and only its
        // own Join to another LSN, reported as a change, ends its role.
        for c in nodes {
            if self.lsns.contains_key(&c.id) {
                continue;
            }
            let change = PresenceChange { node: c.id, kind: PresenceKind::Joined, addr: c.addr };
            events.extend(self.apply(now, lsn, &change, &[*lsn], cfg));
        }
        events
    }

    /// Declares silent LSNs lost and pending nodes parted.
    pub(super) fn expire(&mut self, now: Timestamp, cfg: &MasterConfig) -> Vec<PresenceEvent> {
        let mut events = Vec::new();
        while let Some(&(seen, lsn)) = self.lsn_expiry.first() {
            if now < seen + cfg.lsn_timeout {
                break;
            }
            self.lsn_expiry.pop_first();
            events.extend(self.lsn_gone(now, &lsn, PartReason::Lost, cfg));
        }
        while let Some(&(until, node)) = self.pending.first() {
            if now < until {
                break;
            }
            self.pending.pop_first();
            let reason = self.nodes.get(&node).and_then(|r| r.pending).map(|(r, _)| r);
            if let Some(reason) = reason {
                if self.lsns.contains_key(&node) {
                    // A suspected LSN that never answered (`master/suspects.rs`): its
                    // children wait for another LSN, as after any lost LSN.
                    events.extend(self.lsn_gone(now, &node, reason, cfg));
                    continue;
                }
                self.take_node(&node);
                events.push(PresenceEvent::Parted { node, reason });
            }
        }
        self.designates.retain(|_, (_, until)| *until > now);
        events
    }

    pub(super) fn next_deadline(&self, cfg: &MasterConfig) -> Option<Timestamp> {
        let lsn = self.lsn_expiry.first().map(|(seen, _)| *seen + cfg.lsn_timeout);
        let pending = self.pending.first().map(|(t, _)| *t);
        lsn.into_iter().chain(pending).min()
    }
}

#[cfg(test)]
mod tests;
