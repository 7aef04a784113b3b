//! Fuzzes end-to-end envelopes (`secure/envelope.rs`), which relays pass on to their
//! recipient: decoding one from a message body, opening it, and decoding and checking its
//! contents behind the HPKE layer. Nothing panics, and nothing the fuzzer makes ever opens:
//! only the sender's key can sign an envelope.
//!
//! The first input byte picks what the rest is:
//! * 0: an `Envelope` message body, opened as it is (mostly refused before any crypto);
//! * 1: the same, readdressed from our sender to us, so HPKE opening runs;
//! * 2: the decrypted contents of an envelope from our sender to us.

#![no_main]

use std::sync::OnceLock;

use fleetmesh::{
    secure::{open_envelope, open_envelope_plaintext, SealedEnvelope},
    trust::{Authority, NetworkKey},
    wire::{self, Message, WIRE_VERSION},
    Identity,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

/// `MessageType::Envelope`.
const TAG: u8 = 0x31;

struct Fixture {
    network: NetworkKey,
    sender: Identity,
    recipient: Identity,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let id = |seed| Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
        // Not the snapshots' identities: the corpus envelope must not be ours to open.
        Fixture {
            network: Authority::new(id(1001)).network_key(),
            sender: id(1002),
            recipient: id(1003),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let key = f.sender.verifying_key();
    let opened = match mode % 3 {
        0 | 1 => {
            let mut frame = vec![WIRE_VERSION, TAG];
            frame.extend_from_slice(rest);
            let Ok(Message::Envelope(mut envelope)) = wire::decode(&frame) else {
                return;
            };
            if mode % 3 == 1 {
                envelope.from = f.sender.node_id();
                envelope.to = f.recipient.node_id();
            }
            open_envelope(&f.recipient, &f.network, &envelope, &key)
        }
        _ => {
            let envelope = SealedEnvelope {
                from: f.sender.node_id(),
                to: f.recipient.node_id(),
                enc: [0; 32],
                ciphertext: Vec::new(),
            };
            open_envelope_plaintext(&f.network, &envelope, rest, &key)
        }
    };
    assert!(opened.is_err(), "opened an envelope the sender never sealed: {opened:?}");
});
