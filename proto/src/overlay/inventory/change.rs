//! A node's signature over its inventory change: made by the node, checked by the master, so
//! the LSN that batches the change can neither forge nor alter it.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use crate::{
    trust::{domain, signed_bytes, Certificate, NetworkKey},
    wire::InventoryChange,
    Identity, NodeId,
};

#[derive(Serialize)]
struct Signed<'a> {
    network: &'a NetworkKey,
    node: &'a NodeId,
    base: Option<u64>,
    version: u64,
    #[serde(with = "serde_bytes")]
    diff: &'a [u8],
}

/// `node`'s change from `base` to `version`, signed (`diff` encoded already).
pub(crate) fn sign_change(
    node: &Identity,
    network: &NetworkKey,
    base: Option<u64>,
    version: u64,
    diff: Vec<u8>,
    certificate: Option<Certificate>,
) -> InventoryChange {
    let id = node.node_id();
    let signed = Signed { network, node: &id, base, version, diff: &diff };
    let signature = node.sign(&signed_bytes(domain::INVENTORY, &signed)).to_bytes();
    InventoryChange { seq: 0, node: id, base, version, diff, certificate, signature }
}

/// Whether `change` carries the signature of the node whose key is `key`.
pub(crate) fn verify_change(
    network: &NetworkKey,
    change: &InventoryChange,
    key: &VerifyingKey,
) -> bool {
    let signed = Signed {
        network,
        node: &change.node,
        base: change.base,
        version: change.version,
        diff: &change.diff,
    };
    let bytes = signed_bytes(domain::INVENTORY, &signed);
    key.verify_strict(&bytes, &Signature::from_bytes(&change.signature)).is_ok()
}
