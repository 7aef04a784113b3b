use std::time::Duration;

use rand_core::SeedableRng;

use super::*;
use crate::{Identity, Timestamp};

const DAY: Duration = Duration::from_secs(86_400);

fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

fn setup() -> (Authority, Identity, Timestamp) {
    let master = Authority::new(Identity::generate(&mut rng(1)));
    let node = Identity::generate(&mut rng(2));
    (master, node, Timestamp::from_secs(1_700_000_000))
}

fn cert_for(master: &mut Authority, node: &Identity, now: Timestamp) -> Certificate {
    master.issue(&node.verifying_key(), node.x25519_public(), CertFlags::NONE, now, DAY)
}

#[test]
fn issued_certificate_verifies() {
    let (mut master, node, now) = setup();
    let cert = cert_for(&mut master, &node, now);
    assert_eq!(cert.node_id(), node.node_id());
    let trust = TrustStore::new(master.network_key());
    trust.verify(&cert, now).unwrap();
    let decoded = Certificate::from_bytes(&cert.to_bytes()).unwrap();
    assert_eq!(decoded, cert);
}

#[test]
fn certificate_checks_each_fail_with_their_own_error() {
    let (mut master, node, now) = setup();
    let network = master.network_key();
    let cert = cert_for(&mut master, &node, now);

    let other = Authority::new(Identity::generate(&mut rng(9)));
    assert!(matches!(cert.verify(&other.network_key(), now), Err(CertError::WrongNetwork(_))));

    let mut tampered = cert.clone();
    tampered.body.flags = CertFlags::GSN_ELIGIBLE;
    assert_eq!(tampered.verify(&network, now), Err(CertError::BadSignature));

    assert!(matches!(cert.verify(&network, now + 2 * DAY), Err(CertError::Expired { .. })));
    assert!(matches!(
        cert.verify(&network, now - Duration::from_secs(3600)),
        Err(CertError::NotYetValid { .. })
    ));
    // Small clock skew is tolerated.
    cert.verify(&network, now - Duration::from_secs(60)).unwrap();

    // An id that is not SHA-1 of the key is refused even when the master signed it.
    let mut body = cert.body.clone();
    body.node_id = crate::NodeId::hash(b"someone else");
    let signature = master.identity().sign(&signed_bytes(domain::CERTIFICATE, &body)).to_bytes();
    let forged = Certificate { body, signature };
    assert_eq!(forged.verify(&network, now), Err(CertError::IdMismatch));
}

#[test]
fn revocation_lists_are_signed_versioned_and_enforced() {
    let (mut master, node, now) = setup();
    let cert = cert_for(&mut master, &node, now);
    let mut trust = TrustStore::new(master.network_key());

    let v1 = master.revocation_list(1, vec![node.node_id()], now);
    trust.update_revocations(v1.clone()).unwrap();
    assert_eq!(trust.verify(&cert, now), Err(CertError::Revoked(node.node_id())));

    // Replaying an old list cannot un-revoke.
    let v0 = master.revocation_list(0, vec![], now);
    assert!(matches!(trust.update_revocations(v0), Err(RevocationError::Stale { .. })));
    assert_eq!(
        trust.update_revocations(v1.clone()),
        Err(RevocationError::Stale { offered: 1, held: 1 })
    );

    let mut forged = master.revocation_list(2, vec![], now);
    forged.version = 3;
    assert_eq!(trust.update_revocations(forged), Err(RevocationError::BadSignature));

    let other = Authority::new(Identity::generate(&mut rng(9)));
    let foreign = other.revocation_list(5, vec![], now);
    assert_eq!(trust.update_revocations(foreign), Err(RevocationError::WrongNetwork));

    trust.update_revocations(master.revocation_list(2, vec![], now)).unwrap();
    trust.verify(&cert, now).unwrap();
}

#[test]
fn token_enrollment_admits_each_token_once() {
    let (mut master, node, now) = setup();
    let network = master.network_key();
    let mut policy = TokenEnrollment::new();
    policy.add_token("install-42");

    let no_token = EnrollRequest::new(&node, &network, None);
    assert_eq!(master.enroll(&no_token, &mut policy, now), Err(EnrollError::TokenRequired));

    let request = EnrollRequest::new(&node, &network, Some("install-42".into()));
    let cert = master.enroll(&request, &mut policy, now).unwrap();
    assert_eq!(cert.node_id(), node.node_id());
    assert_eq!(cert.body.x25519, node.x25519_public());
    assert_eq!(policy.remaining(), 0);
    assert_eq!(master.enroll(&request, &mut policy, now), Err(EnrollError::InvalidToken));
}

#[test]
fn enrollment_proof_binds_key_network_and_token() {
    let (mut master, node, now) = setup();
    let network = master.network_key();
    let mut open = OpenEnrollment::default();

    let mut request = EnrollRequest::new(&node, &network, Some("t".into()));
    request.token = Some("u".into());
    assert_eq!(master.enroll(&request, &mut open, now), Err(EnrollError::BadProof));

    // A request made for another network does not verify here.
    let other = Authority::new(Identity::generate(&mut rng(9)));
    let foreign = EnrollRequest::new(&node, &other.network_key(), None);
    assert_eq!(master.enroll(&foreign, &mut open, now), Err(EnrollError::BadProof));

    let good = EnrollRequest::new(&node, &network, None);
    assert!(master.enroll(&good, &mut open, now).is_ok());
}
