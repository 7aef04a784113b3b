//! The relay through a Global Super Node (issue 16, phase 2; the master's side is
//! `overlay/master/gsn.rs`), both roles:
//!
//! * **Member.** An [`Introduction`](crate::wire::Introduction) may name a GSN. If no session
//!   with the peer stands [`RELAY_AFTER`] later (the punch failed), we give the peer a
//!   *relay address*: a stand-in socket address in the discard prefix `100::/64` (RFC 6666),
//!   never routed, derived from the peer's id. The endpoint dials the peer there like at any
//!   address; every datagram it sends there leaves inside a [`RelayData`] for the peer over
//!   our session with the GSN ([`Node::poll_transmit`]), and every [`Relayed`] from that GSN
//!   for the peer is fed back to the endpoint as a datagram from the relay address. So the
//!   end-to-end Noise session runs inside: the GSN sees ciphertext only and cannot forge it.
//!   To the endpoint the relay is one more path to the peer: whichever handshake answers
//!   first carries the session, and a later direct session replaces it.
//! * **Upgrade.** A NAT that defeated the punch may change (rebooted, replaced, a port
//!   forwarded). While a session runs through the relay and is in use, the member with the
//!   lower id asks the master for a fresh introduction [`UPGRADE_FIRST`] after the relay
//!   began, then at doubling intervals up to [`UPGRADE_MAX`]; both sides punch beside the
//!   relayed session ([`Endpoint::punch_beside`](crate::Endpoint::punch_beside)). A direct
//!   session that completes becomes the peer's session; the relayed one stays open until
//!   idle, so nothing in flight on it is lost. [`NodeEvent::PeerPath`](super::NodeEvent)
//!   reports the session's path whenever it comes up on, or leaves, a relay.
//! * **Fallback.** When a direct session that replaced a relayed one stops getting answers
//!   (the endpoint's "UDP lost mid-session" rule: the initiator moves it to TCP, the
//!   responder reports `PathSilent`; a NAT rebound, say), the session goes back to the relay
//!   at once, and tries at a direct path start over. The peer follows once its own direct
//!   session has been quiet for a while and the relay brings its datagrams.
//! * **GSN.** While the master's [`GsnGrant`] holds, a [`RelayData`] from a member with a
//!   session (hence certified) is passed on as [`Relayed`] to the member it names, if that
//!   one has a session with us too. A token bucket per circuit (ordered pair) and one per
//!   sending member across its circuits ([`RelayLimits`], `OverlayConfig::relay_limits`),
//!   each datagram at most [`MAX_RELAY_BYTES`]; no cap on a circuit's time or total bytes
//!   (unlike libp2p's 2 min and 128 KiB), so bulk data can flow. Beyond a bucket a datagram
//!   is dropped, as a full link drops it: the end-to-end session retransmits.
//!
//! Bounds: [`MAX_RELAY_PATHS`] relay paths and [`MAX_RELAY_WAITS`] pending ones per member;
//! [`MAX_CIRCUITS`] circuits and as many sending members per GSN (idle ones, unused for
//! [`CIRCUIT_IDLE`], make room).
//! Authorization (docs/AUTHORIZATION.md): `GsnGrant` only from the master; `RelayData` only
//! to a granted GSN, from a member; `Relayed` only from the GSN the master named for that
//! peer.

