//! Hole punching, the link layer's part (issue 16): dial a peer at every address an
//! introducer gave for it at once, and once a session with it stands (whichever handshake
//! answered first, ours or the peer's), drop the other attempts and move what waited on them
//! onto that session.

use std::net::SocketAddr;

use super::Endpoint;
use crate::{NodeId, Timestamp};

/// How long a punch ahead of the peer ([`Endpoint::punch_ahead`]) keeps its copies at the low
/// TTL: the peer punches once the introducer has our check-in, well within this unless a
/// host or the introducer is badly slow, and a full copy before the peer's punch would
/// reach its NAT too early. The retransmission after it goes in full, for the pairs that
/// need our packet to arrive (our NAT gives the peer another port than the one it punches).
pub const PUNCH_AHEAD_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

impl Endpoint {
    /// Dials `peer` at each of `addrs` now. A handshake already running to one of them (a
    /// dial the NAT swallowed) has its message 1 sent again at once, with a fresh
    /// retransmission timer: the introducer has just told the peer to open its NAT
    /// for us, so this copy gets through where the first did not.
    pub fn punch(&mut self, now: Timestamp, peer: NodeId, addrs: &[SocketAddr]) {
        if self.is_connected(&peer) {
            return;
        }
        self.punch_beside(now, peer, addrs);
    }

    /// Like [`punch`](Self::punch), even while a session with `peer` stands (one through a
    /// relay, which a direct session is to replace). A handshake that completes becomes the
    /// peer's session; the old one stays open until idle, so nothing in flight on it is lost.
    pub fn punch_beside(&mut self, now: Timestamp, peer: NodeId, addrs: &[SocketAddr]) {
        self.punch_with(now, peer, addrs, None, std::time::Duration::ZERO);
    }

    /// Like [`punch`](Self::punch) (or [`punch_beside`](Self::punch_beside) with `beside`),
    /// for the side that punches ahead of the peer (the introducer told us first): for `hold`
    /// (the first one always; [`PUNCH_AHEAD_HOLD`] is the overlay's choice) each address gets
    /// a NAT opener with [`EndpointConfig::punch_ttl`](super::EndpointConfig::punch_ttl) in
    /// place of message 1, opening our NAT without reaching the peer's; the retransmissions
    /// after it are message 1 with the full TTL. The peer, told
    /// a moment later, punches with the full TTL and finds our NAT open.
    pub fn punch_ahead(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addrs: &[SocketAddr],
        beside: bool,
        hold: std::time::Duration,
    ) {
        if !beside && self.is_connected(&peer) {
            return;
        }
        let ttl = self.config.punch_ttl;
        self.punch_with(now, peer, addrs, ttl, hold);
    }

    /// Like [`connect`](Self::connect), for a dial an introduction is to follow (we are
    /// behind a NAT that filters, and the peer may be too): in place of message 1 and its
    /// retransmissions, NAT openers go with
    /// [`EndpointConfig::punch_ttl`](super::EndpointConfig::punch_ttl) until the introduction's
    /// punch ([`punch`](Self::punch) and the like) or
    /// [`dial_in_full`](Self::dial_in_full). They open our NAT towards the peer without
    /// arriving at the peer's NAT before the peer has sent to us.
    pub fn connect_ahead(&mut self, now: Timestamp, addr: SocketAddr, expect: Option<NodeId>) {
        if self.by_addr.contains_key(&addr) || self.dial_by_addr.contains_key(&addr) {
            return;
        }
        let (ttl, until) = (self.config.punch_ttl, now + self.config.handshake_timeout);
        self.dial_ttl(now, addr, expect, ttl, until);
    }

    /// The dials towards `peer` that [`connect_ahead`](Self::connect_ahead) held back send
    /// their retransmissions in full from now on (no introduction is coming: the peer may
    /// still take unsolicited inbound). Returns how many there were.
    pub fn dial_in_full(&mut self, peer: &NodeId) -> usize {
        let held = self.dials.values_mut().filter(|d| d.expect == Some(*peer) && d.hold.is_some());
        held.map(|d| d.hold = None).count()
    }

    /// The held-back dials (see [`connect_ahead`](Self::connect_ahead)) to addresses
    /// `within` accepts send message 1 in full at once and from then on: after a move those
    /// are on our own network, where nothing needs opening and a NAT opener reaches nobody.
    /// Returns how many there were.
    pub fn dial_in_full_within(
        &mut self,
        now: Timestamp,
        within: impl Fn(&SocketAddr) -> bool,
    ) -> usize {
        let rto = self.config.handshake_rto;
        let mut resend = Vec::new();
        for dial in self.dials.values_mut().filter(|d| d.hold.is_some() && within(&d.addr)) {
            dial.hold = None;
            dial.rto = rto;
            dial.retransmit_at = now + rto;
            resend.push((dial.addr, dial.path, dial.hs1.clone()));
        }
        resend.sort_unstable_by_key(|(addr, ..)| *addr);
        let n = resend.len();
        for (addr, path, hs1) in resend {
            self.push_transmit(addr, path, hs1);
        }
        n
    }

