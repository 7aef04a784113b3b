//! The node's DHT: the [`Dht`] service wired to the node's endpoint, and the public DHT API
//! (put, get, provide, find_providers, find_node). Results come back as
//! [`NodeEvent::Dht`](super::NodeEvent::Dht).

use std::net::SocketAddr;

use super::{Node, NodeEvent};
use crate::{
    dht::{Dht, DhtCommand, DhtMode, DhtTraffic, KeyKind, QueryId, Saved, StoreOp},
    wire::{Mapping, Message, Record},
    NodeId, Timestamp,
};

impl Node {
    /// The DHT service, once the node has started (its first input).
    pub fn dht(&self) -> Option<&Dht> {
        self.dht.as_deref()
    }

    /// Signs `value` under `key` with this node's identity and stores it at the k closest
    /// nodes. The version is the time in microseconds, so a later put replaces an earlier one;
    /// the record lives for the configured record TTL unless republished.
    pub fn dht_put(&mut self, now: Timestamp, key: NodeId, value: Vec<u8>) -> QueryId {
        let ttl = self.cfg.dht.record_ttl.as_secs();
        let record =
            Record::sign(self.ep.identity(), key, value, now.as_micros(), now.as_secs() + ttl);
        self.dht_put_record(now, record)
    }

    /// Stores an already signed record at the k closest nodes (e.g. one the master signed).
    /// A record that fails the checks is refused at once with
    /// [`DhtError::Refused`](crate::dht::DhtError::Refused).
    pub fn dht_put_record(&mut self, now: Timestamp, record: Record) -> QueryId {
        let query = self.dht_mut(now).put(now, record);
        self.dht_flush(now);
        query
    }

    /// Every record under `key` (one per publisher).
    pub fn dht_get(&mut self, now: Timestamp, key: NodeId) -> QueryId {
        let query = self.dht_mut(now).get(now, key);
        self.dht_flush(now);
        query
    }

    /// Announces that this node provides `content` (e.g. a content hash), with `offer` saying
    /// how to fetch it: a provider record under [`KeyKind::Provider`].
    pub fn dht_provide(&mut self, now: Timestamp, content: &[u8], offer: Vec<u8>) -> QueryId {
        self.dht_put(now, KeyKind::Provider.key(content), offer)
    }

    /// The provider records for `content`: the records of every holder among the k closest
    /// nodes, merged (one per provider), so a provider whose record reached only some of them
    /// is still found ([`Dht::get_all`]).
    pub fn dht_find_providers(&mut self, now: Timestamp, content: &[u8]) -> QueryId {
        let query = self.dht_mut(now).get_all(now, KeyKind::Provider.key(content));
        self.dht_flush(now);
        query
    }

    /// The records under `key` published by `publisher` or the master; other publishers'
    /// records are ignored ([`Dht::get_from`]).
    pub fn dht_get_from(&mut self, now: Timestamp, key: NodeId, publisher: NodeId) -> QueryId {
        let query = self.dht_mut(now).get_from(now, key, publisher);
        self.dht_flush(now);
        query
    }

    /// The contact record of `node`: under [`KeyKind::Contact`], published by `node` itself
    /// (or the master); records anyone else put under that key are ignored.
    pub fn dht_get_contact(&mut self, now: Timestamp, node: NodeId) -> QueryId {
        self.dht_get_from(now, KeyKind::Contact.key(node.as_bytes()), node)
    }

    /// The trust record `name` (e.g. `b"revocations"`): under [`KeyKind::Trust`], published
    /// by the master only; records anyone else put under that key are ignored.
    pub fn dht_get_trust(&mut self, now: Timestamp, name: &[u8]) -> QueryId {
        let master = self.ep.trust().network().master_id();
        self.dht_get_from(now, KeyKind::Trust.key(name), master)
    }

    /// What this node's DHT has sent so far, by class (query, maintenance, answers; see
    /// [`dht::traffic`](crate::dht::traffic)); all zero before the node started.
    pub fn dht_traffic(&self) -> DhtTraffic {
        self.dht.as_deref().map(Dht::traffic).unwrap_or_default()
    }