use std::{
    collections::{BTreeMap, HashMap},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use super::Node;
use crate::{
    overlay::RelayLimits,
    wire::{Contact, GsnGrant, Message, RelayData, Relayed, MAX_RELAY_BYTES},
    NodeId, Path, Timestamp, Transmit,
};

/// How long after an introduction a member turns to the relay if no session stands.
pub const RELAY_AFTER: Duration = Duration::from_millis(1500);
/// Relay paths a member keeps at once (more are refused: the dial fails as before).
pub const MAX_RELAY_PATHS: usize = 64;
/// Introductions waiting for [`RELAY_AFTER`] at once.
pub const MAX_RELAY_WAITS: usize = 32;
/// A relay path unused by any session this long is forgotten.
pub const RELAY_PATH_IDLE: Duration = Duration::from_secs(120);
/// Circuits (ordered member pairs) a GSN tracks at once.
pub const MAX_CIRCUITS: usize = 4096;
/// A circuit unused this long may be dropped to make room (its bucket starts full again).
pub const CIRCUIT_IDLE: Duration = Duration::from_secs(60);
/// How long a relayed session runs before the first try at a direct path beside it; each
/// failed try doubles the wait, up to [`UPGRADE_MAX`]. Longer than a Linux router keeps a
/// UDP flow that was never answered (30 s, `nf_conntrack_udp_timeout`): a packet that reached
/// the peer's router before its host had sent to us (the failed punch's) leaves such an
/// entry, and until it expires the host's packets to us leave from another port. On real
/// NAT (`cli/tests/reach.rs`) a first try at 30 s, as the entries were expiring, failed
/// for one of two pairs.
pub const UPGRADE_FIRST: Duration = Duration::from_secs(35);
/// The longest wait between tries at a direct path for a relayed session.
pub const UPGRADE_MAX: Duration = Duration::from_secs(600);
/// A direct session silent this long while the peer's datagrams arrive through the relay
/// is left for the relayed one: long enough that datagrams still in flight on the relay
/// after an upgrade do not pull the session back.
const FOLLOW_QUIET: Duration = Duration::from_secs(2);
/// A full circuit table is swept for idle circuits at most this often: without it, every
/// datagram for a new circuit would scan all [`MAX_CIRCUITS`] while the table stays full.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What this node relayed (as GSN) and used relays for (as member).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GsnStats {
    /// (GSN) Datagrams passed on.
    pub forwarded: u64,
    /// (GSN) Bytes passed on.
    pub forwarded_bytes: u64,
    /// (GSN) Datagrams dropped over a circuit's rate or because the target has no session.
    pub dropped: u64,
    /// (Member) Relay paths opened.
    pub paths: u64,
    /// (Member) Tries at a direct path for a relayed session (introductions asked).
    pub upgrade_tries: u64,
    /// (Member) Relayed sessions replaced by a direct one.
    pub upgraded: u64,
    /// (Member) Direct sessions that stopped getting answers and went back to the relay.
    pub fallbacks: u64,
}

#[derive(Clone, Copy, Debug)]
struct RelayPath {
    gsn: Contact,
    addr: SocketAddr,
    used: Timestamp,
    /// When to try a direct path next, while a session runs here.
    upgrade_at: Timestamp,
    /// The wait after that try.
    backoff: Duration,
}

impl RelayPath {
    /// Tries at a direct path start over: the first after [`UPGRADE_FIRST`].
    fn restart_upgrades(&mut self, now: Timestamp) {
        self.upgrade_at = now + UPGRADE_FIRST;
        self.backoff = UPGRADE_FIRST;
    }
}

/// A token bucket: its tokens (bytes) when last filled, and when.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: u64,
    at: Timestamp,
}

impl Bucket {
    /// The bucket's tokens at `now`, filled at `rate` bytes/s up to `burst`.
    fn filled(self, now: Timestamp, rate: u64, burst: u64) -> Bucket {
        let us = now.saturating_since(self.at).as_micros() as u64;
        let refill = us.saturating_mul(rate) / 1_000_000;
        Bucket { tokens: self.tokens.saturating_add(refill).min(burst), at: now }
    }
}

/// The relay state of one node.
#[derive(Clone, Debug, Default)]
pub(super) struct Gsn {
    /// Whether the master appointed us.
    granted: bool,
    /// Introductions that named a GSN: peer → (GSN, when to turn to it).
    wait: BTreeMap<NodeId, (Contact, Timestamp)>,
    paths: BTreeMap<NodeId, RelayPath>,
    by_addr: HashMap<SocketAddr, NodeId>,
    circuits: HashMap<(NodeId, NodeId), Bucket>,
    /// Per sending member, across its circuits.
    members: HashMap<NodeId, Bucket>,
    /// When the full circuit table was last swept, and how often it was (for tests).
    swept: Option<Timestamp>,
    sweeps: u64,
    /// The last time handed in, for wrapping transmits (`poll_transmit` is given none).
    pub(super) clock: Timestamp,
    stats: GsnStats,
    /// The GSN directory (`gsn_survey.rs`).
    pub(super) dir: super::gsn_survey::Directory,
}

