//! The data path: open datagrams, decode frames, and handle the messages the link layer owns
//! itself (enrollment, revocation lists).

use std::net::SocketAddr;

use super::{Endpoint, Event};
use crate::{
    secure::PacketError,
    trust::{CertFlags, Certificate, EnrollRequest},
    wire::{self, ErrorCode, ErrorMessage, Message},
    NodeId, Path, Timestamp,
};

impl Endpoint {
    pub(super) fn on_data(
        &mut self,
        now: Timestamp,
        src: SocketAddr,
        path: Path,
        receiver: u32,
        counter: u64,
        ciphertext: &[u8],
    ) -> Result<(), PacketError> {
        let link = self.links.get_mut(&receiver).ok_or(PacketError::UnknownSession(receiver))?;
        let mut plain = std::mem::take(&mut self.frame);
        let opened = link.session.open(counter, ciphertext, &mut plain);
        if let Err(e) = opened {
            self.frame = plain;
            return Err(e);
        }
        link.last_recv = now;
        link.unanswered = None;
        link.suspect.clear();
        let adopt = !link.initiator && std::mem::take(&mut link.tentative);
        let unconfirmed = link.unconfirmed_hs3.is_some();
        let peer = link.peer;
        let enrolling_peer = link.certificate.is_none();
        if link.addr != src {
            // The peer moved (new address or NAT rebinding): follow it, as the packet is
            // authentic.
            let old = link.addr;
            link.addr = src;
            if self.by_addr.get(&old) == Some(&receiver) {
                self.by_addr.remove(&old);
            }
            self.by_addr.insert(src, receiver);
        }
        let elsewhere =
            self.by_peer.get(&peer) != Some(&receiver) || self.by_addr.get(&src) != Some(&receiver);
        // A datagram still arriving over the relay after the session moved to a direct path
        // (a bulk transfer's chunks in flight, say) does not pull it back there: the node
        // follows the peer to the relay once the direct session has gone quiet
        // (`Endpoint::follow_to`). Without this, the peers' answers to those late datagrams
        // took both back to the relay for good.
        let current = self.by_peer.get(&peer).and_then(|i| self.links.get(i));
        let stays_direct = super::path::is_relay_addr(&src)
            && current.is_some_and(|l| !super::path::is_relay_addr(&l.addr));
        if stays_direct {
            self.by_addr.insert(src, receiver);
        } else if adopt || elsewhere {
            // The peer sends on this session, so it holds it: ours go the same way. With two
            // sessions (each side dialled the other, or a fresh one beside a stale one), both
            // sides thus settle on the one last used and the other idles out on both. Sending
            // on our own choice instead went, now and then, into a session the peer had let
            // idle out: a standby's confirmation pings were answered into nothing and it took
            // over from a live LSN (20 % loss).
            self.by_peer.insert(peer, receiver);
            self.by_addr.insert(src, receiver);
        }
        if unconfirmed {
            // Any authenticated packet proves the responder holds the session.
            self.confirm(now, receiver);
        }
        self.on_authentic_path(receiver, path, plain.is_empty());
        let result = if plain.is_empty() {
            Ok(()) // Handshake confirmation or keepalive.
        } else {
            match wire::decode(&plain) {
                Ok(message) => {
                    self.on_message(now, receiver, peer, src, enrolling_peer, message);
                    Ok(())
                }
                Err(e) => Err(PacketError::Frame(e)),
            }
        };
        self.frame = plain;
        result
    }

