//! Persistence of the [`Dht`]: restoring after a restart and writing the difference (see
//! [`persist`](crate::dht::persist)).

use std::collections::BTreeMap;

use super::{Dht, Persist, Purpose};
use crate::{
    dht::persist::{self, Saved, StoreOp, PERSIST_DELAY, RECORDS_TABLE, ROUTING_TABLE},
    dht::traffic::Cause,
    wire::Contact,
    NodeId, Timestamp,
};

impl Dht {
    /// Switches persistence on and takes back what was saved before a restart: records are
    /// verified and stored again (expired or forged ones are dropped), contacts go back into
    /// the routing table and a lookup for our own id checks them (those that fail to answer
    /// are dropped by the table's failure rule). From now on [`poll_store`](Self::poll_store)
    /// yields the writes that keep the store up to date.
    pub fn restore(&mut self, now: Timestamp, saved: Saved) {
        let mut p = Persist::default();
        for record in saved.records {
            p.records.insert((record.key, record.publisher), record.version);
            if let Ok(key) = record.embedded_key() {
                let _ = self.records.put(now, record, &key);
            }
        }
        for contact in saved.contacts {
            p.contacts.insert(contact.id, contact);
            self.table.handle_verified(now, contact);
        }
        p.at = Some(now + PERSIST_DELAY);
        self.persist = Some(p);
        if !self.table.is_empty() {
            self.bootstrapped = true;
            let me = self.me;
            self.start(now, me, Purpose::Refresh { cause: Cause::Bootstrap });
        }
    }

    /// The next write for the store (see [`persist`](super::persist)); none unless
    /// [`restore`](Self::restore) switched persistence on.
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.persist.as_mut()?.ops.pop_front()
    }

    /// Queues the writes that bring the store to the current records and contacts.
    pub(super) fn write_difference(&mut self) {
        let Some(p) = self.persist.as_mut() else { return };
        p.at = None;
        let mut records = BTreeMap::new();
        for record in self.records.iter() {
            let id = (record.key, record.publisher);
            records.insert(id, record.version);
            if p.records.get(&id) != Some(&record.version) {
                let (key, value) = (persist::record_key(record), persist::record_value(record));
                p.ops.push_back(StoreOp::Put { table: RECORDS_TABLE, key, value });
            }
        }
        for (key, publisher) in p.records.keys().filter(|id| !records.contains_key(id)) {
            let mut k = key.as_bytes().to_vec();
            k.extend_from_slice(publisher.as_bytes());
            p.ops.push_back(StoreOp::Remove { table: RECORDS_TABLE, key: k });
        }
        let contacts: BTreeMap<NodeId, Contact> =
            self.table.iter().map(|e| (e.contact.id, e.contact)).collect();
        for (id, contact) in &contacts {
            if p.contacts.get(id) != Some(contact) {
                let value = persist::contact_value(contact);
                p.ops.push_back(StoreOp::Put {
                    table: ROUTING_TABLE,
                    key: id.as_bytes().to_vec(),
                    value,
                });
            }
        }
        for id in p.contacts.keys().filter(|id| !contacts.contains_key(id)) {
            p.ops.push_back(StoreOp::Remove { table: ROUTING_TABLE, key: id.as_bytes().to_vec() });
        }
        p.records = records;
        p.contacts = contacts;
    }
}
