//! Handshake rate limits: token buckets per source IP and per source prefix (/24 for IPv4,
//! /48 for IPv6), checked before a responder does any public-key work for a message 1.
//!
//! Spoofing a port is free, so a source is its IP. The prefix bucket catches a flood spread
//! over one network; a flood from spoofed sources all over the internet is bounded by
//! `max_accepting` (half-open handshakes) instead. Time comes in as `now`: no clock is read.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
};

use crate::Timestamp;

/// A token bucket's shape: `per_sec` tokens a second, at most `burst` saved up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate, handshakes per second.
    pub per_sec: u32,
    /// Largest burst allowed after a quiet spell.
    pub burst: u32,
}

/// Default per source IP: an office of hundreds behind one NAT address reaches the master
/// through its LSN, so one IP rarely needs more than a few handshakes a second; 50/s with a
/// burst of 200 leaves room for a whole subnet's morning and mobility storms.
pub const DEFAULT_PER_SOURCE: RateLimit = RateLimit { per_sec: 50, burst: 200 };

/// Default per /24 (IPv4) or /48 (IPv6): four busy sources' worth.
pub const DEFAULT_PER_PREFIX: RateLimit = RateLimit { per_sec: 200, burst: 800 };

/// Default for messages 1 a responder answers in all without address validation (from any
/// number of sources): each costs public-key work, so beyond this rate, or once a quarter of
/// `max_accepting` is half-open, a source must first return a cookie (`endpoint/cookie.rs`).
/// 256/s with a burst of 512 is a fraction of a core's worth of Diffie-Hellman; a real peer
/// over the limit pays one round trip more, a flood from spoofed sources pays for itself.
pub const DEFAULT_UNVALIDATED: RateLimit = RateLimit { per_sec: 256, burst: 512 };

/// Most sources (and, separately, prefixes) tracked at once. A full table first forgets every
/// bucket that has refilled (it carries no information); if all are still draining, a new
/// source is not tracked and is limited only by its prefix and by `max_accepting`.
pub const MAX_TRACKED: usize = 4096;

/// Tokens are counted in millionths, so refills need no floating point.
const UNIT: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    at: Timestamp,
}

#[derive(Debug)]
struct Buckets<K> {
    limit: RateLimit,
    table: HashMap<K, Bucket>,
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    fn new(limit: RateLimit) -> Self {
        Buckets { limit, table: HashMap::new() }
    }

    fn full(&self) -> u64 {
        u64::from(self.limit.burst) * UNIT
    }

    fn refilled(&self, bucket: Bucket, now: Timestamp) -> u64 {
        refill(self.limit, bucket, now)
    }

    /// Whether `key` may spend a token now; `None` when the table is full and the key is not
    /// tracked.
    fn check(&self, key: &K, now: Timestamp) -> Option<bool> {
        match self.table.get(key) {
            Some(b) => Some(self.refilled(*b, now) >= UNIT),
            None if self.table.len() < MAX_TRACKED => Some(self.limit.burst >= 1),
            None => None,
        }
    }

    fn spend(&mut self, key: K, now: Timestamp) {
        let full = self.full();
        let tokens = match self.table.get(&key) {
            Some(b) => self.refilled(*b, now),
            None if self.table.len() < MAX_TRACKED => full,
            None => return,
        };
        self.table.insert(key, Bucket { tokens: tokens.saturating_sub(UNIT), at: now });
    }

    /// Forgets every bucket that has refilled to its burst: it would behave as a new one.
    fn sweep(&mut self, now: Timestamp) {
        let (full, limit) = (self.full(), self.limit);
        self.table.retain(|_, b| refill(limit, *b, now) < full);
    }
}

/// A bucket's tokens at `now`, capped at its burst.
fn refill(limit: RateLimit, bucket: Bucket, now: Timestamp) -> u64 {
    let elapsed = now.as_micros().saturating_sub(bucket.at.as_micros());
    // per_sec tokens a second = per_sec millionths of a token a microsecond.
    let gained = elapsed.saturating_mul(u64::from(limit.per_sec));
    bucket.tokens.saturating_add(gained).min(u64::from(limit.burst) * UNIT)
}

/// The prefix a source belongs to: its /24 or /48.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Prefix {
    V4([u8; 3]),
    V6([u8; 6]),
}

fn prefix(ip: IpAddr) -> Prefix {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Prefix::V4([o[0], o[1], o[2]])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => prefix(IpAddr::V4(v4)),
            None => {
                let o = v6.octets();
                Prefix::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        },
    }
}

/// The responder's handshake rate limits.
#[derive(Debug)]
pub(crate) struct HandshakeLimiter {
    sources: Buckets<IpAddr>,
    prefixes: Buckets<Prefix>,
    /// One bucket for every message 1 answered without a cookie.
    unvalidated: Buckets<()>,
}

/// Which limit refused a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limited {
    /// The source IP's bucket is empty.
    Source,
    /// The source's /24 or /48 bucket is empty.
    Prefix,
}

impl HandshakeLimiter {
    pub(crate) fn new(
        per_source: RateLimit,
        per_prefix: RateLimit,
        unvalidated: RateLimit,
    ) -> Self {
        HandshakeLimiter {
            sources: Buckets::new(per_source),
            prefixes: Buckets::new(per_prefix),
            unvalidated: Buckets::new(unvalidated),
        }
    }

