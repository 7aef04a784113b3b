//! Fuzzes admission certificates (`trust/certificate.rs`), which peers present in every
//! handshake and the master hands out in `Certificate` messages: any bytes decode or fail with
//! `WireError`, never panic; a certificate that decodes re-encodes to one that decodes to
//! itself; verifying one never panics, and one that verifies is bound to its key and passes
//! the trust store too.
//!
//! The network is the snapshots' (`tests/wire_snapshots.rs`: the authority is identity 1), so
//! the seed corpus's certificate verifies and its mutations reach every check.

#![no_main]

use std::sync::OnceLock;

use fleetmesh::{
    trust::{Authority, Certificate, NetworkKey, TrustStore},
    Identity, NodeId, Timestamp,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

/// Inside the snapshot certificate's validity (it is issued at 1,700,000,000 for 30 days).
const NOW: Timestamp = Timestamp::from_secs(1_700_000_000 + 86_400);

fn network() -> &'static NetworkKey {
    static KEY: OnceLock<NetworkKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let master = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        Authority::new(master).network_key()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(cert) = Certificate::from_bytes(data) else {
        return;
    };
    let canonical = cert.to_bytes();
    assert_eq!(Certificate::from_bytes(&canonical).as_ref(), Ok(&cert), "re-encoding differs");
    let _ = cert.flags();
    if cert.verify(network(), NOW).is_ok() {
        let key = cert.verifying_key().expect("a verified certificate has a valid key");
        assert_eq!(NodeId::from_public_key(&key), cert.node_id(), "id not bound to the key");
        let store = TrustStore::new(*network());
        assert_eq!(store.verify(&cert, NOW), Ok(()), "the trust store disagrees");
    }
});
