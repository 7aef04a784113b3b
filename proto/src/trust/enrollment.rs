//! Enrollment: how a node without a certificate obtains one on first contact with the master.
//!
//! The node opens a session to the master presenting an [`EnrollRequest`] instead of a
//! certificate (the Noise handshake still proves its X25519 key and authenticates the master by
//! its certificate). The request carries the node's public keys, an optional one-time token and
//! an ed25519 signature proving possession of the signing key. The master's
//! [`EnrollmentPolicy`] decides: [`TokenEnrollment`] admits each provisioned token once;
//! [`OpenEnrollment`] admits everyone (demos, labs). Any other rule is a type implementing the
//! trait, e.g. an inventory lookup. The master answers with a `Certificate` message or an
//! `Error`, and the node then opens a normal, certified session.

use std::{collections::HashSet, time::Duration};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{domain, signed_bytes, CertFlags, NetworkKey};
use crate::{id::serde_bytes_array, Identity, NodeId, Timestamp};

/// A node's request for admission.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct EnrollRequest {
    /// The node's ed25519 public key.
    #[serde(with = "serde_bytes_array")]
    pub ed25519: [u8; 32],
    /// The node's X25519 public key.
    #[serde(with = "serde_bytes_array")]
    pub x25519: [u8; 32],
    /// One-time enrollment token, if the deployment uses them.
    pub token: Option<String>,
    /// Signature by `ed25519` over the network key, the X25519 key and the token.
    #[serde(with = "serde_bytes_array")]
    pub proof: [u8; 64],
}

#[derive(Serialize)]
struct ProofBody<'a> {
    network: &'a NetworkKey,
    x25519: &'a [u8; 32],
    token: &'a Option<String>,
}

impl EnrollRequest {
    /// A request for `identity` to join `network`.
    pub fn new(identity: &Identity, network: &NetworkKey, token: Option<String>) -> Self {
        let x25519 = identity.x25519_public();
        let proof = identity
            .sign(&signed_bytes(
                domain::ENROLL,
                &ProofBody { network, x25519: &x25519, token: &token },
            ))
            .to_bytes();
        EnrollRequest { ed25519: identity.verifying_key().to_bytes(), x25519, token, proof }
    }

    /// The requesting node's id.
    pub fn node_id(&self) -> NodeId {
        NodeId::hash(&self.ed25519)
    }

    /// Checks the proof of possession; returns the node's ed25519 key.
    pub fn verify(&self, network: &NetworkKey) -> Result<VerifyingKey, EnrollError> {
        let key = VerifyingKey::from_bytes(&self.ed25519).map_err(|_| EnrollError::BadProof)?;
        let body = ProofBody { network, x25519: &self.x25519, token: &self.token };
        let msg = signed_bytes(domain::ENROLL, &body);
        key.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&self.proof))
            .map_err(|_| EnrollError::BadProof)?;
        Ok(key)
    }
}

/// What a policy grants an admitted node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Roles granted.
    pub flags: CertFlags,
    /// How long the certificate is valid.
    pub validity: Duration,
}

impl Default for Admission {
    /// No special role, valid for 90 days.
    fn default() -> Self {
        Admission { flags: CertFlags::NONE, validity: Duration::from_secs(90 * 24 * 3600) }
    }
}

/// Why enrollment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The request's signature does not prove possession of its key.
    #[error("enrollment proof of possession is invalid")]
    BadProof,
    /// The policy needs a token and none was given.
    #[error("enrollment requires a token")]
    TokenRequired,
    /// The token is unknown or was already used.
    #[error("enrollment token is unknown or already used")]
    InvalidToken,
    /// The policy refused, for the reason given.
    #[error("enrollment refused: {0}")]
    Refused(String),
}

/// The master's decision on enrollment requests.
pub trait EnrollmentPolicy: Send {
    /// Admits the node (with what it is granted) or refuses it.
    fn admit(&mut self, request: &EnrollRequest, now: Timestamp) -> Result<Admission, EnrollError>;
}

impl<P: EnrollmentPolicy + ?Sized> EnrollmentPolicy for Box<P> {
    fn admit(&mut self, request: &EnrollRequest, now: Timestamp) -> Result<Admission, EnrollError> {
        (**self).admit(request, now)
    }
}

/// Admits every node that proves its key. For demos and closed labs only.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenEnrollment {
    /// What every node is granted.
    pub admission: Admission,
}

impl EnrollmentPolicy for OpenEnrollment {
    fn admit(&mut self, _: &EnrollRequest, _: Timestamp) -> Result<Admission, EnrollError> {
        Ok(self.admission)
    }
}

/// Admits each provisioned one-time token exactly once.
#[derive(Debug, Clone, Default)]
pub struct TokenEnrollment {
    tokens: HashSet<String>,
    /// What a node presenting a valid token is granted.
    pub admission: Admission,
}

impl TokenEnrollment {
    /// A policy with no tokens yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Provisions a one-time token (e.g. embedded in an installer download link).
    pub fn add_token(&mut self, token: impl Into<String>) {
        self.tokens.insert(token.into());
    }

    /// Tokens not used yet.
    pub fn remaining(&self) -> usize {
        self.tokens.len()
    }
}

impl EnrollmentPolicy for TokenEnrollment {
    fn admit(&mut self, request: &EnrollRequest, _: Timestamp) -> Result<Admission, EnrollError> {
        let token = request.token.as_ref().ok_or(EnrollError::TokenRequired)?;
        if self.tokens.remove(token) {
            Ok(self.admission)
        } else {
            Err(EnrollError::InvalidToken)
        }
    }
}
