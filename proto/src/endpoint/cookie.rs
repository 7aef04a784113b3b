//! Address validation under load, in the style of WireGuard's cookie reply and QUIC's Retry:
//! while a responder is busy (a quarter of `max_accepting` handshakes half-open), a message 1
//! that does not carry a cookie for its source gets a 21-byte cookie reply and costs no
//! public-key work. The initiator sends message 1 again with the cookie (the same Noise
//! message behind another header, see [`Packet::Hs1`](crate::secure::Packet)), which proves
//! that it receives at its address. A flood from spoofed sources never sees its cookies, so
//! under load it costs the responder one MAC per datagram and fills nothing.
//!
//! The cookie is stateless: HMAC-SHA1 (the `sha1` crate the core has; HMAC-SHA1 is a sound
//! MAC) under a secret that changes every [`COOKIE_PERIOD_SECS`], over the source address and
//! the initiator's session index, cut to 16 bytes. The current and the previous secret are
//! accepted, so a cookie lives between one and two periods. Nothing is remembered per source.

use std::net::SocketAddr;

use rand_core::RngCore;
use sha1::{Digest, Sha1};

use crate::{secure::COOKIE_LEN, Timestamp};

/// How often the secret changes. A cookie is good for one to two periods: long enough for a
/// retry over a slow path, short enough that a leaked one soon expires.
pub const COOKIE_PERIOD_SECS: u64 = 120;

const BLOCK: usize = 64;

/// The responder's secrets.
pub(crate) struct CookieJar {
    current: [u8; 32],
    previous: [u8; 32],
    /// The period `current` belongs to (`None` until first used).
    epoch: Option<u64>,
}

impl CookieJar {
    pub(crate) fn new() -> Self {
        CookieJar { current: [0; 32], previous: [0; 32], epoch: None }
    }

    /// Moves to `now`'s period, drawing a fresh secret from `rng` when it changed.
    fn rotate(&mut self, now: Timestamp, rng: &mut impl RngCore) {
        let epoch = now.as_secs() / COOKIE_PERIOD_SECS;
        match self.epoch {
            Some(e) if e == epoch => {}
            Some(e) if e + 1 == epoch => {
                self.previous = self.current;
                rng.fill_bytes(&mut self.current);
            }
            _ => {
                // First use, or idle for more than a period: no earlier secret is good.
                rng.fill_bytes(&mut self.current);
                rng.fill_bytes(&mut self.previous);
            }
        }
        self.epoch = Some(epoch);
    }

    /// The cookie for a message 1 from `src` with session index `sender`.
    pub(crate) fn issue(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        src: SocketAddr,
        sender: u32,
    ) -> [u8; COOKIE_LEN] {
        self.rotate(now, rng);
        mac(&self.current, src, sender)
    }

    /// Whether `cookie` is one we issued to `src` for `sender` in this period or the last.
    pub(crate) fn check(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        src: SocketAddr,
        sender: u32,
        cookie: &[u8; COOKIE_LEN],
    ) -> bool {
        self.rotate(now, rng);
        // Both compared in full (no early exit between them), each in constant time.
        let a = same(&mac(&self.current, src, sender), cookie);
        let b = same(&mac(&self.previous, src, sender), cookie);
        a | b
    }
}

/// HMAC-SHA1(secret, address ‖ port ‖ sender), first [`COOKIE_LEN`] bytes.
fn mac(secret: &[u8; 32], src: SocketAddr, sender: u32) -> [u8; COOKIE_LEN] {
    let ip = match src.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for (i, k) in secret.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha1::new()
        .chain_update(ipad)
        .chain_update(ip)
        .chain_update(src.port().to_be_bytes())
        .chain_update(sender.to_be_bytes())
        .finalize();
    let outer = Sha1::new().chain_update(opad).chain_update(inner).finalize();
    let mut out = [0u8; COOKIE_LEN];
    out.copy_from_slice(&outer[..COOKIE_LEN]);
    out
}

/// Constant-time equality.
fn same(a: &[u8; COOKIE_LEN], b: &[u8; COOKIE_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_cookie_is_good_for_its_source_and_index_for_one_to_two_periods() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut jar = CookieJar::new();
        let t0 = Timestamp::from_secs(1_700_000_000 / COOKIE_PERIOD_SECS * COOKIE_PERIOD_SECS);
        let src = addr("192.0.2.7:4000");
        let cookie = jar.issue(t0, &mut rng, src, 42);
        assert!(jar.check(t0, &mut rng, src, 42, &cookie));
        // Another port, address or index: refused.
        assert!(!jar.check(t0, &mut rng, addr("192.0.2.7:4001"), 42, &cookie));
        assert!(!jar.check(t0, &mut rng, addr("192.0.2.8:4000"), 42, &cookie));
        assert!(!jar.check(t0, &mut rng, src, 43, &cookie));
        let mut flipped = cookie;
        flipped[3] ^= 1;
        assert!(!jar.check(t0, &mut rng, src, 42, &flipped));
        // Still good in the next period, not in the one after.
        let next = t0 + std::time::Duration::from_secs(COOKIE_PERIOD_SECS);
        assert!(jar.check(next, &mut rng, src, 42, &cookie));
        let later = next + std::time::Duration::from_secs(COOKIE_PERIOD_SECS);
        assert!(!jar.check(later, &mut rng, src, 42, &cookie));
    }

    #[test]
    fn the_mac_is_hmac_sha1_over_the_mapped_address_port_and_index() {
        // Expected values from Python's hmac module (hmac.new(key, msg, hashlib.sha1)).
        let secret = [0x0b; 32];
        let hex = |c: [u8; COOKIE_LEN]| c.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(mac(&secret, addr("[::1]:1"), 7)), "b7de32fb1546a30382ee6afaadd42413");
        assert_eq!(
            hex(mac(&secret, addr("192.0.2.7:4000"), 42)),
            "7afff2cea92f40bd4b35936396789797"
        );
    }
}
