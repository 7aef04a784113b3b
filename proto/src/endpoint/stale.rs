//! Stale sessions: a peer still sending on a session we no longer hold.
//!
//! A session ends on one side only: it idled out there, the node closed it (it left its LSN,
//! restarted), or of two sessions opened at once the peer kept the other. The side still
//! holding it sends into nothing, and under loss nothing else tells it: an LSN's pings and
//! rejoin tells to a child that closed the session never arrive, and the child is reported
//! lost while both are alive. So a data packet naming an index we do not have is answered
//! with a 5-byte notice naming that index, and its sender opens a fresh session beside the
//! old one (which stays open until idle, so nothing changes if the notice was wrong).
//!
//! A session kept open while silent (`Endpoint::linger`) is the likeliest to be gone at the
//! peer's end, and a message sent on it would be lost with nothing to say so but the notice.
//! So what we send on a session silent past the idle timeout is kept (up to
//! [`MAX_SUSPECT`] messages) until the peer is heard again, and a notice about that session
//! moves it to the fresh session's queue: the request a peer never saw is delivered all the
//! same, one handshake later.
//!
//! The notice is unauthenticated. It is smaller than the packet that caused it (at least 29
//! bytes), so it cannot amplify, and the notices we send are capped per second. A forged one
//! names an index only the two peers and the path between them see, and costs at most one
//! handshake per session per [`REDIAL_GAP`].

use std::{net::SocketAddr, time::Duration};

use super::Endpoint;
use crate::{
    secure::{Packet, PacketError},
    wire::Message,
    Path, Timestamp,
};

/// Stale-session notices sent per second at most, over all sources: a flood of junk data
/// packets costs a bounded trickle of 5-byte answers. A real stale sender keeps sending, so
/// a notice skipped now goes out on a later packet.
pub(crate) const NOTICES_PER_SEC: u32 = 32;

/// The least time between two fresh sessions opened on notices about the same session.
pub(crate) const REDIAL_GAP: Duration = Duration::from_secs(5);

/// Messages kept per session for a fresh one while the peer may have dropped it.
pub(crate) const MAX_SUSPECT: usize = 16;

/// The notices left in the current one-second window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoticeBudget {
    left: u32,
    window_ends: Timestamp,
}

impl NoticeBudget {
    pub(crate) fn new(now: Timestamp) -> Self {
        NoticeBudget { left: NOTICES_PER_SEC, window_ends: now }
    }

    /// Whether one more notice may go now.
    fn take(&mut self, now: Timestamp) -> bool {
        if now >= self.window_ends {
            self.left = NOTICES_PER_SEC;
            self.window_ends = now + Duration::from_secs(1);
        }
        let ok = self.left > 0;
        self.left = self.left.saturating_sub(1);
        ok
    }
}

impl Endpoint {
    /// Keeps a copy of `message`, just sent on link `index`, when the link has been silent
    /// past its idle timeout (it lingers): the peer may have dropped it (see the module docs).
    pub(super) fn keep_suspect(&mut self, now: Timestamp, index: u32, message: &Message) {
        let Some(link) = self.links.get(&index) else { return };
        if now < link.last_recv + self.idle_limit(link) {
            return;
        }
        let Some(link) = self.links.get_mut(&index) else { return };
        if link.suspect.len() >= MAX_SUSPECT {
            link.suspect.remove(0);
        }
        link.suspect.push(message.clone());
    }

    /// A data packet from `src` named `receiver`, which names no session here: tell the
    /// sender, over the path it came by.
    pub(super) fn notice_stale(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        receiver: u32,
    ) {
        if !self.notices.take(now) {
            return;
        }
        self.stats.stale_notices_sent += 1;
        self.push_transmit(src, path, Packet::stale(receiver));
    }

    /// `src` says our data to `receiver` found no session there. Only a session we send on
    /// (the one filed under `src`, or that one's peer's current session) is looked at, so a
    /// flood of notices costs a map lookup each.
    pub(super) fn on_stale(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        receiver: u32,
    ) -> Result<(), PacketError> {
        let named = |index: &u32| {
            self.links
                .get(index)
                .filter(|l| l.addr == src && l.session.remote_index() == receiver)
                .map(|l| (*index, l.peer))
        };
        let at_addr = self.by_addr.get(&src).and_then(named);
        let found = at_addr.or_else(|| {
            let peer = self.by_addr.get(&src).and_then(|i| self.links.get(i))?.peer;
            self.by_peer.get(&peer).and_then(named)
        });
        let Some((index, peer)) = found else {
            return Err(PacketError::UnknownSession(receiver));
        };
        let Some(link) = self.links.get_mut(&index) else { return Ok(()) };
        let resend = std::mem::take(&mut link.suspect);
        if now >= link.redial_after && !self.dial_by_addr.contains_key(&src) {
            link.redial_after = now + REDIAL_GAP;
            tracing::debug!(%peer, %src, "peer no longer holds our session: opening a fresh one");
            self.stats.stale_redials += 1;
            self.dial(now, src, Some(peer));
        }
        // What the peer never saw goes out again on the fresh session, once it stands.
        let max = self.config.max_queued;
        if let Some(dial) = self.dial_by_addr.get(&src).and_then(|i| self.dials.get_mut(i)) {
            let room = max.saturating_sub(dial.queued.len());
            dial.queued.extend(resend.into_iter().take(room));
        }
        Ok(())
    }
}