    /// Spends one of the handshakes answered without address validation, if any is left.
    pub(crate) fn unvalidated(&mut self, now: Timestamp) -> bool {
        let left = self.unvalidated.check(&(), now) == Some(true);
        if left {
            self.unvalidated.spend((), now);
        }
        left
    }

    /// Admits one handshake from `src` at `now`, or says which limit refused it. A refused
    /// handshake spends nothing, so a flood cannot drain a bucket below empty.
    pub(crate) fn admit(&mut self, src: SocketAddr, now: Timestamp) -> Result<(), Limited> {
        let ip = src.ip();
        let net = prefix(ip);
        if self.sources.table.len() >= MAX_TRACKED {
            self.sources.sweep(now);
        }
        if self.prefixes.table.len() >= MAX_TRACKED {
            self.prefixes.sweep(now);
        }
        if self.sources.check(&ip, now) == Some(false) {
            return Err(Limited::Source);
        }
        if self.prefixes.check(&net, now) == Some(false) {
            return Err(Limited::Prefix);
        }
        self.sources.spend(ip, now);
        self.prefixes.spend(net, now);
        Ok(())
    }

    /// Sources and prefixes tracked now (each at most [`MAX_TRACKED`]).
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        (self.sources.table.len(), self.prefixes.table.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_micros(1_000_000_000 + ms * 1000)
    }

    fn limiter() -> HandshakeLimiter {
        HandshakeLimiter::new(
            RateLimit { per_sec: 10, burst: 20 },
            RateLimit { per_sec: 50, burst: 100 },
            RateLimit { per_sec: 2, burst: 3 },
        )
    }

    #[test]
    fn the_unvalidated_budget_is_one_bucket_for_all_sources() {
        let mut l = limiter();
        assert!((0..3).all(|_| l.unvalidated(at(0))), "the burst");
        assert!(!l.unvalidated(at(0)), "then nothing");
        assert!(l.unvalidated(at(500)), "2 a second: one more half a second later");
        assert!(!l.unvalidated(at(500)));
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_flood_from_one_source_is_cut_at_its_burst_while_another_source_still_gets_in() {
        let mut l = limiter();
        let admitted = (0..1000)
            .filter(|i| l.admit(addr(&format!("192.0.2.7:{}", 1000 + i)), at(0)).is_ok())
            .count();
        assert_eq!(admitted, 20, "the burst, whatever ports the flood uses");
        assert_eq!(l.admit(addr("192.0.2.7:9"), at(0)), Err(Limited::Source));
        assert_eq!(l.admit(addr("198.51.100.1:9"), at(0)), Ok(()));
    }

    #[test]
    fn buckets_refill_at_their_rate() {
        let mut l = limiter();
        for _ in 0..20 {
            l.admit(addr("192.0.2.7:1"), at(0)).unwrap();
        }
        assert!(l.admit(addr("192.0.2.7:1"), at(0)).is_err());
        // 10/s: one token every 100 ms.
        assert!(l.admit(addr("192.0.2.7:1"), at(99)).is_err());
        assert!(l.admit(addr("192.0.2.7:1"), at(100)).is_ok());
        assert!(l.admit(addr("192.0.2.7:1"), at(150)).is_err());
        let after = at(100) + Duration::from_secs(1);
        let admitted = (0..100).filter(|_| l.admit(addr("192.0.2.7:1"), after).is_ok()).count();
        assert_eq!(admitted, 10, "one second refills ten tokens");
    }

    #[test]
    fn a_flood_spread_over_a_slash_24_is_cut_at_the_prefix_limit() {
        let mut l = limiter();
        let mut admitted = 0;
        for host in 1..=254u32 {
            for _ in 0..5 {
                if l.admit(addr(&format!("203.0.113.{host}:5")), at(0)).is_ok() {
                    admitted += 1;
                }
            }
        }
        assert_eq!(admitted, 100, "the /24's burst, though no source reached its own");
        assert_eq!(l.admit(addr("203.0.113.9:5"), at(0)), Err(Limited::Prefix));
        assert_eq!(l.admit(addr("203.0.114.9:5"), at(0)), Ok(()), "the next /24 is another prefix");
        // IPv6: the /48.
        let v6 = (0..200)
            .filter(|i| l.admit(addr(&format!("[2001:db8:1:{i:x}::1]:5")), at(0)).is_ok())
            .count();
        assert_eq!(v6, 100);
    }

    #[test]
    fn a_million_spoofed_sources_keep_the_tables_within_their_bound() {
        let mut l = limiter();
        for i in 0u32..1_000_000 {
            let ip = std::net::Ipv4Addr::from(
                0x0a00_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
            );
            // One per millisecond: buckets of quiet sources refill and are forgotten.
            let _ = l.admit(SocketAddr::new(ip.into(), 1), at(u64::from(i)));
            let (sources, prefixes) = l.tracked();
            assert!(
                sources <= MAX_TRACKED && prefixes <= MAX_TRACKED,
                "{sources} {prefixes} at {i}"
            );
        }
        // A legitimate source still gets in at the end.
        assert_eq!(l.admit(addr("192.0.2.1:1"), at(1_000_001)), Ok(()));
    }
}