/// The relay address standing for `peer`: in `100::/64`, which is never routed.
pub fn relay_addr(peer: &NodeId) -> SocketAddr {
    let b = peer.as_bytes();
    let w = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let ip = Ipv6Addr::new(0x100, 0, 0, 0, w(0), w(2), w(4), w(6));
    SocketAddr::new(IpAddr::V6(ip), w(8))
}

impl Node {
    /// Whether the master appointed this node a GSN.
    pub fn is_gsn(&self) -> bool {
        self.gsn.granted
    }

    /// What this node relayed and used relays for.
    pub fn gsn_stats(&self) -> GsnStats {
        self.gsn.stats
    }

    /// The GSN our session with `peer` runs through, if it is relayed.
    pub fn relayed_via(&self, peer: &NodeId) -> Option<NodeId> {
        let addr = self.ep.peer_addr(peer)?;
        let p = self.gsn.paths.get(peer).filter(|p| p.addr == addr)?;
        Some(p.gsn.id)
    }

    /// The GSN messages (this file's and `gsn_survey.rs`'s); others are handed back.
    pub(super) fn on_gsn_message(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        message: Message,
    ) -> Option<Message> {
        match message {
            Message::GsnGrant(g) => self.on_gsn_grant(now, peer, g),
            Message::RelayData(r) => self.on_relay_data(now, peer, *r),
            Message::Relayed(r) => self.on_relayed(now, peer, *r),
            Message::GsnProbe(p) => self.on_gsn_probe(now, peer, addr, p),
            Message::GsnProbeAck(a) => self.on_gsn_probe_ack(now, peer, a),
            other => return Some(other),
        }
        None
    }

    fn on_gsn_grant(&mut self, now: Timestamp, peer: NodeId, g: GsnGrant) {
        if peer != self.master_id() {
            tracing::debug!(?peer, "GSN grant not from the master: refused");
            self.refusals.gsn += 1;
            return;
        }
        self.gsn.granted = g.active && self.cfg.gsn;
        match g.ticket.filter(|_| self.gsn.granted) {
            Some(ticket) if self.take_ticket(now, ticket) => {}
            Some(_) => self.refusals.gsn += 1,
            None => self.drop_ticket(),
        }
    }

    /// An introduction named `gsn` for `peer`: turn to it if the punch fails.
    pub(super) fn relay_wait(&mut self, now: Timestamp, peer: NodeId, gsn: Contact) {
        let g = &mut self.gsn;
        if gsn.id == self.ep.node_id() || gsn.id == peer {
            return;
        }
        // A repeated introduction (the asker asks again while a datagram of the first was
        // lost) keeps the first one's deadline: the relay is not put off.
        if !g.wait.contains_key(&peer) && g.wait.len() < MAX_RELAY_WAITS {
            g.wait.insert(peer, (gsn, now + RELAY_AFTER));
        }
    }

    pub(super) fn gsn_deadline(&self) -> Option<Timestamp> {
        let waits = self.gsn.wait.values().map(|(_, t)| *t);
        // Upgrades are timed only for paths that carry the peer's session now.
        let ep = &self.ep;
        let upgrades = (self.gsn.paths.iter())
            .filter(|(id, p)| ep.peer_addr(id) == Some(p.addr))
            .map(|(_, p)| p.upgrade_at);
        waits.chain(upgrades).chain(self.survey_deadline()).min()
    }

