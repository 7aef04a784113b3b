//! Timers: handshake retransmission and expiry, confirmation, idle sessions, certificate
//! expiry, enrollment retries.

use std::net::SocketAddr;

use super::{DisconnectReason, Endpoint, Event};
use crate::{
    secure::HandshakeError,
    wire::{ErrorCode, ErrorMessage},
    NodeId, Timestamp,
};

impl Endpoint {
    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do (possibly a
    /// little early: a session that received a packet since it was filed is only refiled when
    /// its old time comes).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let timeout = self.config.handshake_timeout;
        let dials = self.dials.values().map(|d| {
            let t = d.retransmit_at.min(d.started + timeout);
            self.fallback_due(d).map_or(t, |f| t.min(f))
        });
        let accepts = self.accepts.values().map(|a| a.expires);
        let links = self.link_checks.first().map(|(t, _)| *t);
        let enroll = self.enroll_deadline.map(|d| d.min(self.enroll_retry_at));
        dials.chain(accepts).chain(links).chain(enroll).min()
    }

    /// When `link` next has something due: idle close, message 3 resend or give-up, or its
    /// peer's certificate expiring.
    pub(super) fn link_deadline(&self, l: &super::Link) -> Timestamp {
        let mut t = self.idle_close_at(l);
        if l.unconfirmed_hs3.is_some() {
            t = t.min(l.retransmit_at).min(l.created + self.config.handshake_timeout);
        }
        if let Some(probe) = self.probe_due(l) {
            t = t.min(probe);
        }
        if let Some(cert) = &l.certificate {
            t = t.min(Timestamp::from_secs(cert.body.expires_at));
        }
        t
    }

