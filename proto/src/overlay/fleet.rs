//! Fleet-wide requests: one request for many nodes, carried once to each LSN, which hands it to
//! its children (`node/fleet.rs`) and batches their acknowledgements for the master
//! (`master/fleet.rs`). The master's egress grows with the number of LSNs, not of nodes.
//!
//! The confidentiality trade-off: a request for one node is sealed to that node, so the LSN
//! relaying it cannot read it. A fleet request cannot be sealed to every node in one copy, so it
//! is only signed by the master: the LSNs (and every node that receives it) read it, nobody can
//! forge or alter it, and it is encrypted on every hop like all traffic. Put secrets in
//! per-node requests. The answers are sealed to the master as for any request.
//!
//! Each node still handles the request at most once: it has the master's id, and the node's
//! request log (`node/requests.rs`) is the same for both kinds.

use ed25519_dalek::Signature;
use serde::Serialize;

use super::SubnetKey;
use crate::{
    trust::{domain, signed_bytes, NetworkKey},
    wire::Request,
    Identity, NodeId,
};

/// Which nodes a fleet request is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Audience {
    /// Every node, present now or before the request expires.
    All,
    /// The nodes of one subnet (as the master's topology names it).
    Subnet(SubnetKey),
    /// The nodes admitted with a token carrying this tag. Each LSN's copy names which of its
    /// nodes have it (the LSN does not know tags), so this costs the master 20 bytes per node
    /// beside one body per LSN.
    Tag(String),
}

#[derive(Serialize)]
struct Signed<'a> {
    network: &'a NetworkKey,
    request: &'a Request,
    nodes: &'a Option<Vec<NodeId>>,
}

/// The master's signature over `request` for `nodes`.
pub(crate) fn sign(
    master: &Identity,
    network: &NetworkKey,
    request: &Request,
    nodes: &Option<Vec<NodeId>>,
) -> [u8; 64] {
    let bytes = signed_bytes(domain::FLEET_REQUEST, &Signed { network, request, nodes });
    master.sign(&bytes).to_bytes()
}

/// Whether `signature` is the master's over `request` for `nodes`.
pub(crate) fn verify(
    network: &NetworkKey,
    request: &Request,
    nodes: &Option<Vec<NodeId>>,
    signature: &[u8; 64],
) -> bool {
    let bytes = signed_bytes(domain::FLEET_REQUEST, &Signed { network, request, nodes });
    network.verifying_key().verify_strict(&bytes, &Signature::from_bytes(signature)).is_ok()
}
