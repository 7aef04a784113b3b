//! [`Endpoint`]: the sans-IO link layer. It owns a node's secure sessions: opens them (Noise XX
//! with admission certificates), accepts them, enrolls with the master, seals and opens data,
//! and keeps timers. It never touches a socket or a clock.
//!
//! Split by concern: [`dial`](self) (initiator side), `accept` (responder side), `data` (the
//! data path and enrollment messages), `timers` (retransmission, expiry, idle).

mod accept;
mod command;
mod config;
mod cookie;
mod data;
mod dial;
mod event;
mod limiter;
mod path;
pub(crate) use path::is_relay_addr;
mod punch;
mod rejections;
mod renew;
mod stale;
mod timers;

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::SocketAddr,
};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

pub use self::{
    command::EndpointCommand,
    config::{EndpointConfig, DEFAULT_PUNCH_TTL},
    cookie::COOKIE_PERIOD_SECS,
    event::{CommandError, DisconnectReason, Event},
    limiter::{
        RateLimit, DEFAULT_PER_PREFIX, DEFAULT_PER_SOURCE, DEFAULT_UNVALIDATED, MAX_TRACKED,
    },
    punch::PUNCH_AHEAD_HOLD,
    rejections::Rejections,
};
use crate::{
    secure::{self, Handshake, Session},
    trust::{Certificate, RevocationError, RevocationList, TrustStore},
    wire::{self, Message, WireError},
    Identity, NodeId, Path, Timestamp, Transmit,
};

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No session with that peer.
    #[error("no session with {0}")]
    NoSession(NodeId),
    /// The message does not fit one frame.
    #[error(transparent)]
    Encode(#[from] WireError),
    /// The session cannot seal more (counter exhausted or frame too large).
    #[error(transparent)]
    Session(#[from] secure::SessionError),
    /// Too many messages already wait for this address's handshake.
    #[error("send queue for {0} is full")]
    QueueFull(SocketAddr),
    /// This node has no certificate yet and the address is not the master.
    #[error("not enrolled yet")]
    NotEnrolled,
}

/// An established session and what we know of its peer.
pub(crate) struct Link {
    session: Session,
    peer: NodeId,
    addr: SocketAddr,
    /// The path our datagrams take to the peer.
    path: Path,
    /// (Initiator on [`Path::Tcp`]) When to probe UDP next.
    probe_at: Timestamp,
    /// The peer's certificate; `None` on the master's side of an enrollment session.
    certificate: Option<Box<Certificate>>,
    initiator: bool,
    /// Initiator: message 3, resent until the responder proves it has the session. While it
    /// is `Some`, the link is unconfirmed: data waits in `queued`, because a data packet that
    /// overtook message 3 would be dropped by the responder.
    unconfirmed_hs3: Option<Vec<u8>>,
    /// Messages waiting for confirmation (initiator only).
    queued: Vec<Message>,
    retransmit_at: Timestamp,
    rto: std::time::Duration,
    created: Timestamp,
    last_recv: Timestamp,
    /// (Initiator on UDP) Requests sent since the peer was last heard: when the first went,
    /// and how many (see `path.rs`, "UDP lost mid-session").
    unanswered: Option<(Timestamp, u32)>,
    /// Where the link is filed in `Endpoint::link_checks`: never later than its next deadline.
    check_at: Timestamp,
    /// Opened while another session with the peer stood. (Responder) That one stays the
    /// peer's session until the initiator sends on this one: the initiator may never get our
    /// confirmation, give up, and keep using the old one, and every datagram we sent here
    /// would be lost (a live child was reported lost so, at 20 % loss). (Initiator) On
    /// confirmation we send at once, so the responder moves over.
    tentative: bool,
    /// No fresh session is opened on a stale-session notice about this one before then
    /// (`stale.rs`).
    redial_after: Timestamp,
    /// Kept open while silent until then, past the idle timeout ([`Endpoint::linger`]).
    linger: Timestamp,
    /// Messages sent while silent past the idle timeout, for a fresh session (`stale.rs`).
    suspect: Vec<Message>,
}

/// An initiator handshake in progress.
pub(crate) struct Dial {
    handshake: Handshake,
    addr: SocketAddr,
    expect: Option<NodeId>,
    /// The path message 1 goes over: UDP, then TCP after [`EndpointConfig::tcp_fallback`].
    path: Path,
    hs1: Vec<u8>,
    started: Timestamp,
    retransmit_at: Timestamp,
    rto: std::time::Duration,
    queued: Vec<Message>,
    /// The TTL its copies over UDP keep, and until when (a dial waiting for an introduction,
    /// [`Endpoint::connect_ahead`], or one punching ahead of the peer,
    /// [`Endpoint::punch_ahead`]); `None` once the punch or [`Endpoint::dial_in_full`] came.
    hold: Option<(u8, Timestamp)>,
}

/// A responder handshake waiting for message 3.
pub(crate) struct Accept {
    handshake: Handshake,
    addr: SocketAddr,
    remote_index: u32,
    /// The path message 1 last came over; message 2 goes back the same way.
    path: Path,
    hs2: Vec<u8>,
    expires: Timestamp,
}

/// Counters of what the endpoint did, for tests, metrics and simulations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to [`Endpoint::poll_transmit`].
    pub datagrams_sent: u64,
    /// Bytes in those datagrams.
    pub bytes_sent: u64,
    /// Datagrams given to [`Endpoint::handle_datagram`].
    pub datagrams_received: u64,
    /// Of those, dropped (forged, replayed, malformed, unknown session, rate-limited): the
    /// sum of [`rejected`](Self::rejected) but for `handshake_refused`.
    pub packets_rejected: u64,
    /// Sessions established, either side.
    pub sessions_established: u64,
    /// Handshake messages 1 dropped unanswered by the rate limits (applied under load only).
    pub handshakes_rate_limited: u64,
    /// Cookie replies sent under load, instead of message 2, to sources whose message 1 did
    /// not prove their address (see `endpoint/cookie.rs`).
    pub cookies_sent: u64,
    /// Stale-session notices sent: data arrived for a session we do not hold (`stale.rs`).
    pub stale_notices_sent: u64,
    /// Fresh sessions opened because the peer said it no longer held ours.
    pub stale_redials: u64,
    /// Rejected datagrams and refused handshakes by reason.
    pub rejected: Rejections,
}

