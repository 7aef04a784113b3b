//! Path selection per peer: UDP first, TCP when UDP gets no answer, back to UDP once it works
//! both ways.
//!
//! * **Fallback.** A handshake we open goes over UDP. If nothing answers within
//!   [`EndpointConfig::tcp_fallback`](super::EndpointConfig::tcp_fallback), message 1 is resent
//!   over TCP to the same address (same handshake, so a late UDP answer still completes it).
//!   The session takes the path message 2 came back on; that path has then worked both ways.
//!   One-way UDP (our datagrams arrive but the answers do not, or the reverse) looks like no
//!   answer, so it falls back too.
//! * **Responder.** Answers go over the path the initiator's last data came over; the
//!   initiator decides.
//! * **Probing back.** The initiator of a session on TCP sends an empty sealed packet over UDP
//!   every [`udp_probe_interval`](super::EndpointConfig::udp_probe_interval). A responder on
//!   TCP that receives one echoes it over UDP; the initiator, on receiving any authenticated
//!   packet over UDP, knows UDP works both ways and moves the session back. Its next data over
//!   UDP moves the responder.
//!
//! * **UDP lost mid-session.** An initiator on UDP that has sent [`UNANSWERED_REQUESTS`]
//!   requests (messages that always get an answer: pings, joins, queries, updates, forwards,
//!   DHT requests) without hearing anything from the peer, the first at least `tcp_fallback`
//!   ago, moves the session to TCP and sends the request there; the responder follows that
//!   data. One-way messages (heartbeats, pongs) never count, so a quiet peer is not mistaken
//!   for a lost path. Probing back (above) returns it to UDP when UDP works again. A responder
//!   does not switch on its own (the initiator decides): its side recovers when the
//!   initiator's requests move the session, or when the overlay dials again. It reports the
//!   same silence as [`Event::PathSilent`], for a node with another path to turn to.
//!
//! Each change is reported as [`Event::PathChanged`].

use super::{Dial, Endpoint, Event, Link};
use crate::{secure, wire::Message, NodeId, Path, Timestamp};

/// Requests left unanswered over UDP before an established session moves to TCP.
pub(crate) const UNANSWERED_REQUESTS: u32 = 3;

/// Whether the peer always answers `message` (so silence after it means loss).
fn expects_answer(message: &Message) -> bool {
    matches!(
        message,
        Message::Ping(_)
            | Message::LsnQuery(_)
            | Message::Join(_)
            | Message::Update(_)
            | Message::Forward(_)
            | Message::KadPing(_)
            | Message::KadStore(_)
            | Message::KadRenew(_)
            | Message::KadFindNode(_)
            | Message::KadFindValue(_)
    )
}

/// Whether `addr` stands for a path through a GSN's relay: the discard prefix `100::/64`
/// (RFC 6666), which no real peer has (`overlay/node/gsn.rs` gives out these addresses).
pub(crate) fn is_relay_addr(addr: &std::net::SocketAddr) -> bool {
    matches!(addr.ip(), std::net::IpAddr::V6(ip) if ip.segments()[..4] == [0x100, 0, 0, 0])
}

impl Endpoint {
    /// The path the session with `peer` uses, if there is one.
    pub fn peer_path(&self, peer: &NodeId) -> Option<Path> {
        self.link(peer).map(|l| l.path)
    }

    /// When `dial` falls back to TCP, if it still may.
    pub(super) fn fallback_due(&self, dial: &Dial) -> Option<Timestamp> {
        let after = self.config.tcp_fallback?;
        (dial.path == Path::Udp).then(|| dial.started + after)
    }