    fn on_message(
        &mut self,
        now: Timestamp,
        index: u32,
        peer: NodeId,
        addr: SocketAddr,
        enrolling_peer: bool,
        message: Message,
    ) {
        if enrolling_peer {
            return self.on_enrolling_peer_message(now, index, peer, message);
        }
        match message {
            // A certified peer without a token asks for a renewal (`renew.rs`).
            Message::Enroll(request)
                if self.config.enrollment.is_some() && request.token.is_none() =>
            {
                let reply = self.renew(now, peer, &request);
                if let Err(error) = self.send_on(now, index, &reply) {
                    tracing::warn!(%peer, %error, "renewal reply not sent");
                }
            }
            // A retried request whose answer was lost after the session was upgraded.
            Message::Enroll(_) if self.config.enrollment.is_some() => {
                self.on_enrolling_peer_message(now, index, peer, message);
            }
            Message::Certificate(cert) if self.certificate.is_none() => {
                self.on_certificate(now, *cert);
            }
            Message::Certificate(cert) if self.is_master(&peer) => self.on_renewed(now, *cert),
            Message::Error(error) if self.certificate.is_none() && self.is_master(&peer) => {
                self.enroll_deadline = None;
                self.events.push_back(Event::EnrollmentFailed { error });
            }
            Message::Revocations(list) => {
                let newer = list.version > self.config.trust.revocation_version();
                if newer {
                    if let Err(error) = self.update_revocations(*list.clone()) {
                        tracing::debug!(%peer, %error, "revocation list refused");
                    }
                }
                self.events.push_back(Event::Message {
                    peer,
                    addr,
                    message: Message::Revocations(list),
                });
            }
            message => self.events.push_back(Event::Message { peer, addr, message }),
        }
    }

    fn is_master(&self, peer: &NodeId) -> bool {
        *peer == self.config.trust.network().master_id()
    }

    /// We are enrolling and the master sent our certificate.
    fn on_certificate(&mut self, now: Timestamp, cert: Certificate) {
        let id = &self.config.identity;
        let check =
            self.config.trust.verify(&cert, now).map_err(|e| e.to_string()).and_then(|()| {
                if cert.node_id() == id.node_id()
                    && cert.body.x25519 == id.x25519_public()
                    && !cert.flags().contains(CertFlags::MASTER)
                {
                    Ok(())
                } else {
                    Err("certificate is not for this node".to_owned())
                }
            });
        self.enroll_deadline = None;
        match check {
            Ok(()) => {
                // The enrollment session stays up as an ordinary session: it authenticated the
                // master by certificate, and the master now knows our certificate too.
                self.certificate = Some(Box::new(cert.clone()));
                self.events.push_back(Event::Enrolled { certificate: Box::new(cert) });
            }
            Err(detail) => self.events.push_back(Event::EnrollmentFailed {
                error: ErrorMessage { seq: 0, code: ErrorCode::BAD_REQUEST, detail },
            }),
        }
    }

    /// (Master) A node without a certificate may only ask for one.
    fn on_enrolling_peer_message(
        &mut self,
        now: Timestamp,
        index: u32,
        peer: NodeId,
        message: Message,
    ) {
        let reply = match message {
            Message::Enroll(request) => self.enroll(now, peer, &request),
            _ => Message::Error(ErrorMessage {
                seq: 0,
                code: ErrorCode::NOT_ADMITTED,
                detail: "enroll first".into(),
            }),
        };
        if let Err(error) = self.send_on(now, index, &reply) {
            tracing::warn!(%peer, %error, "enrollment reply not sent");
        }
    }

    /// (Master) The enrolling peer's session becomes an ordinary, certified session.
    fn upgrade_enrolled(&mut self, peer: NodeId, cert: &Certificate) {
        let Some(link) = self.by_peer.get(&peer).and_then(|i| self.links.get_mut(i)) else {
            return;
        };
        if link.certificate.is_none() {
            link.certificate = Some(Box::new(cert.clone()));
            let (addr, initiator) = (link.addr, link.initiator);
            self.events.push_back(Event::Connected { peer, addr, flags: cert.flags(), initiator });
        }
    }