    /// The k nodes closest to `target`.
    pub fn dht_find_node(&mut self, now: Timestamp, target: NodeId) -> QueryId {
        let query = self.dht_mut(now).find_node(now, target);
        self.dht_flush(now);
        query
    }

    /// Switches DHT persistence on and restores what was saved before a restart (see
    /// [`Saved::from_tables`]); call it before or right after the
    /// node's first input. Afterwards [`poll_store`](Self::poll_store) yields the writes.
    pub fn dht_restore(&mut self, now: Timestamp, saved: Saved) {
        self.dht_mut(now).restore(now, saved);
        self.dht_flush(now);
    }

    /// The next write for the node's persistent store (the request log, the DHT), to be
    /// carried out in order.
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        if let Some(op) = self.poll_request_store() {
            return Some(op);
        }
        self.dht.as_mut()?.poll_store()
    }

    /// Starts a DHT query or store; its result comes back as a `NodeEvent::Dht` with the id returned.
    pub fn dht_command(&mut self, now: Timestamp, command: DhtCommand) -> QueryId {
        match command {
            DhtCommand::Put { key, value } => self.dht_put(now, key, value),
            DhtCommand::PutRecord(record) => self.dht_put_record(now, *record),
            DhtCommand::Get { key } => self.dht_get(now, key),
            DhtCommand::GetFrom { key, publisher } => self.dht_get_from(now, key, publisher),
            DhtCommand::Provide { content, offer } => self.dht_provide(now, &content, offer),
            DhtCommand::FindProviders { content } => self.dht_find_providers(now, &content),
            DhtCommand::FindNode { target } => self.dht_find_node(now, target),
        }
    }

    /// The service, created at the node's first input (it needs the time).
    fn dht_mut(&mut self, now: Timestamp) -> &mut Dht {
        let (me, master) = (self.node_id(), self.ep.trust().network().master_id());
        let (config, lan) = (&self.cfg.dht, self.cfg.local);
        let client = self.dht_client();
        self.dht.get_or_insert_with(|| {
            // Refresh targets only need to differ between nodes, not be secret.
            let mut seed = [0u8; 32];
            seed[..me.as_bytes().len()].copy_from_slice(me.as_bytes());
            let mut dht = Dht::new(now, me, master, config.clone(), seed);
            dht.set_local_network(lan);
            dht.set_client(now, client);
            Box::new(dht)
        })
    }

    pub(super) fn dht_connected(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        initiator: bool,
    ) {
        // Not while enrolling: the master answers anything but the enrollment request on that
        // session with a refusal, which ends the enrollment (the DHT's first lookup used to
        // race the master's answer in an enrollment storm).
        if !self.cfg.dht.enabled || self.ep.certificate().is_none() {
            return;
        }
        if addr == super::gsn::relay_addr(&peer) {
            // A relayed session: its address is a stand-in, no contact to hand on.
            return;
        }
        self.dht_sync_mode(now);
        self.dht_mut(now).handle_connected(now, peer, addr, initiator);
    }

    pub(super) fn dht_disconnected(&mut self, now: Timestamp, peer: NodeId) {
        if let Some(dht) = self.dht.as_mut() {
            dht.handle_disconnected(now, peer);
        }
    }

    /// Hands a message to the DHT; returns it when it is not the DHT's.
    pub(super) fn dht_message(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        message: Message,
    ) -> Option<Message> {
        if !self.cfg.dht.enabled {
            // Not a member: DHT requests are dropped (the asker times out and moves on).
            return (!crate::dht::is_dht_message(&message)).then_some(message);
        }
        let dht = crate::dht::is_dht_message(&message);
        let rest = self.dht_mut(now).handle_message(now, peer, addr, message);
        if dht {
            self.dht_linger(now, peer, addr);
        }
        rest
    }

    pub(super) fn dht_timers(&mut self, now: Timestamp) {
        if let Some(dht) = self.dht.as_mut() {
            if dht.poll_timeout().is_some_and(|t| t <= now) {
                dht.handle_timeout(now);
            }
        }
    }

    pub(super) fn dht_deadline(&self) -> Option<Timestamp> {
        self.dht.as_deref().and_then(Dht::poll_timeout)
    }

    /// Where a DHT message for `peer` at `addr` goes: over the session with the peer where
    /// one stands (through a GSN, or at another address), else to `addr`. A dial to the
    /// address the table holds would be dropped by the peer's NAT, and from a Linux router
    /// it would keep the direct path the relayed session is to upgrade to shut
    /// (`introduce.rs`).
    pub(super) fn dht_route(&self, addr: SocketAddr, peer: Option<NodeId>) -> SocketAddr {
        peer.and_then(|p| self.ep.peer_addr(&p)).unwrap_or(addr)
    }

    /// Whether this node only uses the DHT (see [`DhtMode`]): with [`DhtMode::Auto`], unless
    /// its NAT check found no NAT and nothing that keeps unsolicited inbound out. A child
    /// takes its LSN's class (`nat.rs`). With NAT checks off nothing is known: it serves.
    pub fn dht_client(&self) -> bool {
        match self.cfg.dht.get_mode() {
            DhtMode::Server => false,
            DhtMode::Client => true,
            _ if !self.cfg.nat_check => false,
            _ => {
                let class = self.nat_class();
                !(class.mapping == Mapping::Public && class.inbound != Some(false))
            }
        }
    }

    /// Tells the DHT whether it serves, as the NAT class now says.
    fn dht_sync_mode(&mut self, now: Timestamp) {
        let client = self.dht_client();
        if let Some(dht) = self.dht.as_mut() {
            dht.set_client(now, client);
        }
    }

    /// Sends what the DHT wants sent and reports its results.
    pub(super) fn dht_flush(&mut self, now: Timestamp) {
        self.dht_sync_mode(now);
        // With clients in the DHT, the contacts in tables and answers serve it, hence take
        // unsolicited inbound: a request's dial goes in full, and a contact that does not
        // answer is gone (no introduction, which only the master could give).
        let servers_only = self.cfg.dht.get_mode() == DhtMode::Auto && self.cfg.nat_check;
        let Some(dht) = self.dht.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(m) = dht.poll_message_to() {
            out.push(m);
        }
        let mut ours = Vec::new();
        while let Some(event) = dht.poll_event() {
            if self.gsn.dir.owns(event.query()) {
                ours.push(event);
            } else {
                self.events.push_back(NodeEvent::Dht(event));
            }
        }
        for (addr, peer, message) in out {
            let addr = self.dht_route(addr, peer);
            if let Some(peer) = peer.filter(|p| !servers_only && !self.ep.is_connected(p)) {
                // No port prediction for a DHT request: its lookup moves on to other
                // contacts, and prediction's handshakes were most of a node's WAN bytes.
                self.dial_peer(now, peer, addr, false);
            }
            // No session there yet: this send opens one (a handshake on the wire).
            if self.ep.peer_at(addr).is_none() && !self.ep.is_dialing(addr) {
                if let Some(dht) = self.dht.as_mut() {
                    dht.note_dial(&addr);
                }
            }
            self.send(now, addr, message);
        }
        for event in ours {
            self.on_directory_event(now, event);
        }
    }

    /// Keeps the session at `addr`, on which a DHT message from `peer` just arrived, open
    /// while silent ([`DhtConfig::session_linger`](crate::dht::DhtConfig::session_linger)).
    /// On arrival only: the peer holds a session it sends on, while one that only carried our
    /// messages may be gone at its end (the peer restarted, or answers on another session).
    /// Not the master's: the master closes idle sessions on its side whatever we do.
    fn dht_linger(&mut self, now: Timestamp, peer: NodeId, addr: SocketAddr) {
        if peer == self.ep.trust().network().master_id() {
            return;
        }
        let Some(update) = self.dht.as_mut().and_then(|d| d.session_used(now, peer, addr)) else {
            return;
        };
        let (keep, at, until) = update.keep;
        self.ep.linger(&keep, at, until);
        if let Some((gone, at)) = update.release {
            self.ep.linger(&gone, at, Timestamp::ZERO);
        }
    }
}