    /// Tries a direct path for each relayed session whose turn has come: the side with the
    /// lower id asks the master for an introduction (so the two do not both ask), and the
    /// introduction has both sides punch beside the relayed session (`introduce.rs`). A
    /// direct session that completes takes over; the relayed one idles out.
    fn upgrade_timers(&mut self, now: Timestamp) {
        let me = self.ep.node_id();
        let due: Vec<NodeId> = (self.gsn.paths.iter())
            .filter(|(id, p)| p.upgrade_at <= now && self.ep.peer_addr(id) == Some(p.addr))
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            let Some(p) = self.gsn.paths.get_mut(&peer) else { continue };
            p.upgrade_at = now + p.backoff;
            p.backoff = (p.backoff * 2).min(UPGRADE_MAX);
            // Only a session in use is worth a direct path.
            let (in_use, addr) = (now.saturating_since(p.used) < RELAY_PATH_IDLE, p.addr);
            if me < peer && in_use && self.intro_may_ask(now, &peer) {
                self.gsn.stats.upgrade_tries += 1;
                // Port prediction only for a transfer: its handshakes cost more than the
                // relay does a session of small messages (a DHT's, say).
                let predict = self.bulk_with(&peer);
                self.intro_ask(now, peer, addr, predict);
            }
        }
    }

    /// The direct session with `peer` stopped getting answers over UDP (as initiator the
    /// endpoint moved it to TCP, which a NAT lets through even less; as responder it reported
    /// `PathSilent`): if we relayed to the peer before, go back to the relay at once: to the
    /// relayed session if it is still open, else through a new handshake over the relay.
    /// Tries at a direct path start again from [`UPGRADE_FIRST`].
    pub(super) fn relay_fallback(&mut self, now: Timestamp, peer: NodeId) {
        let Some(p) = self.gsn.paths.get_mut(&peer) else { return };
        if self.ep.peer_addr(&peer) == Some(p.addr) {
            return;
        }
        p.used = now;
        p.restart_upgrades(now);
        let (addr, gsn) = (p.addr, p.gsn);
        self.gsn.stats.fallbacks += 1;
        if self.ep.use_session_at(&peer, addr) {
            self.events.push_back(super::NodeEvent::PeerPath { peer, via: Some(gsn.id) });
            return;
        }
        if !self.ep.is_connected(&gsn.id) {
            self.ep.connect(now, gsn.addr.0, Some(gsn.id));
        }
        self.ep.punch_beside(now, peer, &[addr]);
    }

    /// A session with `peer` came up at `addr`: if it runs through a relay, or replaces a
    /// relayed session still open, reports which path it runs on.
    pub(super) fn relay_connected(&mut self, peer: NodeId, addr: SocketAddr) {
        let Some(p) = self.gsn.paths.get(&peer) else { return };
        let via = (p.addr == addr).then_some(p.gsn.id);
        if via.is_none() {
            if self.ep.peer_at(p.addr) != Some(peer) {
                // A direct session long after the relayed one idled out: no change of path.
                return;
            }
            self.gsn.stats.upgraded += 1;
        }
        self.events.push_back(super::NodeEvent::PeerPath { peer, via });
    }

    pub(super) fn gsn_timers(&mut self, now: Timestamp) {
        self.upgrade_timers(now);
        self.survey_timers(now);
        let due: Vec<(NodeId, Contact)> = self
            .gsn
            .wait
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(p, (g, _))| (*p, *g))
            .collect();
        for (peer, gsn) in due {
            self.gsn.wait.remove(&peer);
            if self.ep.is_connected(&peer) {
                continue;
            }
            if let Some(addr) = self.open_relay_path(now, peer, gsn) {
                if !self.ep.is_connected(&gsn.id) {
                    self.ep.connect(now, gsn.addr.0, Some(gsn.id));
                }
                self.ep.punch(now, peer, &[addr]);
            }
        }
    }

    /// Records a relay path to `peer` through `gsn`; `None` when full or taken.
    fn open_relay_path(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        gsn: Contact,
    ) -> Option<SocketAddr> {
        let addr = relay_addr(&peer);
        let g = &mut self.gsn;
        if let Some(p) = g.paths.get_mut(&peer) {
            p.gsn = gsn;
            p.used = now;
            p.restart_upgrades(now);
            return Some(addr);
        }
        if g.paths.len() >= MAX_RELAY_PATHS {
            let ep = &self.ep;
            g.paths.retain(|id, p| {
                ep.peer_addr(id) == Some(p.addr) || now.saturating_since(p.used) < RELAY_PATH_IDLE
            });
            g.by_addr.retain(|_, id| g.paths.contains_key(id));
            if g.paths.len() >= MAX_RELAY_PATHS {
                return None;
            }
        }
        if g.by_addr.get(&addr).is_some_and(|other| *other != peer) {
            return None;
        }
        let upgrade_at = now + UPGRADE_FIRST;
        g.paths
            .insert(peer, RelayPath { gsn, addr, used: now, upgrade_at, backoff: UPGRADE_FIRST });
        g.by_addr.insert(addr, peer);
        g.stats.paths += 1;
        Some(addr)
    }

    /// The next transmit for the driver: one the endpoint addressed to a relay address
    /// leaves inside a [`RelayData`] to the GSN instead.
    pub(super) fn next_transmit(&mut self) -> Option<Transmit> {
        // Bounded: each wrapped transmit queues at most one outer one (or none, while the
        // session with the GSN is being opened).
        loop {
            let t = self.ep.poll_transmit()?;
            let Some(&peer) = self.gsn.by_addr.get(&t.dst) else { return Some(t) };
            let Some(path) = self.gsn.paths.get_mut(&peer) else { return Some(t) };
            path.used = self.gsn.clock;
            let (now, gsn) = (self.gsn.clock, path.gsn.addr.0);
            let m = Message::RelayData(Box::new(RelayData { to: peer, bytes: t.payload }));
            if let Err(error) = self.ep.send_to(now, gsn, m) {
                tracing::debug!(%error, "relay send failed");
            }
        }
    }

    /// (Member) A GSN passed on a datagram from `r.from`.
    pub(super) fn on_relayed(&mut self, now: Timestamp, gsn: NodeId, r: Relayed) {
        let named = match self.gsn.paths.get(&r.from) {
            Some(p) => p.gsn.id == gsn,
            None => false,
        };
        // The peer may turn to the relay before our own wait ends: take it early.
        let waiting = self.gsn.wait.get(&r.from).filter(|(g, _)| g.id == gsn).map(|(g, _)| *g);
        let addr = if named {
            Some(relay_addr(&r.from))
        } else if let Some(g) = waiting {
            self.gsn.wait.remove(&r.from);
            self.open_relay_path(now, r.from, g)
        } else {
            None
        };
        let Some(addr) = addr else {
            tracing::debug!(?gsn, from = ?r.from, "relayed datagram from a GSN not named: refused");
            self.refusals.gsn += 1;
            return;
        };
        if let Some(p) = self.gsn.paths.get_mut(&r.from) {
            p.used = now;
        }
        self.ep.handle_datagram_on(now, addr, Path::Udp, &r.bytes);
        // The peer came back to the relay while our direct session with it is silent (it
        // fell back, below): follow it there.
        if self.ep.follow_to(now, &r.from, addr, FOLLOW_QUIET) {
            self.gsn.stats.fallbacks += 1;
            self.events.push_back(super::NodeEvent::PeerPath { peer: r.from, via: Some(gsn) });
        }
    }

    /// (GSN) A member asks us to pass a datagram on.
    pub(super) fn on_relay_data(&mut self, now: Timestamp, from: NodeId, r: RelayData) {
        let member = self.ep.peer_certificate(&from).is_some();
        if !self.gsn.granted || !member || r.to == from || r.bytes.len() > MAX_RELAY_BYTES {
            tracing::debug!(?from, granted = self.gsn.granted, member, "relay data refused");
            self.refusals.gsn += 1;
            return;
        }
        let Some(to_addr) = self.ep.peer_addr(&r.to).filter(|_| self.ep.is_connected(&r.to)) else {
            self.gsn.stats.dropped += 1;
            return;
        };
        let limits = self.cfg.relay_limits;
        if !self.gsn.take(now, (from, r.to), r.bytes.len() as u64, &limits) {
            self.gsn.stats.dropped += 1;
            return;
        }
        self.gsn.stats.forwarded += 1;
        self.gsn.stats.forwarded_bytes += r.bytes.len() as u64;
        let m = Message::Relayed(Box::new(Relayed { from, bytes: r.bytes }));
        self.send(now, to_addr, m);
    }
}

