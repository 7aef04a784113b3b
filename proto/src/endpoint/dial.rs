//! The initiator side: open a session, judge the responder, finish the handshake.

use std::net::SocketAddr;

use super::{Dial, Endpoint, Event, Link};
use crate::{
    secure::{Credential, Handshake, HandshakeError, Packet, PacketError, COOKIE_LEN},
    trust::{CertError, CertFlags, EnrollRequest},
    wire::Message,
    NodeId, Path, Timestamp,
};

impl Endpoint {
    /// Starts opening a session with whoever is at `addr`; with `expect`, only that node is
    /// accepted. Does nothing when a session with `addr` exists or a handshake with it runs.
    ///
    /// Without a certificate, the only session a node may open is one to the master, to enroll;
    /// any other peer fails with [`HandshakeError::NotMaster`] once it has shown its certificate.
    /// The outcome arrives as [`Event::Connected`] or [`Event::ConnectFailed`].
    pub fn connect(&mut self, now: Timestamp, addr: SocketAddr, expect: Option<NodeId>) {
        if self.by_addr.contains_key(&addr) || self.dial_by_addr.contains_key(&addr) {
            return;
        }
        self.dial(now, addr, expect);
    }

    /// Sends the handshake under way with `addr` on again now (message 1, or message 3 while
    /// the responder has not confirmed it), for a caller whose own retries say the session is
    /// urgent; its backoff goes on unchanged. Returns whether a handshake with `addr` was
    /// under way (messages sent to `addr` meanwhile wait in its queue).
    ///
    /// The backoff doubles from `handshake_rto` (0.5, 1, 2, 4 s): at 20 % loss each way, lost
    /// round trips in a row left a new LSN unregistered for 3.6 s and 7.6 s (turmoil cascade
    /// seeds 29, 69), while it retried its registration every second into that queue.
    pub fn hasten(&mut self, addr: SocketAddr) -> bool {
        let unconfirmed = self.by_addr.get(&addr).and_then(|i| self.links.get(i));
        let resend = match unconfirmed {
            Some(link) => link.unconfirmed_hs3.clone().map(|hs3| (link.path, hs3)),
            None => self
                .dial_by_addr
                .get(&addr)
                .and_then(|i| self.dials.get(i))
                .map(|d| (d.path, d.hs1.clone())),
        };
        let Some((path, packet)) = resend else { return false };
        self.push_transmit(addr, path, packet);
        true
    }

    /// Sends message 1 `hs1` to `addr`; with a `ttl`, a NAT opener goes in its place: a
    /// low-TTL copy only has to open our own NAT and never arrives.
    pub(super) fn push_hs1(&mut self, addr: SocketAddr, path: Path, hs1: &[u8], ttl: Option<u8>) {
        let payload = if ttl.is_some() { Packet::opener() } else { hs1.to_vec() };
        self.push_datagram(addr, path, payload, ttl);
    }

    /// Starts a handshake with `addr`, even beside a session there (`stale.rs`).
    pub(super) fn dial(&mut self, now: Timestamp, addr: SocketAddr, expect: Option<NodeId>) {
        self.dial_ttl(now, addr, expect, None, now);
    }

    /// [`dial`](Self::dial) with message 1's first copy sent with `ttl`, and its
    /// retransmissions too until `until` (then with the socket's default).
    pub(super) fn dial_ttl(
        &mut self,
        now: Timestamp,
        addr: SocketAddr,
        expect: Option<NodeId>,
        ttl: Option<u8>,
        until: Timestamp,
    ) {
        let index = self.fresh_index();
        let seed = self.fresh_seed();
        let (handshake, noise) = match Handshake::initiate(&self.config.identity, seed) {
            Ok(x) => x,
            Err(error) => {
                self.events.push_back(Event::ConnectFailed { addr, error, unsent: Vec::new() });
                return;
            }
        };
        let hs1 = Packet::hs1(index, &noise);
        self.push_hs1(addr, Path::Udp, &hs1, ttl);
        let rto = self.config.handshake_rto;
        self.dials.insert(
            index,
            Dial {
                handshake,
                addr,
                expect,
                path: Path::Udp,
                hs1,
                started: now,
                retransmit_at: now + rto,
                rto,
                queued: Vec::new(),
                hold: ttl.map(|t| (t, until)),
            },
        );
        self.dial_by_addr.insert(addr, index);
    }

    /// A responder under load asks us to prove our address: send message 1 again at once,
    /// the same Noise message with the cookie in front (and every retransmission after it).
    /// Only the address we dialled can ask, for a handshake we have open; a forged reply can
    /// do no more than make us send a cookie the responder refuses, and be given a good one.
    pub(super) fn on_cookie(
        &mut self,
        src: SocketAddr,
        receiver: u32,
        cookie: &[u8; COOKIE_LEN],
    ) -> Result<(), PacketError> {
        let Some(dial) = self.dials.get_mut(&receiver).filter(|d| d.addr == src) else {
            return Err(PacketError::UnexpectedHandshake);
        };
        let noise = match Packet::parse(&dial.hs1) {
            Ok(Packet::Hs1 { noise, .. } | Packet::Hs1Cookie { noise, .. }) => noise,
            // We wrote it; nothing else is ever filed there.
            _ => return Err(PacketError::UnexpectedHandshake),
        };
        let hs1 = Packet::hs1_cookie(receiver, cookie, noise);
        dial.hs1 = hs1.clone();
        let (addr, path) = (dial.addr, dial.path);
        self.push_transmit(addr, path, hs1);
        Ok(())
    }