/// The sans-IO link layer of one node. See the [crate docs](crate) for the run loop.
pub struct Endpoint {
    config: EndpointConfig,
    // Boxed: needed only for handshakes, and a compact endpoint keeps the fields every
    // datagram touches on fewer cache lines.
    certificate: Option<Box<Certificate>>,
    rng: Box<ChaCha20Rng>,
    links: HashMap<u32, Link>,
    by_peer: HashMap<NodeId, u32>,
    by_addr: HashMap<SocketAddr, u32>,
    dials: HashMap<u32, Dial>,
    dial_by_addr: HashMap<SocketAddr, u32>,
    accepts: HashMap<u32, Accept>,
    accept_by_remote: HashMap<(SocketAddr, u32), u32>,
    /// Every link filed under a time no later than its next deadline, so the next timer is found
    /// without walking all sessions (an LSN or the master holds hundreds). A link whose deadline
    /// moved later (it received a packet) is found early, checked and refiled.
    link_checks: BTreeSet<(Timestamp, u32)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    frame: Vec<u8>,
    stats: Stats,
    limiter: limiter::HandshakeLimiter,
    /// Secrets for the cookies that validate addresses under load.
    cookies: cookie::CookieJar,
    /// What is left of this second's stale-session notices.
    notices: stale::NoticeBudget,
    /// (Master) Certificates issued, so a retried enrollment gets the same one.
    issued: HashMap<NodeId, Certificate>,
    /// (Enrolling node) When the current enrollment gives up, and when to resend the request.
    enroll_deadline: Option<Timestamp>,
    enroll_retry_at: Timestamp,
}