    fn enroll(&mut self, now: Timestamp, peer: NodeId, request: &EnrollRequest) -> Message {
        if request.node_id() != peer {
            return Message::Error(ErrorMessage {
                seq: 0,
                code: ErrorCode::BAD_REQUEST,
                detail: "request is for another node".into(),
            });
        }
        // A retried request (our answer was lost) gets the same certificate again rather than
        // spending another one-time token.
        if let Some(cert) = self.issued.get(&peer) {
            if cert.body.x25519 == request.x25519 {
                return Message::Certificate(Box::new(cert.clone()));
            }
        }
        // Only the master config has enrollment; this peer was admitted as enrolling because of
        // it, so it is present.
        let Some((authority, policy)) = self.config.enrollment.as_mut() else {
            return Message::Error(ErrorMessage {
                seq: 0,
                code: ErrorCode::REFUSED,
                detail: "enrollment not accepted".into(),
            });
        };
        match authority.enroll(request, policy.as_mut(), now) {
            Ok(cert) => {
                remember_issued(&mut self.issued, cert.clone(), MAX_ISSUED);
                self.upgrade_enrolled(peer, &cert);
                self.events
                    .push_back(Event::PeerEnrolled { peer, certificate: Box::new(cert.clone()) });
                Message::Certificate(Box::new(cert))
            }
            Err(error) => {
                self.events.push_back(Event::EnrollmentRefused { peer, error: error.clone() });
                Message::Error(ErrorMessage {
                    seq: 0,
                    code: ErrorCode::REFUSED,
                    detail: error.to_string(),
                })
            }
        }
    }
}

/// (Master) Most certificates kept in the `issued` map, to answer a retried enrollment or
/// renewal (its answer was lost) with the same certificate. Only such retries need them, so
/// beyond it the older half (by serial) is forgotten: a retry of one of those gets a new
/// certificate instead (a token enrollment is readmitted by the use it spent, so no use is
/// spent twice). Enrollments and renewals both fill it, so it is one per node at most.
pub(crate) const MAX_ISSUED: usize = 65_536;

/// Files `cert` in `issued` (capped at `max`, see [`MAX_ISSUED`]).
pub(super) fn remember_issued(
    issued: &mut std::collections::HashMap<NodeId, Certificate>,
    cert: Certificate,
    max: usize,
) {
    let peer = cert.node_id();
    if issued.len() >= max && !issued.contains_key(&peer) {
        // Half at once: one pass over the map per `max / 2` new nodes.
        let mut serials: Vec<u64> = issued.values().map(|c| c.body.serial).collect();
        let mid = serials.len() / 2;
        let cut = *serials.select_nth_unstable(mid).1;
        issued.retain(|_, c| c.body.serial >= cut);
    }
    issued.insert(peer, cert);
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, time::Duration};

    use super::*;
    use crate::{trust::Authority, Identity};

    #[test]
    fn the_issued_map_forgets_its_older_half_when_full() {
        let id = |n: u8| Identity::from_secret_bytes(&[n; 32], &[n; 32]);
        let mut authority = Authority::new(id(0));
        let mut issue = |i: &Identity| {
            let now = Timestamp::from_secs(1_700_000_000);
            let (key, x) = (i.verifying_key(), i.x25519_public());
            authority.issue(&key, x, CertFlags::NONE, now, Duration::from_secs(3600))
        };
        let nodes: Vec<Identity> = (1..=5).map(id).collect();
        let mut issued = HashMap::new();
        for node in &nodes[..4] {
            remember_issued(&mut issued, issue(node), 4);
        }
        // A renewal replaces the node's entry and forgets nothing, even when full.
        let renewed = issue(&nodes[0]);
        remember_issued(&mut issued, renewed.clone(), 4);
        assert_eq!(issued.len(), 4);
        // A new node when full: the older half by serial goes (nodes 1 and 2), the renewed one
        // stays.
        remember_issued(&mut issued, issue(&nodes[4]), 4);
        let mut kept: Vec<NodeId> = issued.keys().copied().collect();
        kept.sort();
        let mut want: Vec<NodeId> = [0, 3, 4].iter().map(|&i| nodes[i].node_id()).collect();
        want.sort();
        assert_eq!(kept, want);
        assert_eq!(issued[&nodes[0].node_id()], renewed);
    }
}
