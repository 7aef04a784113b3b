//! Inventory messages (`overlay/inventory`): a node's signed change to its inventory
//! document, an LSN's compressed batch of its children's changes, and the master's results.

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::{trust::Certificate, NodeId};

/// A node's change to its inventory document, signed by the node: the LSN that batches it
/// can neither forge nor alter it.
///
/// Sent by the node to its LSN (`seq` answered with an [`Error`](super::ErrorMessage) only
/// when the LSN refuses it; the outcome comes from the master as an [`InventoryResult`]),
/// and carried inside an [`InventoryBatch`] (there `seq` is 0).
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct InventoryChange {
    /// This hop's request number.
    pub seq: u32,
    /// The node whose document it changes.
    pub node: NodeId,
    /// The version it applies to; `None`: it replaces the whole document.
    pub base: Option<u64>,
    /// The version it makes: greater than `base`, unique per node.
    pub version: u64,
    /// The change: an [`InventoryDiff`](crate::overlay::inventory::InventoryDiff) in CBOR.
    #[serde(with = "serde_bytes")]
    pub diff: Vec<u8>,
    /// The node's certificate, on a whole document (the master may not know it yet).
    pub certificate: Option<Certificate>,
    /// The node's signature over the network, `node`, `base`, `version` and `diff`.
    #[serde(with = "crate::id::serde_bytes_array")]
    pub signature: [u8; 64],
}

/// An LSN's batch of its children's (and its own) [`InventoryChange`]s for the master: their
/// CBOR array, compressed with zstd. Answered with [`InventoryAcks`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct InventoryBatch {
    /// This hop's request number, echoed in the [`InventoryAcks`].
    pub seq: u32,
    /// zstd of the CBOR array of changes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// What became of one [`InventoryChange`] at the master.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[non_exhaustive]
pub enum InventoryStatus {
    /// The master holds the change's version now (applied, or had been before).
    Applied,
    /// The master does not hold the change's base (it restarted, or never had it): send the
    /// whole document.
    Mismatch,
    /// Refused (a bad signature, or a document over the master's bounds): not to be sent
    /// again until the document changes.
    Refused,
}

impl From<InventoryStatus> for u8 {
    fn from(s: InventoryStatus) -> u8 {
        match s {
            InventoryStatus::Applied => 0,
            InventoryStatus::Mismatch => 1,
            InventoryStatus::Refused => 2,
        }
    }
}

impl TryFrom<u8> for InventoryStatus {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            0 => InventoryStatus::Applied,
            1 => InventoryStatus::Mismatch,
            2 => InventoryStatus::Refused,
            _ => return Err(format!("unknown inventory status {v}")),
        })
    }
}

/// The master's answer about one node's change; the LSN passes each on to its child.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct InventoryResult {
    /// The node.
    pub node: NodeId,
    /// The version of the change answered.
    pub version: u64,
    /// What became of it.
    pub status: InventoryStatus,
}

/// The master's answer to an [`InventoryBatch`]: one result per change it carried.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct InventoryAcks {
    /// The batch's `seq`.
    pub seq: u32,
    /// The results, in the batch's order.
    pub results: Vec<InventoryResult>,
}