impl Endpoint {
    /// An endpoint with `config`, drawing every random choice (session indices, ephemeral keys)
    /// from `seed`. Give each node its own seed; a simulation derives them from one master seed.
    pub fn new(config: EndpointConfig, seed: [u8; 32]) -> Self {
        let certificate = config.certificate.clone().map(Box::new);
        let limiter = limiter::HandshakeLimiter::new(
            config.handshake_per_source,
            config.handshake_per_prefix,
            config.unvalidated_handshakes,
        );
        Endpoint {
            config,
            certificate,
            rng: Box::new(ChaCha20Rng::from_seed(seed)),
            links: HashMap::new(),
            by_peer: HashMap::new(),
            by_addr: HashMap::new(),
            dials: HashMap::new(),
            dial_by_addr: HashMap::new(),
            accepts: HashMap::new(),
            accept_by_remote: HashMap::new(),
            link_checks: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            frame: Vec::new(),
            stats: Stats::default(),
            limiter,
            cookies: cookie::CookieJar::new(),
            notices: stale::NoticeBudget::new(Timestamp::ZERO),
            issued: HashMap::new(),
            enroll_deadline: None,
            enroll_retry_at: Timestamp::ZERO,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.identity.node_id()
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.config.identity
    }

    /// The trust store (network key, revocations).
    pub fn trust(&self) -> &TrustStore {
        &self.config.trust
    }

    /// Our certificate, once we have one.
    pub fn certificate(&self) -> Option<&Certificate> {
        self.certificate.as_deref()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether a session with `peer` is established (and, if we opened it, confirmed).
    pub fn is_connected(&self, peer: &NodeId) -> bool {
        self.link(peer).is_some_and(|l| l.unconfirmed_hs3.is_none())
    }

    /// When anything authentic last came from `peer`, if we have a session with it.
    pub fn last_heard(&self, peer: &NodeId) -> Option<Timestamp> {
        self.link(peer).map(|l| l.last_recv)
    }

    /// The peer with an established session at `addr`, if any.
    pub fn peer_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr.get(&addr).and_then(|i| self.links.get(i)).map(|l| l.peer)
    }

    /// The address of `peer`'s session.
    pub fn peer_addr(&self, peer: &NodeId) -> Option<SocketAddr> {
        self.link(peer).map(|l| l.addr)
    }

    /// `peer`'s certificate, as verified when its session was opened.
    pub fn peer_certificate(&self, peer: &NodeId) -> Option<&Certificate> {
        self.link(peer).and_then(|l| l.certificate.as_deref())
    }

    /// Whether a handshake to `addr` is under way (a [`send_to`](Self::send_to) there waits
    /// behind it).
    pub fn is_dialing(&self, addr: SocketAddr) -> bool {
        self.dial_by_addr.contains_key(&addr)
    }

    /// Ids of every peer with an established, confirmed session.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_peer.keys().copied().filter(|p| self.is_connected(p))
    }

    fn link(&self, peer: &NodeId) -> Option<&Link> {
        self.by_peer.get(peer).and_then(|i| self.links.get(i))
    }

    /// Sends `message` to `peer` over its established session.
    pub fn send(
        &mut self,
        now: Timestamp,
        peer: &NodeId,
        message: &Message,
    ) -> Result<(), SendError> {
        let index = *self.by_peer.get(peer).ok_or(SendError::NoSession(*peer))?;
        self.send_on(now, index, message)
    }

    /// Sends `message` to whoever is at `addr`: at once over an established session, or queued
    /// behind a handshake that this call starts if none is running.
    pub fn send_to(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        message: Message,
    ) -> Result<(), SendError> {
        if let Some(&index) = self.by_addr.get(&addr) {
            return self.send_on(now, index, &message);
        }
        // Refuse what can never be sent before it waits in a queue.
        let len = wire::encoded_len(&message);
        if len > wire::MAX_FRAME_LEN {
            return Err(WireError::TooLarge { len, max: wire::MAX_FRAME_LEN }.into());
        }
        if !self.dial_by_addr.contains_key(&addr) {
            self.connect(now, addr, None);
        }
        let max = self.config.max_queued;
        let dial = self
            .dial_by_addr
            .get(&addr)
            .and_then(|i| self.dials.get_mut(i))
            .ok_or(SendError::NotEnrolled)?;
        if dial.queued.len() >= max {
            return Err(SendError::QueueFull(addr));
        }
        dial.queued.push(message);
        Ok(())
    }

    fn send_on(&mut self, now: Timestamp, index: u32, message: &Message) -> Result<(), SendError> {
        let max = self.config.max_queued;
        // The caller found `index` in our maps, which only name live links.
        let link = self.links.get_mut(&index).expect("index names a live link");
        if link.unconfirmed_hs3.is_some() {
            let len = wire::encoded_len(message);
            if len > wire::MAX_FRAME_LEN {
                return Err(WireError::TooLarge { len, max: wire::MAX_FRAME_LEN }.into());
            }
            if link.queued.len() >= max {
                return Err(SendError::QueueFull(link.addr));
            }
            link.queued.push(message.clone());
            return Ok(());
        }
        self.frame.clear();
        wire::encode(message, &mut self.frame)?;
        self.note_request(now, index, message);
        self.keep_suspect(now, index, message);
        let frame = std::mem::take(&mut self.frame);
        let result = self.transmit_frame(index, &frame);
        self.frame = frame;
        result
    }

