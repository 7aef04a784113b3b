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
//! Each change is reported as [`Event::PathChanged`].

use super::{Dial, Endpoint, Event, Link};
use crate::{secure, NodeId, Path, Timestamp};

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
