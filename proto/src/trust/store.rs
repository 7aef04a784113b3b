use super::{CertError, Certificate, NetworkKey, RevocationError, RevocationList};
use crate::Timestamp;

/// What a node trusts: its network key and the newest revocation list it has verified.
#[derive(Debug, Clone)]
pub struct TrustStore {
    network: NetworkKey,
    revocations: Option<RevocationList>,
}

impl TrustStore {
    /// Trust rooted in `network`, with nothing revoked yet.
    pub fn new(network: NetworkKey) -> Self {
        TrustStore { network, revocations: None }
    }

    /// The network key.
    pub fn network(&self) -> &NetworkKey {
        &self.network
    }

    /// The revocation list version held (0 when none).
    pub fn revocation_version(&self) -> u64 {
        self.revocations.as_ref().map_or(0, |r| r.version)
    }

    /// The revocation list held, if any.
    pub fn revocations(&self) -> Option<&RevocationList> {
        self.revocations.as_ref()
    }

    /// Verifies `list` and adopts it if it is newer than the one held.
    pub fn update_revocations(&mut self, list: RevocationList) -> Result<(), RevocationError> {
        list.verify(&self.network)?;
        let held = self.revocation_version();
        if list.version <= held && self.revocations.is_some() {
            return Err(RevocationError::Stale { offered: list.version, held });
        }
        self.revocations = Some(list);
        Ok(())
    }

    /// Full check of a peer's certificate: network, signature, binding, validity, revocation.
    pub fn verify(&self, cert: &Certificate, now: Timestamp) -> Result<(), CertError> {
        cert.verify(&self.network, now)?;
        if self.revocations.as_ref().is_some_and(|r| r.contains(&cert.node_id())) {
            return Err(CertError::Revoked(cert.node_id()));
        }
        Ok(())
    }
}