    /// Does whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.dial_timers(now);
        if self.accepts.values().any(|a| a.expires <= now) {
            self.accepts.retain(|_, a| a.expires > now);
            let live = &self.accepts;
            self.accept_by_remote.retain(|_, i| live.contains_key(i));
        }
        self.link_timers(now);
        self.enroll_timers(now);
        self.shrink_tables();
    }

    /// Gives back the memory of tables a flood grew once their entries are gone: a map kept
    /// under a third full is shrunk to one and a half times its length (see [`shrink`]).
    /// Half-open handshakes and sessions are the big ones: a handshake flood fills
    /// `max_accepting` of them (about 8 MB at the default 4,096), a flood of fresh identities
    /// grew `links` to 20 MB (some 600 bytes a slot), and a `HashMap` keeps its capacity when
    /// emptied; without this the master's memory stayed at its peak after every flood
    /// (issue 18).
    fn shrink_tables(&mut self) {
        shrink(&mut self.accepts);
        shrink(&mut self.accept_by_remote);
        shrink(&mut self.links);
        shrink(&mut self.by_peer);
        shrink(&mut self.by_addr);
        shrink(&mut self.dials);
        shrink(&mut self.dial_by_addr);
        if self.transmits.capacity() > SHRINK_FLOOR
            && self.transmits.len() < self.transmits.capacity() / 4
        {
            self.transmits.shrink_to(self.transmits.len() * 2);
        }
        if self.events.capacity() > SHRINK_FLOOR && self.events.len() < self.events.capacity() / 4 {
            self.events.shrink_to(self.events.len() * 2);
        }
    }

    fn dial_timers(&mut self, now: Timestamp) {
        let timeout = self.config.handshake_timeout;
        let expired: Vec<u32> = self
            .dials
            .iter()
            .filter(|(_, d)| now >= d.started + timeout)
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            if let Some(dial) = self.dials.remove(&index) {
                self.dial_by_addr.remove(&dial.addr);
                self.events.push_back(Event::ConnectFailed {
                    addr: dial.addr,
                    error: HandshakeError::Timeout,
                    unsent: dial.queued,
                });
            }
        }
        self.fallback_dials(now);
        let mut resend = Vec::new();
        for (&index, dial) in self.dials.iter_mut() {
            if now >= dial.retransmit_at {
                dial.rto *= 2;
                dial.retransmit_at = now + dial.rto;
                let held = dial.hold.filter(|(_, until)| now < *until);
                let ttl = held.filter(|_| dial.path == crate::Path::Udp).map(|(ttl, _)| ttl);
                resend.push((index, dial.addr, dial.path, dial.hs1.clone(), ttl));
            }
        }
        resend.sort_unstable_by_key(|(i, ..)| *i);
        for (_, addr, path, hs1, ttl) in resend {
            self.push_hs1(addr, path, &hs1, ttl);
        }
    }

    /// How long `l` may stay silent before it closes: `idle_timeout`, except on the master's
    /// side of an enrollment session (a peer without a certificate, which may only ask for
    /// one), where it is `handshake_timeout`. An enrolling node repeats its request every two
    /// `handshake_rto`s until it is answered, and a certificate makes the session an ordinary
    /// one; a refused or abandoned enrollment needs nothing more. So a flood of fresh
    /// identities holds the master's sessions for seconds, not minutes (issue 18).
    pub(super) fn idle_limit(&self, l: &super::Link) -> std::time::Duration {
        if l.certificate.is_none() && !l.initiator {
            self.config.handshake_timeout.min(self.config.idle_timeout)
        } else {
            self.config.idle_timeout
        }
    }

    /// When `l` closes for silence: the idle limit after the last datagram heard, or the end
    /// of its linger if that is later.
    fn idle_close_at(&self, l: &super::Link) -> Timestamp {
        (l.last_recv + self.idle_limit(l)).max(l.linger)
    }

    /// Keeps the session at `addr`, if it is `peer`'s, open while silent until `until`, past
    /// the idle timeout, or ends an earlier linger when `until` is sooner. Only the session
    /// that carried the traffic: of two sessions with one peer, one may carry nothing, and
    /// the peer closes its end of that one on the idle timeout. For sessions that carry
    /// occasional requests: a silent session costs a few hundred bytes of memory and nothing
    /// on the wire (it sends no keepalives), while a fresh one costs a handshake. A peer that
    /// closed its end meanwhile answers our next datagram with a stale-session notice, and we
    /// open a fresh session (`stale.rs`). Nothing happens without an established session.
    pub fn linger(&mut self, peer: &NodeId, addr: SocketAddr, until: Timestamp) {
        let Some(&index) = self.by_addr.get(&addr) else { return };
        let Some(link) = self.links.get_mut(&index) else { return };
        if link.peer == *peer && link.linger != until {
            link.linger = until;
            self.refile_link(index);
        }
    }

    fn link_timers(&mut self, now: Timestamp) {
        let timeout = self.config.handshake_timeout;
        let mut ended = Vec::new();
        let mut resend = Vec::new();
        let mut probes = Vec::new();
        // Only the links filed as due; the set is ordered by (time, index), so the order is
        // the same on every run.
        while let Some(&(at, index)) = self.link_checks.first() {
            if at > now {
                break;
            }
            self.link_checks.pop_first();
            let Some(close_at) = self.links.get(&index).map(|l| self.idle_close_at(l)) else {
                continue;
            };
            let link = self.links.get_mut(&index).expect("present: just looked up");
            let reason = if now >= close_at {
                Some(DisconnectReason::Idle)
            } else if link.unconfirmed_hs3.is_some() && now >= link.created + timeout {
                Some(DisconnectReason::Unconfirmed)
            } else if link
                .certificate
                .as_ref()
                .is_some_and(|c| now >= Timestamp::from_secs(c.body.expires_at))
            {
                Some(DisconnectReason::Expired)
            } else {
                None
            };
            if let Some(reason) = reason {
                // Still filed (under `at`, already removed) until `remove_link` runs.
                link.check_at = at;
                ended.push((index, reason));
                continue;
            }
            if let Some(hs3) = &link.unconfirmed_hs3 {
                if now >= link.retransmit_at {
                    link.rto *= 2;
                    link.retransmit_at = now + link.rto;
                    resend.push((index, link.addr, link.path, hs3.clone()));
                }
            }
            if self.probe_due(&self.links[&index]).is_some_and(|t| now >= t) {
                let every = self.config.udp_probe_interval;
                self.links.get_mut(&index).expect("present").probe_at = now + every;
                probes.push(index);
            }
            let link = &self.links[&index];
            let next = self.link_deadline(link);
            self.links.get_mut(&index).expect("present").check_at = next;
            self.link_checks.insert((next, index));
        }
        resend.sort_unstable_by_key(|(i, ..)| *i);
        for (_, addr, path, hs3) in resend {
            self.push_transmit(addr, path, hs3);
        }
        self.probe_udp(probes);
        // Sorted so that events come out in the same order on every run.
        ended.sort_unstable_by_key(|(i, _)| *i);
        for (index, reason) in ended {
            if reason == DisconnectReason::Unconfirmed {
                // Never reported as connected: report the failed connect, with its data.
                if let Some(link) = self.remove_link(index) {
                    self.events.push_back(Event::ConnectFailed {
                        addr: link.addr,
                        error: HandshakeError::Timeout,
                        unsent: link.queued,
                    });
                }
                continue;
            }
            let was_active =
                self.links.get(&index).is_some_and(|l| self.by_peer.get(&l.peer) == Some(&index));
            if let Some(link) = self.remove_link(index) {
                // Report only when the peer's last session ended; a superseded duplicate (from
                // simultaneous opens) leaves silently.
                if was_active && !self.by_peer.contains_key(&link.peer) {
                    self.events.push_back(Event::Disconnected { peer: link.peer, reason });
                }
            }
        }
    }

    fn enroll_timers(&mut self, now: Timestamp) {
        let Some(deadline) = self.enroll_deadline else { return };
        let master = self.config.trust.network().master_id();
        if now >= deadline {
            self.enroll_deadline = None;
            self.close(&master);
            self.events.push_back(Event::EnrollmentFailed {
                error: ErrorMessage {
                    seq: 0,
                    code: ErrorCode::TIMEOUT,
                    detail: "no answer from the master".into(),
                },
            });
        } else if now >= self.enroll_retry_at {
            match self.by_peer.get(&master) {
                Some(&index) => self.send_enroll_request(now, index),
                None => self.enroll_retry_at = deadline,
            }
        }
    }
}

