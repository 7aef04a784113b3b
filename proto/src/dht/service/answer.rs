//! Answering other nodes' `Kad*` requests: ping, find_node, find_value and store. Answers are
//! counted as [`TrafficClass::Answer`].

use std::net::SocketAddr;

use super::Dht;
use crate::{
    dht::traffic::TrafficClass,
    wire::{
        Contact, ErrorCode, ErrorMessage, KadNodes, KadPong, KadRenew, KadRenewed, KadStore,
        KadStored, KadValue, Message, Record, MAX_RENEW_ENTRIES,
    },
    NodeId, Timestamp,
};

/// Most records one `KadValue` carries, so an answer stays within a datagram's budget.
const MAX_VALUES_PER_ANSWER: usize = 8;

impl Dht {
    /// Answers `message` when it is a request; returns it otherwise.
    pub(super) fn answer(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        message: Message,
    ) -> Option<Message> {
        let answer = match message {
            Message::KadPing(p) => Message::KadPong(KadPong { rpc: p.rpc, client: false }),
            Message::KadFindNode(f) => {
                let nodes = self.closest_for(&addr, &f.target);
                Message::KadNodes(KadNodes { rpc: f.rpc, nodes, client: false })
            }
            Message::KadFindValue(f) => {
                let records: Vec<Record> = self
                    .records
                    .get(&f.key)
                    .filter(|r| r.expires_at > now.as_secs())
                    .take(MAX_VALUES_PER_ANSWER)
                    .cloned()
                    .collect();
                let closer =
                    if records.is_empty() { self.closest_for(&addr, &f.key) } else { vec![] };
                Message::KadValue(Box::new(KadValue { rpc: f.rpc, records, closer, client: false }))
            }
            Message::KadStore(s) => self.store(now, *s),
            Message::KadRenew(r) => self.renew(now, *r),
            other => return Some(other),
        };
        self.send(addr, answer, TrafficClass::Answer, None);
        None
    }

    /// The k contacts closest to `target` that an asker at `asker` can use. A contact we know
    /// at an address on our own local network is handed to askers on that network only:
    /// elsewhere the address names nothing, or, as every home LAN uses the same private
    /// ranges, some other host on the asker's own LAN, and a dial to an address on its own
    /// LAN is never introduced (measured: in a 300-node night behind endpoint-independent
    /// NATs, 86 % of the republishes' failed lookup requests went to such addresses). Peers
    /// elsewhere learn the contact at the public address its sessions with them show.
    fn closest_for(&self, asker: &SocketAddr, target: &NodeId) -> Vec<Contact> {
        let k = self.config.k;
        if self.lan.is_none() || self.is_lan(asker) {
            return self.table.closest(target, k);
        }
        self.table.closest_where(target, k, |c| !self.is_lan(&c.addr.0))
    }

    /// Stores a record someone sent: a cache copy (a get's side effect) for the cache TTL
    /// only, anything else by the full rules. A refusal goes back as `Error` with the reason.
    fn store(&mut self, now: Timestamp, store: KadStore) -> Message {
        let KadStore { rpc, record, cache, .. } = store;
        let (key, publisher) = (record.key, record.publisher);
        let stored = record.embedded_key().and_then(|embedded| {
            if cache {
                self.records.put_cached(now, record, &embedded)
            } else {
                self.records.put(now, record, &embedded)
            }
        });
        match stored {
            Ok(_) => {
                if !cache && self.records.neighbourhood(&key, &publisher) == 0 {
                    // The storer found its closest by a lookup, and we are among them: what
                    // our table knows there now is the neighbourhood our own republish will
                    // check its table against (`RecordStore::neighbourhood`).
                    let known = self.table.closest(&key, self.config.k).len();
                    self.records.found_neighbourhood(&key, &publisher, known);
                }
                Message::KadStored(KadStored { rpc, client: false })
            }
            Err(error) => Message::Error(ErrorMessage {
                seq: rpc,
                code: ErrorCode::REFUSED,
                detail: error.to_string(),
            }),
        }
    }

    /// Renews the copies a peer's republish names (see `service/renew.rs`); the answer lists
    /// the ones not held here, for the peer to store in full.
    fn renew(&mut self, now: Timestamp, renew: KadRenew) -> Message {
        let KadRenew { rpc, records, .. } = renew;
        if records.len() > MAX_RENEW_ENTRIES {
            return Message::Error(ErrorMessage {
                seq: rpc,
                code: ErrorCode::REFUSED,
                detail: format!(
                    "a renew names {} records, at most {MAX_RENEW_ENTRIES}",
                    records.len()
                ),
            });
        }
        let mut missing = Vec::new();
        for (i, r) in (0u16..).zip(&records) {
            if !self.records.renew(now, r) {
                missing.push(i);
            }
        }
        Message::KadRenewed(KadRenewed { rpc, missing, client: false })
    }
}