    pub(super) fn on_hs2(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> Result<(), PacketError> {
        let Some(mut dial) = self.dials.remove(&receiver) else {
            // A late duplicate of message 2 for a session we already finished is harmless.
            return if self.links.get(&receiver).is_some_and(|l| l.initiator) {
                Ok(())
            } else {
                Err(PacketError::UnexpectedHandshake)
            };
        };
        self.dial_by_addr.remove(&dial.addr);
        let result = dial
            .handshake
            .read_response(noise)
            .and_then(|(peer, remote_static)| {
                self.judge_responder(now, &peer, &remote_static, dial.expect)?;
                let own = self.own_credential()?;
                Ok((peer, own))
            })
            .and_then(|(peer, own)| dial.handshake.complete(&own, peer));
        let (hs3, outcome) = match result {
            Ok(x) => x,
            Err(error) => {
                tracing::debug!(addr = %dial.addr, %error, "handshake failed");
                self.events.push_back(Event::ConnectFailed {
                    addr: dial.addr,
                    error,
                    unsent: std::mem::take(&mut dial.queued),
                });
                return Ok(());
            }
        };
        let crate::secure::Credential::Certificate(cert) = outcome.credential else {
            unreachable!("judge_responder accepts only certificates");
        };
        let hs3 = Packet::hs3(sender, &hs3);
        // The responder answered from `src`; that is where the session lives now.
        // Message 2 came over `path`, which therefore works both ways: the session uses it.
        let addr = src;
        self.push_transmit(addr, path, hs3.clone());
        let peer = cert.node_id();
        let flags = cert.flags();
        let rto = self.config.handshake_rto;
        let tentative = self.by_peer.contains_key(&peer);
        self.insert_link(
            receiver,
            Link {
                session: crate::secure::Session::new(outcome.transport, sender),
                peer,
                addr,
                path,
                probe_at: now + self.config.udp_probe_interval,
                certificate: Some(cert),
                initiator: true,
                unconfirmed_hs3: Some(hs3),
                queued: std::mem::take(&mut dial.queued),
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
        let _ = (peer, flags);
        if self.certificate.is_none() {
            self.enroll_deadline = Some(now + self.config.handshake_timeout);
            self.send_enroll_request(now, receiver);
        }
        Ok(())
    }

    /// Initiator: the responder proved it holds the session. Report it and release the data
    /// that waited for this.
    pub(super) fn confirm(&mut self, now: Timestamp, index: u32) {
        let Some(link) = self.links.get_mut(&index) else { return };
        if link.unconfirmed_hs3.take().is_none() {
            return;
        }
        let queued = std::mem::take(&mut link.queued);
        // A second session with the peer: the responder keeps the first until we send on
        // this one (`Link::tentative`), so send at once, even with nothing to say.
        let announce = std::mem::take(&mut link.tentative) && queued.is_empty();
        let (peer, addr, path) = (link.peer, link.addr, link.path);
        let flags = link.certificate.as_ref().map(|c| c.flags()).unwrap_or_default();
        self.events.push_back(Event::Connected { peer, addr, flags, initiator: true });
        if path != Path::Udp {
            self.events.push_back(Event::PathChanged { peer, addr, path });
        }
        for message in queued {
            if let Err(error) = self.send_on(now, index, &message) {
                tracing::warn!(%peer, %error, "queued message could not be sent");
            }
        }
        if announce {
            let _ = self.transmit_frame(index, &[]);
        }
    }

    /// Sends (or resends) our enrollment request on the session with the master.
    pub(super) fn send_enroll_request(&mut self, now: Timestamp, index: u32) {
        let request = EnrollRequest::new(
            &self.config.identity,
            self.config.trust.network(),
            self.config.enroll_token.clone(),
        );
        // A small message on a live session: sealing cannot fail.
        let _ = self.send_on(now, index, &Message::Enroll(Box::new(request)));
        self.enroll_retry_at = now + self.config.handshake_rto * 2;
    }

    /// What we present in message 3: our certificate, or an enrollment request.
    fn own_credential(&self) -> Result<Credential, HandshakeError> {
        Ok(match &self.certificate {
            Some(cert) => Credential::Certificate(cert.clone()),
            None => Credential::Enroll(Box::new(EnrollRequest::new(
                &self.config.identity,
                self.config.trust.network(),
                self.config.enroll_token.clone(),
            ))),
        })
    }

    fn judge_responder(
        &self,
        now: Timestamp,
        peer: &Credential,
        remote_static: &[u8; 32],
        expect: Option<NodeId>,
    ) -> Result<(), HandshakeError> {
        let Credential::Certificate(cert) = peer else {
            return Err(HandshakeError::MissingCredential);
        };
        self.config.trust.verify(cert, now)?;
        if cert.body.x25519 != *remote_static {
            return Err(CertError::KeyMismatch.into());
        }
        if let Some(expected) = expect {
            if cert.node_id() != expected {
                return Err(CertError::UnexpectedPeer { expected, found: cert.node_id() }.into());
            }
        }
        if self.certificate.is_none() {
            let master = self.config.trust.network().master_id();
            if cert.node_id() != master || !cert.flags().contains(CertFlags::MASTER) {
                return Err(HandshakeError::NotMaster);
            }
        }
        Ok(())
    }
}