    /// Moves every UDP handshake that had no answer in time to TCP, resending message 1 there.
    pub(super) fn fallback_dials(&mut self, now: Timestamp) {
        let rto = self.config.handshake_rto;
        let mut due: Vec<u32> = self
            .dials
            .iter()
            .filter(|(_, d)| self.fallback_due(d).is_some_and(|t| now >= t))
            .map(|(i, _)| *i)
            .collect();
        due.sort_unstable();
        for index in due {
            let Some(dial) = self.dials.get_mut(&index) else { continue };
            dial.path = Path::Tcp;
            dial.rto = rto;
            dial.retransmit_at = now + rto;
            let (addr, hs1) = (dial.addr, dial.hs1.clone());
            tracing::debug!(%addr, "no answer over udp: handshake falls back to tcp");
            self.push_transmit(addr, Path::Tcp, hs1);
        }
    }

    /// Counts a request about to go out on link `index`; when UDP has stayed silent through
    /// enough of them, moves the session to TCP first (module docs: "UDP lost mid-session").
    pub(super) fn note_request(&mut self, now: Timestamp, index: u32, message: &Message) {
        let Some(after) = self.config.tcp_fallback else { return };
        let every = self.config.udp_probe_interval;
        let Some(link) = self.links.get_mut(&index) else { return };
        if link.path != Path::Udp || !expects_answer(message) {
            return;
        }
        let (first, count) = link.unanswered.unwrap_or((now, 0));
        let count = count + 1;
        if count < UNANSWERED_REQUESTS || now < first + after {
            link.unanswered = Some((first, count));
            return;
        }
        link.unanswered = None;
        if !link.initiator {
            // The initiator chooses the path; we only report the silence.
            let (peer, addr) = (link.peer, link.addr);
            self.events.push_back(Event::PathSilent { peer, addr });
            return;
        }
        link.path = Path::Tcp;
        link.probe_at = now + every;
        let (peer, addr) = (link.peer, link.addr);
        tracing::debug!(%peer, %addr, count, "requests unanswered over udp: session moves to tcp");
        self.events.push_back(Event::PathChanged { peer, addr, path: Path::Tcp });
        self.refile_link(index);
    }

    /// When `link` probes UDP next, if it does.
    pub(super) fn probe_due(&self, link: &Link) -> Option<Timestamp> {
        self.config.tcp_fallback?;
        (link.initiator && link.path == Path::Tcp && link.unconfirmed_hs3.is_none())
            .then_some(link.probe_at)
    }

    /// Sends the UDP probes of the sessions on TCP that the timers found due (`due`; their
    /// next probe is already scheduled).
    pub(super) fn probe_udp(&mut self, mut due: Vec<u32>) {
        due.sort_unstable();
        for index in due {
            self.seal_empty(index, Path::Udp);
        }
    }

    /// An authenticated packet of session `index` came over `path` (`empty`: a keepalive,
    /// confirmation or probe). Applies the rules in the module docs.
    pub(super) fn on_authentic_path(&mut self, index: u32, path: Path, empty: bool) {
        let Some(link) = self.links.get_mut(&index) else { return };
        if link.path == path {
            return;
        }
        let switch = if link.initiator {
            // Only an answer over UDP moves us: it proves UDP works both ways (the responder
            // echoes our probes only when they arrive).
            path == Path::Udp
        } else {
            // The initiator chooses; its data shows the choice. A probe over UDP is echoed.
            !empty
        };
        if switch {
            link.path = path;
            let (peer, addr) = (link.peer, link.addr);
            tracing::debug!(%peer, %addr, %path, "session changes path");
            self.events.push_back(Event::PathChanged { peer, addr, path });
            // Its probe timer starts or stops with the path.
            self.refile_link(index);
        } else if !link.initiator && empty && path == Path::Udp {
            self.seal_empty(index, Path::Udp);
        }
    }

    /// Sends an empty sealed packet on session `index` over `path`, whatever its own path.
    fn seal_empty(&mut self, index: u32, path: Path) {
        let Some(link) = self.links.get_mut(&index) else { return };
        let mut packet = Vec::with_capacity(secure::DATA_OVERHEAD);
        if link.session.seal(&[], &mut packet).is_ok() {
            let addr = link.addr;
            self.push_transmit(addr, path, packet);
        }
    }
}
