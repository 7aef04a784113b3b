//! The responder side: answer message 1, judge the initiator on message 3.

use std::net::SocketAddr;

use super::{Accept, Endpoint, Event, Link};
use crate::{
    secure::{
        Credential, Handshake, HandshakeError, Packet, PacketError, Session, AMPLIFICATION_LIMIT,
        COOKIE_LEN, MIN_HS1_LEN,
    },
    trust::CertError,
    Path, Timestamp,
};

impl Endpoint {
    pub(super) fn on_hs1(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        sender: u32,
        cookie: Option<[u8; COOKIE_LEN]>,
        noise: &[u8],
    ) -> Result<(), PacketError> {
        // What arrived: the packet header, the cookie if any, and the Noise message. Nothing
        // answers less.
        let received = 5 + cookie.map_or(0, |_| COOKIE_LEN) + noise.len();
        if received < MIN_HS1_LEN {
            return Err(PacketError::ShortHandshake(received));
        }
        // A retransmitted message 1: our message 2 was lost, send it again, over the path the
        // initiator now uses (it falls back to TCP when UDP got no answer).
        if let Some(accept) =
            self.accept_by_remote.get(&(src, sender)).and_then(|i| self.accepts.get_mut(i))
        {
            accept.path = path;
            let hs2 = accept.hs2.clone();
            self.push_transmit(src, path, hs2);
            return Ok(());
        }
        let Some(cert) = self.certificate.clone() else {
            // Without a certificate we cannot answer anyone.
            return Err(PacketError::UnexpectedHandshake);
        };
        if self.accepts.len() >= self.config.max_accepting {
            return Err(PacketError::UnexpectedHandshake);
        }
        // As with WireGuard's cookies, address validation is asked for only under load: a
        // busy morning of real joins completes its handshakes within a round trip and never
        // piles up half-open ones, while a flood of messages 1 that never finish does. Load
        // is a quarter of `max_accepting` half-open, or more messages 1 than the
        // unvalidated budget (`DEFAULT_UNVALIDATED`) allows: public-key work is the cost.
        let rng = &mut *self.rng;
        let validated = cookie.is_some_and(|c| self.cookies.check(now, rng, src, sender, &c));
        let busy = self.accepts.len() >= self.config.max_accepting / 4;
        if !validated && (busy || !self.limiter.unvalidated(now)) {
            // The source proves its address first (a cookie reply costs one MAC, and 21
            // bytes to an address that sent at least `MIN_HS1_LEN`): spoofed sources stop here, and
            // touch no rate-limit bucket of the real ones.
            let fresh = self.cookies.issue(now, rng, src, sender);
            self.push_transmit(src, path, Packet::cookie(sender, &fresh));
            self.stats.cookies_sent += 1;
            return Ok(());
        }
        // Under load, a source stays within its rate. Not otherwise: a storm of real nodes
        // behind one address (a site's NAT) that only exceeded the unvalidated budget pays
        // a round trip for its cookies, and no more.
        if busy && self.limiter.admit(src, now).is_err() {
            self.stats.handshakes_rate_limited += 1;
            return Err(PacketError::RateLimited);
        }
        let index = self.fresh_index();
        let seed = self.fresh_seed();
        let (handshake, noise2) = Handshake::respond(&self.config.identity, seed, noise, &cert)
            .map_err(|_| PacketError::Decrypt)?;
        let hs2 = Packet::hs2(index, sender, &noise2);
        if hs2.len() > received * AMPLIFICATION_LIMIT {
            // Our certificates have a fixed size, and message 2 is 310 bytes: only a changed
            // format could get here. Refuse rather than amplify.
            tracing::warn!(
                len = hs2.len(),
                received,
                "message 2 too large for message 1: not sent"
            );
            return Err(PacketError::ShortHandshake(received));
        }
        self.push_transmit(src, path, hs2.clone());
        self.accepts.insert(
            index,
            Accept {
                handshake,
                addr: src,
                remote_index: sender,
                path,
                hs2,
                expires: now + self.config.handshake_timeout,
            },
        );
        self.accept_by_remote.insert((src, sender), index);
        Ok(())
    }

    pub(super) fn on_hs3(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        receiver: u32,
        noise: &[u8],
    ) -> Result<(), PacketError> {
        let Some(accept) = self.accepts.remove(&receiver) else {
            // The initiator resent message 3 because our confirmation was lost: confirm again.
            if self.links.get(&receiver).is_some_and(|l| !l.initiator) {
                // An empty frame is the confirmation; sealing it cannot fail on a live session.
                let _ = self.transmit_frame(receiver, &[]);
                return Ok(());
            }
            return Err(PacketError::UnexpectedHandshake);
        };
        self.accept_by_remote.remove(&(accept.addr, accept.remote_index));
        let outcome = match accept.handshake.finish(noise) {
            Ok(outcome) => outcome,
            Err(error) => {
                self.stats.rejected.handshake_refused += 1;
                self.events.push_back(Event::HandshakeRejected { addr: src, error });
                return Ok(());
            }
        };
        let (peer, certificate) =
            match self.judge_initiator(now, &outcome.credential, &outcome.remote_static) {
                Ok(x) => x,
                Err(error) => {
                    tracing::debug!(%src, %error, "refused initiator");
                    self.stats.rejected.handshake_refused += 1;
                    self.events.push_back(Event::HandshakeRejected { addr: src, error });
                    return Ok(());
                }
            };
        let rto = self.config.handshake_rto;
        let flags = certificate.as_ref().map(|c| c.flags());
        let tentative = self.by_peer.contains_key(&peer);
        self.insert_link(
            receiver,
            Link {
                session: Session::new(outcome.transport, accept.remote_index),
                peer,
                addr: src,
                // Message 3 came over `path`; our answers take the same way.
                path,
                probe_at: now,
                certificate,
                initiator: false,
                unconfirmed_hs3: None,
                queued: Vec::new(),
                retransmit_at: now + rto,
                rto,
                created: now,
                last_recv: now,
                unanswered: None,
                check_at: now,
                tentative,
                redial_after: now,
                linger: now,
                suspect: Vec::new(),
            },
        );
        // Confirm at once, so the initiator stops resending message 3.
        let _ = self.transmit_frame(receiver, &[]);
        if let Some(flags) = flags {
            self.events.push_back(Event::Connected { peer, addr: src, flags, initiator: false });
            if path != Path::Udp {
                self.events.push_back(Event::PathChanged { peer, addr: src, path });
            }
        }
        Ok(())
    }

    /// Checks what an initiator presented. Returns its id and, unless it is enrolling, its
    /// certificate.
    fn judge_initiator(
        &self,
        now: Timestamp,
        credential: &Credential,
        remote_static: &[u8; 32],
    ) -> Result<(crate::NodeId, Option<Box<crate::trust::Certificate>>), HandshakeError> {
        match credential {
            Credential::Certificate(cert) => {
                self.config.trust.verify(cert, now)?;
                if cert.body.x25519 != *remote_static {
                    return Err(CertError::KeyMismatch.into());
                }
                Ok((cert.node_id(), Some(cert.clone())))
            }
            Credential::Enroll(request) => {
                if self.config.enrollment.is_none() {
                    return Err(HandshakeError::EnrollmentNotAccepted);
                }
                if request.x25519 != *remote_static {
                    return Err(CertError::KeyMismatch.into());
                }
                request.verify(self.config.trust.network())?;
                Ok((request.node_id(), None))
            }
        }
    }
}
