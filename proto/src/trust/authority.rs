use std::time::Duration;

use super::{
    domain, enrollment::EnrollRequest, revocation::RevocationBody, signed_bytes, Admission,
    CertFlags, Certificate, CertificateBody, EnrollError, EnrollmentPolicy, NetworkKey,
    RevocationList,
};
use crate::{Identity, NodeId, Timestamp};

/// The master's signing authority: issues certificates and revocation lists.
///
/// The master's own [`Identity`] is the authority, so its ed25519 public key is the
/// [`NetworkKey`] and its node id is [`NetworkKey::master_id`]: every node can authenticate the
/// master from the network key alone.
#[derive(Debug, Clone)]
pub struct Authority {
    identity: Identity,
    next_serial: u64,
}

impl Authority {
    /// An authority signing with the master's identity.
    pub fn new(identity: Identity) -> Self {
        Authority { identity, next_serial: 1 }
    }

    /// Issues serial numbers from `next` on, unless already past it (serials never go back).
    pub fn resume_serials(&mut self, next: u64) {
        self.next_serial = self.next_serial.max(next);
    }

    /// The network key every node must be configured with.
    pub fn network_key(&self) -> NetworkKey {
        NetworkKey::new(self.identity.verifying_key())
    }

    /// The master's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Issues a certificate for a node's keys, valid from `now` for `validity`.
    pub fn issue(
        &mut self,
        ed25519: &ed25519_dalek::VerifyingKey,
        x25519: [u8; 32],
        flags: CertFlags,
        now: Timestamp,
        validity: Duration,
    ) -> Certificate {
        let serial = self.next_serial;
        self.next_serial += 1;
        let body = CertificateBody {
            network: self.network_key(),
            node_id: NodeId::from_public_key(ed25519),
            ed25519: ed25519.to_bytes(),
            x25519,
            issued_at: now.as_secs(),
            expires_at: now.as_secs().saturating_add(validity.as_secs()),
            flags,
            serial,
        };
        let signature = self.identity.sign(&signed_bytes(domain::CERTIFICATE, &body)).to_bytes();
        Certificate { body, signature }
    }

    /// The master's own certificate (flag [`CertFlags::MASTER`]).
    pub fn master_certificate(&mut self, now: Timestamp, validity: Duration) -> Certificate {
        let identity = self.identity.clone();
        self.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::MASTER.union(CertFlags::GSN_ELIGIBLE),
            now,
            validity,
        )
    }

    /// Handles an enrollment request: checks the node's proof of key possession, asks `policy`,
    /// and issues the certificate the policy admits.
    pub fn enroll(
        &mut self,
        request: &EnrollRequest,
        policy: &mut dyn EnrollmentPolicy,
        now: Timestamp,
    ) -> Result<Certificate, EnrollError> {
        let key = request.verify(&self.network_key())?;
        let Admission { flags, validity } = policy.admit(request, now)?;
        Ok(self.issue(&key, request.x25519, flags, now, validity))
    }

    /// Signs a revocation list; `revoked` is sorted and deduplicated first.
    pub fn revocation_list(
        &self,
        version: u64,
        mut revoked: Vec<NodeId>,
        now: Timestamp,
    ) -> RevocationList {
        revoked.sort_unstable();
        revoked.dedup();
        let network = self.network_key();
        let body = RevocationBody {
            network: &network,
            version,
            issued_at: now.as_secs(),
            revoked: &revoked,
        };
        let signature = self.identity.sign(&signed_bytes(domain::REVOCATIONS, &body)).to_bytes();
        RevocationList { network, version, issued_at: now.as_secs(), revoked, signature }
    }
}
