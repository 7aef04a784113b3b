use std::fmt;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::NodeId;

/// The master's ed25519 public key. It names the network and is the root of trust: every
/// certificate and revocation list must verify under it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkKey(VerifyingKey);

impl NetworkKey {
    /// The network key from the master's ed25519 public key.
    pub fn new(key: VerifyingKey) -> Self {
        NetworkKey(key)
    }

    /// Parses a network key from its 32 bytes; `None` if they are not a valid ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(bytes).ok().map(NetworkKey)
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The master's ed25519 public key (verifies what the master signs, envelopes included).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0
    }

    /// The master's node id (SHA-1 of this key).
    pub fn master_id(&self) -> NodeId {
        NodeId::from_public_key(&self.0)
    }

    pub(crate) fn verify(&self, msg: &[u8], signature: &[u8; 64]) -> bool {
        self.0.verify(msg, &Signature::from_bytes(signature)).is_ok()
    }
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NetworkKey({:?})", self.master_id())
    }
}

impl Serialize for NetworkKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_bytes())
    }
}

impl<'de> Deserialize<'de> for NetworkKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: [u8; 32] = crate::id::serde_bytes_array::deserialize(d)?;
        NetworkKey::from_bytes(&bytes)
            .ok_or_else(|| serde::de::Error::custom("not an ed25519 public key"))
    }
}
