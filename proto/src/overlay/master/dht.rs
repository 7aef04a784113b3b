//! The master's part in the DHT: a bootstrap node. Every node meets the master, so the master's
//! routing table links the subnets' DHT neighbourhoods; it answers `Kad*` requests and holds
//! records like any node.

use std::net::SocketAddr;

use super::Master;
use crate::{dht::Dht, wire::Message, NodeId, Timestamp};

impl Master {
    /// The DHT service, once the master has started (its first input).
    pub fn dht(&self) -> Option<&Dht> {
        self.dht.as_ref()
    }

    fn dht_mut(&mut self, now: Timestamp) -> &mut Dht {
        let me = self.node_id();
        let config = self.cfg.dht.clone();
        self.dht.get_or_insert_with(|| {
            // Refresh targets only need to differ between nodes, not be secret.
            let mut seed = [0u8; 32];
            seed[..me.as_bytes().len()].copy_from_slice(me.as_bytes());
            let mut dht = Dht::new(now, me, me, config, seed);
            // The master serves unless told otherwise: every node meets it.
            dht.set_client(now, dht.config().get_mode() == crate::dht::DhtMode::Client);
            dht
        })
    }

    pub(super) fn dht_connected(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        initiator: bool,
    ) {
        if !self.cfg.dht.enabled {
            return;
        }
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
        self.dht_mut(now).handle_message(now, peer, addr, message)
    }

    pub(super) fn dht_timers(&mut self, now: Timestamp) {
        if let Some(dht) = self.dht.as_mut() {
            if dht.poll_timeout().is_some_and(|t| t <= now) {
                dht.handle_timeout(now);
            }
        }
    }

    pub(super) fn dht_deadline(&self) -> Option<Timestamp> {
        self.dht.as_ref().and_then(Dht::poll_timeout)
    }

    /// Sends what the DHT wants sent. The master starts no queries of its own, so there are
    /// no results to report.
    pub(super) fn dht_flush(&mut self, now: Timestamp) {
        let Some(dht) = self.dht.as_mut() else { return };
        let mut out = Vec::new();
        while let Some(m) = dht.poll_message() {
            out.push(m);
        }
        while dht.poll_event().is_some() {}
        for (addr, message) in out {
            self.send(now, addr, message);
        }
    }
}
