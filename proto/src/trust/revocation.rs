use serde::Serialize;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{domain, signed_bytes, NetworkKey};
use crate::{id::serde_bytes_array, NodeId};

/// The master's signed, versioned list of revoked node ids.
///
/// Nodes keep the highest version they have seen; a list with a lower or equal version never
/// replaces it, so an old list cannot be replayed to un-revoke a node.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct RevocationList {
    /// The network this list belongs to.
    pub network: NetworkKey,
    /// Monotonic version; higher replaces lower.
    pub version: u64,
    /// When the master signed it, UNIX seconds.
    pub issued_at: u64,
    /// Revoked ids, sorted ascending without duplicates.
    pub revoked: Vec<NodeId>,
    /// The master's signature over the fields above.
    #[serde(with = "serde_bytes_array")]
    pub signature: [u8; 64],
}

#[derive(Serialize)]
pub(crate) struct RevocationBody<'a> {
    pub(crate) network: &'a NetworkKey,
    pub(crate) version: u64,
    pub(crate) issued_at: u64,
    pub(crate) revoked: &'a [NodeId],
}

/// Why a revocation list was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Signed for another network.
    #[error("revocation list belongs to another network")]
    WrongNetwork,
    /// The master's signature does not verify.
    #[error("revocation list signature is invalid")]
    BadSignature,
    /// The ids are not sorted and unique (the master never signs such a list).
    #[error("revocation list is not sorted")]
    Unsorted,
    /// Not newer than the list already held.
    #[error("revocation list version {offered} is not newer than {held}")]
    Stale {
        /// The version offered.
        offered: u64,
        /// The version already held.
        held: u64,
    },
}

impl RevocationList {
    /// Checks the list's network and signature.
    pub fn verify(&self, network: &NetworkKey) -> Result<(), RevocationError> {
        if self.network != *network {
            return Err(RevocationError::WrongNetwork);
        }
        if !self.revoked.windows(2).all(|w| w[0] < w[1]) {
            return Err(RevocationError::Unsorted);
        }
        let body = RevocationBody {
            network: &self.network,
            version: self.version,
            issued_at: self.issued_at,
            revoked: &self.revoked,
        };
        if !network.verify(&signed_bytes(domain::REVOCATIONS, &body), &self.signature) {
            return Err(RevocationError::BadSignature);
        }
        Ok(())
    }

    /// Whether `id` is revoked.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.revoked.binary_search(id).is_ok()
    }
}
