//! Fuzzes revocation lists (`trust/revocation.rs`), which arrive in `Revocations` messages:
//! the message body is the fuzz input. Any bytes decode or fail, never panic; a list that
//! decodes re-encodes to one that decodes to itself; verifying and adopting one never panics,
//! an adopted list revokes exactly its ids, and the same list is not adopted twice.
//!
//! The network is the snapshots' (the authority is identity 1), so the seed corpus's list
//! verifies and its mutations reach every check.

#![no_main]

use std::sync::OnceLock;

use fleetmesh::{
    trust::{Authority, NetworkKey, RevocationError, TrustStore},
    wire::{self, Message, WIRE_VERSION},
    Identity,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

/// `MessageType::Revocations`.
const TAG: u8 = 0x12;

fn network() -> &'static NetworkKey {
    static KEY: OnceLock<NetworkKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let master = Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        Authority::new(master).network_key()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut frame = vec![WIRE_VERSION, TAG];
    frame.extend_from_slice(data);
    let Ok(Message::Revocations(boxed)) = wire::decode(&frame) else {
        return;
    };
    let list = *boxed;
    let mut again = Vec::new();
    wire::encode(&Message::Revocations(Box::new(list.clone())), &mut again).expect("re-encodes");
    assert_eq!(wire::decode(&again), Ok(Message::Revocations(Box::new(list.clone()))));
    let mut store = TrustStore::new(*network());
    let verified = list.verify(network());
    match store.update_revocations(list.clone()) {
        Ok(()) => {
            assert_eq!(verified, Ok(()), "adopted a list that does not verify");
            assert!(list.revoked.iter().all(|id| list.contains(id)), "a listed id is not revoked");
            assert_eq!(store.revocation_version(), list.version);
            assert!(matches!(store.update_revocations(list), Err(RevocationError::Stale { .. })));
        }
        Err(e) => assert!(verified.is_err() || matches!(e, RevocationError::Stale { .. })),
    }
});