impl Gsn {
    /// Takes `n` bytes from the circuit's bucket and its sender's; false when either has
    /// not got them (nothing is taken then), or there is no room for a new circuit or
    /// sender.
    fn take(&mut self, now: Timestamp, key: (NodeId, NodeId), n: u64, l: &RelayLimits) -> bool {
        let full = |g: &Gsn| {
            (!g.circuits.contains_key(&key) && g.circuits.len() >= MAX_CIRCUITS)
                || (!g.members.contains_key(&key.0) && g.members.len() >= MAX_CIRCUITS)
        };
        if full(self) {
            if self.swept.is_some_and(|t| now.saturating_since(t) < SWEEP_EVERY) {
                return false;
            }
            self.swept = Some(now);
            self.sweeps += 1;
            self.circuits.retain(|_, v| now.saturating_since(v.at) < CIRCUIT_IDLE);
            self.members.retain(|_, v| now.saturating_since(v.at) < CIRCUIT_IDLE);
            if full(self) {
                return false;
            }
        }
        let fresh = |burst| Bucket { tokens: burst, at: now };
        let circuit = self.circuits.get(&key).copied().unwrap_or(fresh(l.circuit_burst));
        let member = self.members.get(&key.0).copied().unwrap_or(fresh(l.member_burst));
        let mut circuit = circuit.filled(now, l.circuit_rate, l.circuit_burst);
        let mut member = member.filled(now, l.member_rate, l.member_burst);
        let passes = circuit.tokens >= n && member.tokens >= n;
        if passes {
            circuit.tokens -= n;
            member.tokens -= n;
        }
        self.circuits.insert(key, circuit);
        self.members.insert(key.0, member);
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> NodeId {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&i.to_be_bytes());
        NodeId::from_bytes(b)
    }

