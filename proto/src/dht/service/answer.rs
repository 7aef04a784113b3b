//! Answering other nodes' `Kad*` requests: ping, find_node, find_value and store. Answers are
//! counted as [`TrafficClass::Answer`].

use std::net::SocketAddr;

use super::Dht;
use crate::{
    dht::traffic::TrafficClass,
    wire::{
        ErrorCode, ErrorMessage, KadNodes, KadPong, KadStore, KadStored, KadValue, Message, Record,
    },
    Timestamp,
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
            Message::KadPing(p) => Message::KadPong(KadPong { rpc: p.rpc }),
            Message::KadFindNode(f) => {
                let nodes = self.table.closest(&f.target, self.config.k);
                Message::KadNodes(KadNodes { rpc: f.rpc, nodes })
            }
            Message::KadFindValue(f) => {
                let records: Vec<Record> = self
                    .records
                    .get(&f.key)
                    .filter(|r| r.expires_at > now.as_secs())
                    .take(MAX_VALUES_PER_ANSWER)
                    .cloned()
                    .collect();
                let closer = if records.is_empty() {
                    self.table.closest(&f.key, self.config.k)
                } else {
                    vec![]
                };
                Message::KadValue(Box::new(KadValue { rpc: f.rpc, records, closer }))
            }
            Message::KadStore(s) => self.store(now, *s),
            other => return Some(other),
        };
        self.send(addr, answer, TrafficClass::Answer, None);
        None
    }

    /// Stores a record someone sent: a cache copy (a get's side effect) for the cache TTL
    /// only, anything else by the full rules. A refusal goes back as `Error` with the reason.
    fn store(&mut self, now: Timestamp, store: KadStore) -> Message {
        let KadStore { rpc, record, cache } = store;
        let stored = record.embedded_key().and_then(|key| {
            if cache {
                self.records.put_cached(now, record, &key)
            } else {
                self.records.put(now, record, &key)
            }
        });
        match stored {
            Ok(_) => Message::KadStored(KadStored { rpc }),
            Err(error) => Message::Error(ErrorMessage {
                seq: rpc,
                code: ErrorCode::REFUSED,
                detail: error.to_string(),
            }),
        }
    }
}
