//! Envelope tests: what an LSN or relay in the middle can and cannot do.

use super::*;
use crate::{
    harness::{rng, Fixture},
    Identity,
};

const STAMP: u64 = 1_700_000_000_000_000;

fn parties() -> (Fixture, Identity, Identity, Identity) {
    let mut fx = Fixture::new(40);
    let master = fx.authority.identity().clone();
    let node = fx.identity();
    let lsn = fx.identity();
    (fx, master, node, lsn)
}

#[test]
fn envelope_round_trip_from_master_to_node() {
    let (fx, master, node, _) = parties();
    let network = fx.authority.network_key();
    let env = seal_envelope(
        &master,
        &network,
        node.node_id(),
        &node.x25519_public(),
        STAMP,
        b"reboot",
        &mut rng(1),
    )
    .unwrap();
    // The master's signing key is the network key: nodes verify it without any lookup.
    let key = master.verifying_key();
    let opened = open_envelope(&node, &network, &env, &key).unwrap();
    assert_eq!((opened.stamp, &opened.payload[..]), (STAMP, &b"reboot"[..]));
}

#[test]
fn the_lsn_in_the_middle_can_neither_read_nor_forge() {
    let (fx, master, node, lsn) = parties();
    let network = fx.authority.network_key();
    let env = seal_envelope(
        &master,
        &network,
        node.node_id(),
        &node.x25519_public(),
        STAMP,
        b"secret",
        &mut rng(2),
    )
    .unwrap();
    let key = master.verifying_key();

    // Not addressed to the LSN; and pretending it is does not help it decrypt.
    assert_eq!(
        open_envelope(&lsn, &network, &env, &key),
        Err(EnvelopeError::NotForUs(node.node_id()))
    );
    let mut readdressed = env.clone();
    readdressed.to = lsn.node_id();
    assert_eq!(open_envelope(&lsn, &network, &readdressed, &key), Err(EnvelopeError::Decrypt));
    assert!(!env.ciphertext.windows(6).any(|w| w == b"secret"));

    // Altering the ciphertext is detected.
    let mut tampered = env.clone();
    tampered.ciphertext[0] ^= 1;
    assert_eq!(open_envelope(&node, &network, &tampered, &key), Err(EnvelopeError::Decrypt));

    // The LSN sealing its own payload to the node, claiming to be the master, is caught: either
    // the claimed sender does not match the key the node checks with, or the signature fails.
    let mut forged = seal_envelope(
        &lsn,
        &network,
        node.node_id(),
        &node.x25519_public(),
        STAMP,
        b"rm -rf",
        &mut rng(3),
    )
    .unwrap();
    assert_eq!(open_envelope(&node, &network, &forged, &key), Err(EnvelopeError::SenderMismatch));
    forged.from = master.node_id();
    assert_eq!(open_envelope(&node, &network, &forged, &key), Err(EnvelopeError::Decrypt));
}

#[test]
fn envelopes_are_bound_to_their_network() {
    let (fx, master, node, _) = parties();
    let other = Fixture::new(41).authority.network_key();
    let env = seal_envelope(
        &master,
        &fx.authority.network_key(),
        node.node_id(),
        &node.x25519_public(),
        STAMP,
        b"x",
        &mut rng(4),
    )
    .unwrap();
    assert_eq!(
        open_envelope(&node, &other, &env, &master.verifying_key()),
        Err(EnvelopeError::Decrypt)
    );
}