    #[test]
    fn a_full_circuit_table_refuses_new_circuits_and_sweeps_at_most_once_a_second() {
        let mut g = Gsn::default();
        let l = RelayLimits::default();
        let t0 = Timestamp::ZERO;
        for i in 0..MAX_CIRCUITS as u32 {
            assert!(g.take(t0, (id(0), id(i + 1)), 10, &l));
        }
        // Full of busy circuits: a new one is refused, and a flood of new ones scans once.
        for i in 0..1_000u32 {
            assert!(!g.take(t0 + Duration::from_millis(10), (id(1), id(i)), 10, &l));
        }
        assert_eq!(g.sweeps, 1);
        // An existing circuit still flows.
        assert!(g.take(t0 + Duration::from_millis(20), (id(0), id(1)), 10, &l));
        // Once the others have idled, a new circuit takes their room.
        let later = t0 + CIRCUIT_IDLE + Duration::from_secs(1);
        assert!(g.take(later, (id(2), id(3)), 10, &l));
        assert_eq!(g.sweeps, 2);
        assert!(g.circuits.len() <= 2, "{} circuits kept", g.circuits.len());
    }

    #[test]
    fn a_member_keeps_to_its_share_across_circuits_and_each_circuit_to_its_own() {
        let l = RelayLimits {
            circuit_rate: 1_000,
            circuit_burst: 1_000,
            member_rate: 2_000,
            member_burst: 2_000,
        };
        let mut g = Gsn::default();
        let t0 = Timestamp::ZERO;
        // One circuit: its own bucket stops it first.
        assert!(g.take(t0, (id(1), id(2)), 1_000, &l));
        assert!(!g.take(t0, (id(1), id(2)), 1, &l));
        // The same member on a second circuit: the member's bucket has 1,000 left.
        assert!(g.take(t0, (id(1), id(3)), 1_000, &l));
        assert!(!g.take(t0, (id(1), id(4)), 1, &l), "a third circuit gets nothing more");
        // Another member is untouched by the first one's use.
        assert!(g.take(t0, (id(5), id(2)), 1_000, &l));
        // A refused datagram takes nothing: half a second later each circuit has 500 again,
        // the member 1,000 (its failed tries above took none).
        let later = t0 + Duration::from_millis(500);
        assert!(g.take(later, (id(1), id(2)), 500, &l));
        assert!(g.take(later, (id(1), id(3)), 500, &l));
        assert!(!g.take(later, (id(1), id(4)), 1, &l));
        // No limit on time or total bytes: a circuit within its rate flows for ever.
        let mut sent = 0u64;
        for s in 1..=600u64 {
            let t = later + Duration::from_secs(s);
            assert!(g.take(t, (id(6), id(7)), 1_000, &l), "second {s}");
            sent += 1_000;
        }
        assert_eq!(sent, 600_000);
        assert!(g.members.len() <= MAX_CIRCUITS && g.circuits.len() <= MAX_CIRCUITS);
    }
}
