//! Trust: the network key, admission certificates, revocation and enrollment.
//!
//! The master's ed25519 public key (the [`NetworkKey`]) is configured on every node and is the
//! root of trust. The master admits a node by signing a [`Certificate`] binding the node's id to
//! its keys; peers accept each other only on a certificate that verifies under their own network
//! key, is within its validity window and is not on the master's signed [`RevocationList`].

mod authority;
mod certificate;
mod enrollment;
mod network;
mod revocation;
mod store;

pub use authority::Authority;
pub use certificate::{CertError, CertFlags, Certificate, CertificateBody};
pub use enrollment::{
    Admission, EnrollError, EnrollRequest, EnrollmentPolicy, OpenEnrollment, TokenEnrollment,
};
pub use network::NetworkKey;
pub use revocation::{RevocationError, RevocationList};
pub use store::TrustStore;

/// Domain-separation prefixes for everything the master or a node signs, so a signature made for
/// one purpose can never be replayed as another.
pub(crate) mod domain {
    pub(crate) const CERTIFICATE: &[u8] = b"fleetmesh/v1/certificate\0";
    pub(crate) const REVOCATIONS: &[u8] = b"fleetmesh/v1/revocations\0";
    pub(crate) const ENROLL: &[u8] = b"fleetmesh/v1/enroll\0";
    pub(crate) const ENVELOPE: &[u8] = b"fleetmesh/v1/envelope\0";
    pub(crate) const RECORD: &[u8] = b"fleetmesh/v1/dht-record\0";
    pub(crate) const FLEET_REQUEST: &[u8] = b"fleetmesh/v1/fleet-request\0";
    pub(crate) const INVENTORY: &[u8] = b"fleetmesh/v1/inventory-change\0";
    pub(crate) const FLEET_QUERY: &[u8] = b"fleetmesh/v1/fleet-query\0";
    pub(crate) const GSN_TICKET: &[u8] = b"fleetmesh/v1/gsn-ticket\0";
}

/// Message bytes to sign: a domain prefix followed by the CBOR encoding of `body`.
pub(crate) fn signed_bytes<T: serde::Serialize>(domain: &[u8], body: &T) -> Vec<u8> {
    let mut out = domain.to_vec();
    crate::codec::cbor::write(&mut out, body);
    out
}

#[cfg(test)]
mod tests;