    /// Seals `frame` on link `index` and queues the datagram.
    fn transmit_frame(&mut self, index: u32, frame: &[u8]) -> Result<(), SendError> {
        // The caller found `index` in our maps, which only name live links.
        let link = self.links.get_mut(&index).expect("index names a live link");
        let mut packet = Vec::with_capacity(frame.len() + secure::DATA_OVERHEAD);
        link.session.seal(frame, &mut packet)?;
        let (dst, path) = (link.addr, link.path);
        self.push_transmit(dst, path, packet);
        Ok(())
    }

    fn push_transmit(&mut self, dst: SocketAddr, path: Path, payload: Vec<u8>) {
        self.push_datagram(dst, path, payload, None);
    }

    fn push_datagram(&mut self, dst: SocketAddr, path: Path, payload: Vec<u8>, ttl: Option<u8>) {
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += payload.len() as u64;
        self.transmits.push_back(Transmit { dst, payload, path, ttl });
    }

    /// Closes the sessions with `peer`, if any.
    pub fn close(&mut self, peer: &NodeId) {
        let mut indices: Vec<u32> =
            self.links.iter().filter(|(_, l)| l.peer == *peer).map(|(i, _)| *i).collect();
        indices.sort_unstable();
        if !indices.is_empty() {
            for i in indices {
                self.remove_link(i);
            }
            self.events
                .push_back(Event::Disconnected { peer: *peer, reason: DisconnectReason::Closed });
        }
    }