    fn punch_with(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addrs: &[SocketAddr],
        ttl: Option<u8>,
        hold: std::time::Duration,
    ) {
        let rto = self.config.handshake_rto;
        for &addr in addrs {
            if self.by_addr.contains_key(&addr) {
                continue;
            }
            match self.dial_by_addr.get(&addr).copied() {
                Some(index) => {
                    let Some(dial) = self.dials.get_mut(&index) else { continue };
                    // A dial to this address meant for someone else (private addresses repeat
                    // across LANs: the peer's local address may be our LSN's) is left alone;
                    // one that expects nobody in particular is not bound to the peer either,
                    // or meeting whoever answers there would fail it.
                    if dial.expect.is_some_and(|e| e != peer) {
                        continue;
                    }
                    dial.rto = rto;
                    dial.retransmit_at = now + rto;
                    dial.hold = ttl.map(|t| (t, now + hold));
                    let (path, hs1) = (dial.path, dial.hs1.clone());
                    self.push_hs1(addr, path, &hs1, ttl);
                }
                None => self.dial_ttl(now, addr, Some(peer), ttl, now + hold),
            }
        }
    }

    /// Port prediction for a peer behind a NAT that gives every destination its own port:
    /// sends the message 1 of our handshake with `peer` at `at` (started by
    /// [`punch`](Self::punch)) also to up to `ports` other ports of `at`'s host, nearest
    /// first (`at`+1, `at`−1, `at`+2, …). Each copy opens our own NAT towards that port, so the
    /// peer's message 1 from its new port gets in; and where the peer's NAT already has that
    /// port mapped towards us, the copy gets through and is answered. Message 2 finds the
    /// handshake by its index, whichever port it comes from, and the session lives there.
    /// Returns how many copies were queued (none without a handshake to `at` for `peer`).
    /// With `ahead` (we punch ahead of the peer, see [`punch_ahead`](Self::punch_ahead)) NAT
    /// openers with [`EndpointConfig::punch_ttl`](super::EndpointConfig::punch_ttl) go in
    /// place of the copies: they only have to open our NAT.
    pub fn punch_predicted(
        &mut self,
        peer: NodeId,
        at: SocketAddr,
        ports: u16,
        ahead: bool,
    ) -> usize {
        let Some(dial) = self.dial_by_addr.get(&at).and_then(|i| self.dials.get(i)) else {
            return 0;
        };
        if dial.expect != Some(peer) {
            return 0;
        }
        let hs1 = dial.hs1.clone();
        let ttl = if ahead { self.config.punch_ttl } else { None };
        let base = i32::from(at.port());
        let mut sent = 0;
        for step in 1..=i32::from(ports) {
            let port = if step % 2 == 1 { base + (step + 1) / 2 } else { base - step / 2 };
            let Ok(port) = u16::try_from(port) else { continue };
            let addr = SocketAddr::new(at.ip(), port);
            if port == 0
                || self.by_addr.contains_key(&addr)
                || self.dial_by_addr.contains_key(&addr)
            {
                continue;
            }
            // Over UDP even when the dial itself went on over TCP (no answer for
            // `tcp_fallback`): message 1 is the same either way, and the punch needs UDP.
            self.push_hs1(addr, crate::Path::Udp, &hs1, ttl);
            sent += 1;
        }
        sent
    }

    /// Makes the session with `peer` at `addr`, if one is still open there (one a later
    /// session had superseded), the peer's session again. Returns whether there was one.
    pub fn use_session_at(&mut self, peer: &NodeId, addr: SocketAddr) -> bool {
        let Some(&index) = self.by_addr.get(&addr) else { return false };
        if self.links.get(&index).is_none_or(|l| l.peer != *peer) {
            return false;
        }
        self.by_peer.insert(*peer, index);
        true
    }

    /// Makes the session with `peer` at `addr` the peer's session again if the current one
    /// has heard nothing for `quiet` (the peer went back to an older path, and we only see it
    /// through what arrives there). Returns whether it switched.
    pub fn follow_to(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        addr: SocketAddr,
        quiet: std::time::Duration,
    ) -> bool {
        let Some(current) = self.link(peer) else { return false };
        if current.addr == addr || now.saturating_since(current.last_recv) < quiet {
            return false;
        }
        self.use_session_at(peer, addr)
    }

    /// A session with `peer` stands: every other handshake towards it (bound to it, or
    /// running to one of `also`) is dropped, and the messages queued behind those go over the
    /// session instead. Returns how many handshakes were dropped.
    pub fn settle_dials(&mut self, now: Timestamp, peer: NodeId, also: &[SocketAddr]) -> usize {
        let Some(&link) = self.by_peer.get(&peer) else { return 0 };
        let mut drop: Vec<u32> = self
            .dials
            .iter()
            .filter(|(_, d)| {
                d.expect == Some(peer) || (d.expect.is_none() && also.contains(&d.addr))
            })
            .map(|(i, _)| *i)
            .collect();
        drop.sort_unstable();
        for index in &drop {
            let Some(dial) = self.dials.remove(index) else { continue };
            self.dial_by_addr.remove(&dial.addr);
            for message in dial.queued {
                if self.links.contains_key(&link) {
                    if let Err(error) = self.send_on(now, link, &message) {
                        tracing::debug!(%peer, %error, "message queued on a punched dial lost");
                    }
                }
            }
        }
        drop.len()
    }
}
