//! Deterministic seeds: every identity and every run of every host derives its randomness from
//! the fleet's seed, so the same seed gives the same run.

use fleetmesh::Identity;
use rand_core::SeedableRng;
use sha1::{Digest, Sha1};

/// The `n`th identity of a fleet seeded with `seed`.
pub(crate) fn identity(seed: u64, n: u64) -> Identity {
    let derived = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(n);
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(derived))
}

/// The endpoint seed of run `restart` of host `name`.
pub(crate) fn host_seed(seed: u64, name: &str, restart: u64) -> [u8; 32] {
    let mut h = Sha1::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    h.update(restart.to_le_bytes());
    let mut out = [0u8; 32];
    out[..20].copy_from_slice(&h.finalize());
    out
}
