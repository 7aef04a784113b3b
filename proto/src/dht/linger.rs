//! Which sessions the DHT keeps open while silent ([`DhtConfig::session_linger`]): the most
//! recently used, at most [`DhtConfig::max_lingering`] of them. Bookkeeping only; the node
//! tells its endpoint (`Endpoint::linger`).

use std::{collections::BTreeMap, net::SocketAddr};

use super::DhtConfig;
use crate::{NodeId, Timestamp};

/// The peers whose sessions linger, with when and at which address each was last used.
#[derive(Clone, Debug, Default)]
pub struct Lingering {
    last_used: BTreeMap<NodeId, (Timestamp, SocketAddr)>,
}

/// What the endpoint is to do after a DHT message went over a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LingerUpdate {
    /// Keep the session with this peer, at this address, open until then.
    pub keep: (NodeId, SocketAddr, Timestamp),
    /// Let this peer's session (at this address) close on the idle timeout again: the least
    /// recently used, pushed out by the bound.
    pub release: Option<(NodeId, SocketAddr)>,
}

impl Lingering {
    /// Notes that a DHT message came from `peer` at `addr` at `now`. `None` when
    /// lingering is off (zero linger or zero bound).
    pub fn used(
        &mut self,
        config: &DhtConfig,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
    ) -> Option<LingerUpdate> {
        if config.session_linger.is_zero() || config.max_lingering == 0 {
            return None;
        }
        self.last_used.insert(peer, (now, addr));
        let release = if self.last_used.len() > config.max_lingering {
            // Oldest use first; ties by id, so every run picks the same.
            let oldest = self.last_used.iter().min_by_key(|(id, (t, _))| (*t, **id));
            let oldest = oldest.map(|(id, (_, addr))| (*id, *addr));
            oldest.inspect(|(id, _)| {
                self.last_used.remove(id);
            })
        } else {
            None
        };
        Some(LingerUpdate { keep: (peer, addr, now + config.session_linger), release })
    }

    /// Forgets `peer`, whose session ended.
    pub fn ended(&mut self, peer: &NodeId) {
        self.last_used.remove(peer);
    }

    /// How many sessions linger.
    pub fn len(&self) -> usize {
        self.last_used.len()
    }

    /// Whether none does.
    pub fn is_empty(&self) -> bool {
        self.last_used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(b: u8) -> NodeId {
        NodeId::from_bytes([b; 20])
    }

    fn addr(b: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, b], 4000))
    }

    #[test]
    fn the_least_recently_used_is_released_at_the_bound() {
        let config = DhtConfig::default().max_lingering(2);
        let mut l = Lingering::default();
        let t = |s| Timestamp::from_secs(s);
        let first = l.used(&config, t(1), id(1), addr(1)).unwrap();
        assert_eq!(first.keep, (id(1), addr(1), t(1) + DEFAULT_SESSION_LINGER));
        assert_eq!(first.release, None);
        assert_eq!(l.used(&config, t(2), id(2), addr(2)).unwrap().release, None);
        // Peer 1 used again: peer 2 is now the oldest.
        assert_eq!(l.used(&config, t(3), id(1), addr(1)).unwrap().release, None);
        let third = l.used(&config, t(4), id(3), addr(3)).unwrap();
        assert_eq!(third.release, Some((id(2), addr(2))));
        assert_eq!(l.len(), 2);
        l.ended(&id(1));
        assert_eq!(l.used(&config, t(5), id(4), addr(4)).unwrap().release, None);
    }

    #[test]
    fn zero_linger_or_bound_switches_it_off() {
        let mut l = Lingering::default();
        let off = DhtConfig::default().session_linger(Duration::ZERO);
        assert_eq!(l.used(&off, Timestamp::from_secs(1), id(1), addr(1)), None);
        let off = DhtConfig::default().max_lingering(0);
        assert_eq!(l.used(&off, Timestamp::from_secs(1), id(1), addr(1)), None);
        assert!(l.is_empty());
    }

    use super::super::DEFAULT_SESSION_LINGER;
}