    /// Adopts a newer revocation list from the master and closes sessions with revoked peers.
    pub fn update_revocations(&mut self, list: RevocationList) -> Result<(), RevocationError> {
        let version = list.version;
        self.config.trust.update_revocations(list)?;
        let mut revoked: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, l)| self.config.trust.revocations().is_some_and(|r| r.contains(&l.peer)))
            .map(|(i, _)| *i)
            .collect();
        revoked.sort_unstable();
        let mut peers = Vec::new();
        for i in revoked {
            if let Some(link) = self.remove_link(i) {
                peers.push(link.peer);
            }
        }
        peers.sort_unstable();
        peers.dedup();
        for peer in peers {
            self.events.push_back(Event::Disconnected { peer, reason: DisconnectReason::Revoked });
        }
        self.events.push_back(Event::RevocationsUpdated { version });
        Ok(())
    }

    /// Feeds one datagram received over UDP (see [`handle_datagram_on`](Self::handle_datagram_on)).
    pub fn handle_datagram(&mut self, now: Timestamp, src: SocketAddr, datagram: &[u8]) {
        self.handle_datagram_on(now, src, Path::Udp, datagram);
    }

    /// Feeds one received datagram and the path it came over. Bad datagrams are counted by
    /// reason in [`Stats::rejected`], logged at DEBUG, and never disturb an established
    /// session. They raise no event: junk is free to send, and one event per datagram would
    /// let a flood fill the application's channel (the driver logs a summary instead).
    pub fn handle_datagram_on(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        datagram: &[u8],
    ) {
        self.stats.datagrams_received += 1;
        let result = match secure::Packet::parse(datagram) {
            Ok(secure::Packet::Hs1 { sender, noise }) => {
                self.on_hs1(now, src, path, sender, None, noise)
            }
            Ok(secure::Packet::Hs1Cookie { sender, cookie, noise }) => {
                self.on_hs1(now, src, path, sender, Some(cookie), noise)
            }
            Ok(secure::Packet::Cookie { receiver, cookie }) => {
                self.on_cookie(src, receiver, &cookie)
            }
            Ok(secure::Packet::Hs2 { sender, receiver, noise }) => {
                self.on_hs2(now, src, path, sender, receiver, noise)
            }
            Ok(secure::Packet::Hs3 { receiver, noise }) => {
                self.on_hs3(now, src, path, receiver, noise)
            }
            Ok(secure::Packet::Data { receiver, counter, ciphertext }) => {
                let result = self.on_data(now, src, path, receiver, counter, ciphertext);
                if let Err(secure::PacketError::UnknownSession(index)) = result {
                    self.notice_stale(now, src, path, index);
                }
                result
            }
            Ok(secure::Packet::Stale { receiver }) => self.on_stale(now, src, receiver),
            Ok(secure::Packet::Opener) => Ok(()),
            Ok(secure::Packet::Probe { nonce }) => {
                let session = self.by_addr.contains_key(&src);
                self.events.push_back(Event::ReachProbe { addr: src, path, nonce, session });
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            self.stats.packets_rejected += 1;
            self.stats.rejected.count(&error);
            tracing::debug!(%src, %error, "packet rejected");
        }
    }

    /// Queues a reach probe carrying `nonce` to `addr`, always over UDP: the one packet sent
    /// outside a session (see the [packet layout](crate::secure)). The receiver reports it as
    /// [`Event::ReachProbe`] and never answers its source.
    pub fn send_reach_probe(&mut self, addr: SocketAddr, nonce: u64) {
        let payload = secure::Packet::probe(nonce);
        self.transmits.push_back(Transmit { dst: addr, payload, path: Path::Udp, ttl: None });
    }

    /// Reports a failed command as an event (the driver's commands have no return path).
    pub(crate) fn report(&mut self, error: CommandError) {
        self.events.push_back(Event::CommandFailed { error });
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn fresh_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if i != 0
                && !self.links.contains_key(&i)
                && !self.dials.contains_key(&i)
                && !self.accepts.contains_key(&i)
            {
                return i;
            }
        }
    }

    fn fresh_seed(&mut self) -> [u8; 32] {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        seed
    }

    /// The endpoint's random stream, for callers that seal envelopes deterministically.
    pub fn rng(&mut self) -> &mut (impl rand_core::CryptoRng + RngCore) {
        &mut *self.rng
    }

    fn insert_link(&mut self, index: u32, mut link: Link) {
        link.check_at = self.link_deadline(&link);
        self.link_checks.insert((link.check_at, index));
        self.stats.sessions_established += 1;
        if link.initiator || !link.tentative || !self.by_peer.contains_key(&link.peer) {
            self.by_peer.insert(link.peer, index);
        }
        self.by_addr.insert(link.addr, index);
        self.links.insert(index, link);
    }

    /// Files link `index` again under its current deadline (after a change that may bring the
    /// deadline forward).
    fn refile_link(&mut self, index: u32) {
        let Some(link) = self.links.get(&index) else { return };
        let (old, next) = (link.check_at, self.link_deadline(link));
        self.link_checks.remove(&(old, index));
        self.link_checks.insert((next, index));
        if let Some(link) = self.links.get_mut(&index) {
            link.check_at = next;
        }
    }

    /// Removes a link and the map entries that point at it. Returns it.
    fn remove_link(&mut self, index: u32) -> Option<Link> {
        let link = self.links.remove(&index)?;
        self.link_checks.remove(&(link.check_at, index));
        if self.by_peer.get(&link.peer) == Some(&index) {
            self.by_peer.remove(&link.peer);
            // Fall back to another live session with the same peer, if any (the lowest index,
            // so the choice does not depend on HashMap order).
            if let Some(other) =
                self.links.iter().filter(|(_, l)| l.peer == link.peer).map(|(i, _)| *i).min()
            {
                self.by_peer.insert(link.peer, other);
            }
        }
        if self.by_addr.get(&link.addr) == Some(&index) {
            self.by_addr.remove(&link.addr);
            // Likewise: with two sessions to a peer (each side dialled the other), one may
            // carry only our sends and idle out on silence while the peer answers on the
            // other. Dropping the address then made the next send dial afresh, and its
            // messages waited for a confirmation the quiet peer had no reason to send
            // (20 % loss: a child reported lost after 10 s).
            if let Some(other) = (self.links.iter())
                .filter(|(_, l)| l.peer == link.peer && l.addr == link.addr)
                .map(|(i, _)| *i)
                .min()
            {
                self.by_addr.insert(link.addr, other);
            }
        }
        Some(link)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.node_id())
            .field("sessions", &self.links.len())
            .field("dialing", &self.dials.len())
            .field("accepting", &self.accepts.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