/// Capacity below which a table is left as it is.
const SHRINK_FLOOR: usize = 64;

/// Shrinks `map` to room for one and a half times its length when that fits in fewer slots
/// (see [`Endpoint::shrink_tables`]); a table of [`SHRINK_FLOOR`] slots or fewer is left as
/// it is (room for half as many entries needs that many).
///
/// A `HashMap`'s slots come in powers of two, so a shrink frees something only when the target
/// fits in half the slots or fewer: the rule this replaced (under a quarter full, to twice the
/// length) kept 2,020 sessions in 8,192 slots (4.7 MB) after a flood of fresh identities, where
/// 4,096 hold them. The decision is left to `shrink_to`, which reallocates only when the slot
/// count falls: `capacity()` is no guide, as it leaves out slots that removals left marked
/// deleted. Amortised: a shrunk map is less than 7/8 full, and is only shrunk again once it
/// fits in half its slots, so either takes insertions or removals in proportion to its length.
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut std::collections::HashMap<K, V>) {
    map.shrink_to((map.len() + map.len() / 2).max(SHRINK_FLOOR / 2));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// 7,000 entries, then all but 2,020 removed: the slots go back to what 2,020 need.
    #[test]
    fn a_table_a_third_full_gives_back_half_its_slots() {
        let mut map: HashMap<u32, [u8; 64]> = (0..7_000).map(|i| (i, [0; 64])).collect();
        let grown = map.capacity();
        assert!(grown >= 7_000);
        map.retain(|&i, _| i < 2_020);
        shrink(&mut map);
        assert!(map.capacity() <= grown / 2, "{} of {grown} slots kept", map.capacity());
        assert!(map.capacity() >= 3_030, "room to grow again: {}", map.capacity());
        map.clear();
        shrink(&mut map);
        assert!(map.capacity() <= SHRINK_FLOOR, "an empty table keeps {}", map.capacity());
    }

    /// A table that still needs its slots keeps them: no reallocation on every timeout.
    #[test]
    fn a_table_over_half_full_keeps_its_slots() {
        let mut map: HashMap<u32, u32> = (0..7_000).map(|i| (i, i)).collect();
        // Values live in the slots: one that moved was reallocated.
        let before: *const u32 = &map[&0];
        map.retain(|&i, _| i < 4_000);
        shrink(&mut map);
        assert_eq!(&map[&0] as *const u32, before, "reallocated");
    }

    /// Small tables are left alone: nothing worth freeing, and no churn.
    #[test]
    fn a_small_table_keeps_its_slots() {
        let mut map: HashMap<u32, u32> = (0..50).map(|i| (i, i)).collect();
        let before = map.capacity();
        map.clear();
        shrink(&mut map);
        assert_eq!(map.capacity(), before);
    }
}
