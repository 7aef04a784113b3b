//! When [`RecordStore`] asks for republishes: the seeded spread of republish times, the longer
//! waits of surplus copies, and the timer that expires records and queues the republishes
//! that are due (see the [parent module's docs](super), "Lifetimes").

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{RecordEvent, RecordStore};
use crate::{NodeId, Timestamp};

/// The longest a surplus copy waits between its republishes, in republish intervals: it
/// still republishes now and then, so a record whose k closest nodes all left is spread again
/// by the copies that remain.
pub const MAX_SURPLUS_BACKOFF: u32 = 8;

/// Republish times are spread over the last `1 / REPUBLISH_SPREAD` of the interval.
const REPUBLISH_SPREAD: u32 = 10;

impl RecordStore {
    /// Spreads republish times over the last tenth of the interval, drawn from `seed` (see
    /// the [module docs](super)); without it every record is republished a full interval after
    /// it was stored.
    pub fn seed(&mut self, seed: [u8; 32]) {
        self.rng = Some(ChaCha20Rng::from_seed(seed));
    }

    /// When a record stored (or republished) at `now` is next republished.
    pub(super) fn next_republish(&mut self, now: Timestamp) -> Timestamp {
        self.next_republish_after(now, 1)
    }

    /// When a copy republished at `now` with `backoff` intervals to wait is next republished.
    fn next_republish_after(&mut self, now: Timestamp, backoff: u32) -> Timestamp {
        let interval = self.republish_interval * backoff;
        let Some(rng) = self.rng.as_mut() else { return now + interval };
        let spread = interval / REPUBLISH_SPREAD;
        let micros = u64::try_from(spread.as_micros()).unwrap_or(u64::MAX).max(1);
        now + interval - std::time::Duration::from_micros(rng.next_u64() % micros)
    }

    /// Notes that our republish of `publisher`'s record under `key` found k nodes closer to
    /// the key than ourselves and stored it there: our copy is surplus, so its next republish
    /// waits twice as long as the last one did (up to [`MAX_SURPLUS_BACKOFF`] times the
    /// interval), and a store from a peer, whose view of the key's neighbourhood may have
    /// missed the closer nodes, does not bring it forward. The copy still answers gets.
    /// Returns whether we hold such a copy.
    pub fn surplus(&mut self, now: Timestamp, key: &NodeId, publisher: &NodeId) -> bool {
        let Some(held) = self.records.get(&(*key, *publisher)) else { return false };
        if held.republish_at.is_none() {
            return false;
        }
        let backoff = held.backoff.saturating_mul(2).clamp(2, MAX_SURPLUS_BACKOFF);
        let at = self.next_republish_after(now, backoff);
        if let Some(held) = self.records.get_mut(&(*key, *publisher)) {
            held.backoff = backoff;
            held.republish_at = Some(at);
        }
        true
    }

    /// A peer's republish names `r` (a [`KadRenew`](crate::wire::KadRenew)): when we hold that
    /// very version for the network (not as a cache copy) and it has not expired, its copy is
    /// renewed as a store of the same record would renew it, lifetime and republish time
    /// both. Returns whether it was; otherwise the peer stores it in full.
    pub fn renew(&mut self, now: Timestamp, r: &crate::wire::RecordRef) -> bool {
        let Some(held) = self.records.get(&(r.key, r.publisher)) else { return false };
        let own = Timestamp::from_secs(held.record.expires_at);
        if held.republish_at.is_none() || held.record.version != r.version || own <= now {
            return false;
        }
        let next = self.next_republish(now);
        let ttl = self.record_ttl;
        let Some(held) = self.records.get_mut(&(r.key, r.publisher)) else { return false };
        held.store_again(own.min(now + ttl), next);
        true
    }

    /// Notes that our republish found us among the k closest to `key`: the copy of
    /// `publisher`'s record is republished every interval again.
    pub fn responsible(&mut self, key: &NodeId, publisher: &NodeId) {
        if let Some(held) = self.records.get_mut(&(*key, *publisher)) {
            held.backoff = 1;
        }
    }

    /// How many nodes the last republish lookup of `publisher`'s record under `key` found
    /// closest to the key, ourselves not counted; 0 before the first. A later republish may
    /// skip its lookup when the routing table knows as many live contacts there (see
    /// `service/query.rs`): in a fleet whose tables hold fewer than k contacts, that count,
    /// not k, is what the lookup finds.
    pub fn neighbourhood(&self, key: &NodeId, publisher: &NodeId) -> usize {
        self.records.get(&(*key, *publisher)).map_or(0, |h| usize::from(h.neighbourhood))
    }

    /// Notes what a republish lookup found (see [`neighbourhood`](Self::neighbourhood)).
    pub fn found_neighbourhood(&mut self, key: &NodeId, publisher: &NodeId, nodes: usize) {
        if let Some(held) = self.records.get_mut(&(*key, *publisher)) {
            held.neighbourhood = u16::try_from(nodes).unwrap_or(u16::MAX);
        }
    }

    /// The earliest expiry or republish time.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.records.values().flat_map(|h| [Some(h.expires), h.republish_at]).flatten().min()
    }

    /// Drops expired records and queues republish requests that are due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let expired: Vec<(NodeId, NodeId)> =
            self.records.iter().filter(|(_, h)| h.expires <= now).map(|(k, _)| *k).collect();
        for (key, publisher) in expired {
            self.remove(&key, &publisher);
            self.events.push_back(RecordEvent::Removed { key, publisher });
        }
        let due: Vec<(NodeId, NodeId)> = self
            .records
            .iter()
            .filter(|(_, h)| h.republish_at.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for id in due {
            let next = self.next_republish(now);
            if let Some(held) = self.records.get_mut(&id) {
                held.republish_at = Some(next);
                self.events.push_back(RecordEvent::Republish { record: held.record.clone() });
            }
        }
    }
}
