//! Fuzzes the handshake payload decoder (the credential inside Noise messages 2 and 3): any
//! bytes decode or fail with `HandshakeError`, never panic; a payload that decodes re-encodes
//! to a canonical payload that decodes to itself; an enrollment request in it is verified
//! without panicking, and a forged one is refused.

#![no_main]

use std::sync::OnceLock;

use fleetmesh::{secure::reencode_handshake_payload, trust::NetworkKey, Identity};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

/// The network of the snapshots (`tests/wire_snapshots.rs`: the authority is identity 1), so
/// an enrollment request from the seed corpus verifies and its mutations exercise every check.
fn network() -> &'static NetworkKey {
    static KEY: OnceLock<NetworkKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let master = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        NetworkKey::new(master.verifying_key())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok((canonical, enroll)) = reencode_handshake_payload(data) else {
        return;
    };
    let again = reencode_handshake_payload(&canonical).expect("a re-encoded payload decodes");
    assert_eq!(again, (canonical, enroll.clone()), "re-encoding is not stable");
    if let Some(request) = enroll {
        // Its signature is the node's own over the request; whatever the result, no panic.
        let _ = request.verify(network());
    }
});
