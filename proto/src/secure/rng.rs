//! A snow crypto resolver whose randomness comes from a seed we hand it.
//!
//! snow asks its resolver for an RNG to make ephemeral keys. The default one reads the
//! operating system; ours is a ChaCha20 stream seeded from the endpoint's own seeded RNG, so a
//! simulation with a fixed seed makes the same handshakes every run. All primitives other than
//! the RNG are snow's own.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::{
    params::{CipherChoice, DHChoice, HashChoice},
    resolvers::{CryptoResolver, DefaultResolver},
    types::{Cipher, Dh, Hash, Random},
};

pub(crate) struct SeededResolver {
    seed: [u8; 32],
}

impl SeededResolver {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        SeededResolver { seed }
    }
}

struct SeededRandom(ChaCha20Rng);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRandom(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}
