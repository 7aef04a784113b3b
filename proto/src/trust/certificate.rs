use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{domain, signed_bytes, NetworkKey};
use crate::{id::serde_bytes_array, NodeId, Timestamp};

/// What the master allows a node to be, as bit flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CertFlags(u8);

impl CertFlags {
    /// No special role.
    pub const NONE: CertFlags = CertFlags(0);
    /// The master itself.
    pub const MASTER: CertFlags = CertFlags(1);
    /// May serve as a Global Super Node (relay and NAT-traversal mediator).
    pub const GSN_ELIGIBLE: CertFlags = CertFlags(2);

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: CertFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: CertFlags) -> CertFlags {
        CertFlags(self.0 | other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl std::fmt::Debug for CertFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names = Vec::new();
        if self.contains(Self::MASTER) {
            names.push("MASTER");
        }
        if self.contains(Self::GSN_ELIGIBLE) {
            names.push("GSN_ELIGIBLE");
        }
        if self.0 & !3 != 0 {
            names.push("UNKNOWN");
        }
        write!(f, "CertFlags({})", names.join("|"))
    }
}

/// The signed part of a [`Certificate`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct CertificateBody {
    /// The network (master key) this certificate belongs to.
    pub network: NetworkKey,
    /// The admitted node's id; must equal SHA-1 of `ed25519`.
    pub node_id: NodeId,
    /// The node's ed25519 public key.
    #[serde(with = "serde_bytes_array")]
    pub ed25519: [u8; 32],
    /// The node's X25519 public key: the Noise static key its sessions prove.
    #[serde(with = "serde_bytes_array")]
    pub x25519: [u8; 32],
    /// Valid from, in seconds since the UNIX epoch.
    pub issued_at: u64,
    /// Valid until (exclusive), in seconds since the UNIX epoch.
    pub expires_at: u64,
    /// Roles the node may take.
    pub flags: CertFlags,
    /// The master's serial number for this certificate.
    pub serial: u64,
}

/// An admission certificate: the master's signature over a node's id and keys.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Certificate {
    /// What is certified.
    pub body: CertificateBody,
    /// The master's ed25519 signature over the body.
    #[serde(with = "serde_bytes_array")]
    pub signature: [u8; 64],
}

/// Why a certificate was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Issued for another network than ours (named by that network's master id).
    #[error("certificate belongs to another network (master {0})")]
    WrongNetwork(NodeId),
    /// The master's signature does not verify.
    #[error("certificate signature is invalid")]
    BadSignature,
    /// The node id is not SHA-1 of the certified ed25519 key.
    #[error("certificate node id does not match its key")]
    IdMismatch,
    /// The certified ed25519 key is not a valid public key.
    #[error("certificate carries an invalid public key")]
    InvalidKey,
    /// Not valid yet.
    #[error("certificate is not valid before {issued_at} (now {now})")]
    NotYetValid {
        /// Start of validity, UNIX seconds.
        issued_at: u64,
        /// Our time, UNIX seconds.
        now: u64,
    },
    /// Expired.
    #[error("certificate expired at {expires_at} (now {now})")]
    Expired {
        /// End of validity, UNIX seconds.
        expires_at: u64,
        /// Our time, UNIX seconds.
        now: u64,
    },
    /// On the master's revocation list.
    #[error("certificate of {0} is revoked")]
    Revoked(NodeId),
    /// The session's static key is not the one this certificate binds.
    #[error("session key does not match the certificate")]
    KeyMismatch,
    /// The peer is not the node we meant to reach.
    #[error("expected node {expected}, found {found}")]
    UnexpectedPeer {
        /// Whom we meant to reach.
        expected: NodeId,
        /// Who answered.
        found: NodeId,
    },
}

/// Clock skew tolerated on a certificate's start of validity: device clocks drift.
pub(crate) const CLOCK_SKEW: Duration = Duration::from_secs(300);

impl Certificate {
    /// The certified node id.
    pub fn node_id(&self) -> NodeId {
        self.body.node_id
    }

    /// The certified roles.
    pub fn flags(&self) -> CertFlags {
        self.body.flags
    }

    /// The certified ed25519 key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, CertError> {
        VerifyingKey::from_bytes(&self.body.ed25519).map_err(|_| CertError::InvalidKey)
    }

    /// Checks network, signature, id ↔ key binding and the validity window at `now`.
    /// Revocation is checked by [`TrustStore::verify`](super::TrustStore::verify).
    pub fn verify(&self, network: &NetworkKey, now: Timestamp) -> Result<(), CertError> {
        let body = &self.body;
        if body.network != *network {
            return Err(CertError::WrongNetwork(body.network.master_id()));
        }
        if !network.verify(&signed_bytes(domain::CERTIFICATE, body), &self.signature) {
            return Err(CertError::BadSignature);
        }
        let key = self.verifying_key()?;
        if NodeId::from_public_key(&key) != body.node_id {
            return Err(CertError::IdMismatch);
        }
        let secs = now.as_secs();
        if secs.saturating_add(CLOCK_SKEW.as_secs()) < body.issued_at {
            return Err(CertError::NotYetValid { issued_at: body.issued_at, now: secs });
        }
        if secs >= body.expires_at {
            return Err(CertError::Expired { expires_at: body.expires_at, now: secs });
        }
        Ok(())
    }

    /// The certificate's CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        crate::codec::cbor::to_vec(self)
    }

    /// Decodes a certificate from CBOR (without verifying it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::codec::WireError> {
        crate::codec::cbor::from_slice(bytes)
    }
}
