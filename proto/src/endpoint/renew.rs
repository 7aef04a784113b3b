//! Certificates that renew themselves, and revocation lists the master signs.
//!
//! A node asks for a new certificate once two thirds of its current one's validity have passed
//! (the overlay [`Node`](crate::overlay::Node) sends the request; see
//! [`renewal_due`](Endpoint::renewal_due)): an [`EnrollRequest`] without a token over a session
//! its current certificate authenticates. The master renews only a certificate that is still
//! valid and not revoked, for the same keys and roles and the same validity period, and no
//! sooner than half way through it, so a peer cannot make it sign in a loop. Sessions already
//! open keep running; new ones present the new certificate.

use std::time::Duration;

use super::{Endpoint, Event};
use crate::{
    trust::{Certificate, EnrollRequest, RevocationList},
    wire::{ErrorCode, ErrorMessage, Message},
    NodeId, Timestamp,
};

/// How far into its validity a certificate is renewed: at 2/3, leaving a third (30 days of a
/// 90-day certificate) for the master to be reachable.
const RENEW_AT: (u64, u64) = (2, 3);
/// The master renews no sooner than half way through a certificate's validity.
const RENEW_NOT_BEFORE: (u64, u64) = (1, 2);

fn fraction_of(cert: &Certificate, (num, den): (u64, u64)) -> Timestamp {
    let span = cert.body.expires_at.saturating_sub(cert.body.issued_at);
    Timestamp::from_secs(cert.body.issued_at.saturating_add(span / den * num))
}

impl Endpoint {
    /// When this node's certificate should be renewed (`None` without one, or on the master).
    pub fn renewal_due(&self) -> Option<Timestamp> {
        if self.config.enrollment.is_some() {
            return None;
        }
        self.certificate.as_deref().map(|c| fraction_of(c, RENEW_AT))
    }

    /// The request that renews this node's certificate, to send to the master.
    pub fn renewal_request(&self) -> Message {
        let request = EnrollRequest::new(&self.config.identity, self.config.trust.network(), None);
        Message::Enroll(Box::new(request))
    }

    /// (Node) The master sent a certificate while we hold one: a renewal. Kept when it is
    /// ours, valid, and lasts longer than the one we have.
    pub(super) fn on_renewed(&mut self, now: Timestamp, cert: Certificate) {
        let id = &self.config.identity;
        let ours = cert.node_id() == id.node_id() && cert.body.x25519 == id.x25519_public();
        let longer =
            self.certificate.as_deref().is_none_or(|c| cert.body.expires_at > c.body.expires_at);
        if ours && longer && self.config.trust.verify(&cert, now).is_ok() {
            self.certificate = Some(Box::new(cert.clone()));
            self.events.push_back(Event::Enrolled { certificate: Box::new(cert) });
        } else {
            tracing::debug!("renewed certificate refused");
        }
    }

    /// (Master) A certified peer asks for a new certificate.
    pub(super) fn renew(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        request: &EnrollRequest,
    ) -> Message {
        let refuse = |code, detail: &str| {
            Message::Error(ErrorMessage { seq: 0, code, detail: detail.to_owned() })
        };
        let Some(current) = self.link(&peer).and_then(|l| l.certificate.as_deref()).cloned() else {
            return refuse(ErrorCode::NOT_ADMITTED, "no certificate to renew");
        };
        let network = *self.config.trust.network();
        let valid = request.node_id() == peer
            && request.x25519 == current.body.x25519
            && request.verify(&network).is_ok()
            && self.config.trust.verify(&current, now).is_ok();
        if !valid {
            return refuse(ErrorCode::REFUSED, "renewal refused");
        }
        // A certificate already issued is sent again: a renewal whose answer was lost, or an
        // enrollment without a token (open enrollment) retried after its session was upgraded.
        if let Some(issued) = self.issued.get(&peer) {
            if issued.body.x25519 == current.body.x25519
                && issued.body.expires_at >= current.body.expires_at
                && (issued.body.expires_at > current.body.expires_at
                    || now < fraction_of(&current, RENEW_NOT_BEFORE))
            {
                return Message::Certificate(Box::new(issued.clone()));
            }
        }
        if now < fraction_of(&current, RENEW_NOT_BEFORE) {
            return refuse(ErrorCode::REFUSED, "renewal not due yet");
        }
        let Some((authority, _)) = self.config.enrollment.as_mut() else {
            return refuse(ErrorCode::REFUSED, "only the master renews");
        };
        let Ok(key) = current.verifying_key() else {
            return refuse(ErrorCode::REFUSED, "renewal refused");
        };
        let validity =
            Duration::from_secs(current.body.expires_at.saturating_sub(current.body.issued_at));
        let cert = authority.issue(&key, current.body.x25519, current.flags(), now, validity);
        super::data::remember_issued(&mut self.issued, cert.clone(), super::data::MAX_ISSUED);
        self.events.push_back(Event::PeerEnrolled { peer, certificate: Box::new(cert.clone()) });
        Message::Certificate(Box::new(cert))
    }

    /// (Master) Signs a revocation list adding `nodes` to those already revoked, one version
    /// newer than the list held. Adopt it with [`update_revocations`](Self::update_revocations)
    /// (which closes the revoked nodes' sessions) once it has been sent where it must go.
    /// `None` when this endpoint is not the master.
    pub fn sign_revocations(&self, now: Timestamp, nodes: &[NodeId]) -> Option<RevocationList> {
        let (authority, _) = self.config.enrollment.as_ref()?;
        let held = self.config.trust.revocations();
        let mut revoked: Vec<NodeId> = held.map(|r| r.revoked.clone()).unwrap_or_default();
        revoked.extend_from_slice(nodes);
        let version = self.config.trust.revocation_version() + 1;
        Some(authority.revocation_list(version, revoked, now))
    }

    /// (Master) Issues serial numbers from `next` on (or later): a restarted master continues
    /// where its saved certificates end. No effect on a node.
    pub fn resume_serials(&mut self, next: u64) {
        if let Some((authority, _)) = self.config.enrollment.as_mut() {
            authority.resume_serials(next);
        }
    }

    /// The revocation list held, if any was ever adopted.
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.config.trust.revocations()
    }
}
