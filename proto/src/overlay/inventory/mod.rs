//! Inventory as changes (thesis S5/S6, issue 17): what a node reports about itself (OS,
//! hardware, network, packages, the application's own entries) reaches the master as a change
//! against the last version the master acknowledged, batched and compressed by the LSNs and
//! spread over time.
//!
//! * The document is a map of paths to values ([`InventoryDocument`]); a change is an
//!   [`InventoryDiff`] of removed and set paths ([`doc`](self)). A node's first change, and its
//!   first after the master lost its copy (a restart, a [`InventoryStatus::Mismatch`]), is the
//!   whole document; later ones are diffs. A change larger than
//!   [`MAX_CHANGE_BYTES`] goes as several consecutive ones, each acknowledged.
//! * Each change is **signed by its node** ([`InventoryChange`]): the LSN reads it (to compress
//!   the batch: encrypted changes would not compress across hosts, thesis Table 6) but can
//!   neither forge nor alter it. The confidentiality trade-off is the fleet requests' one: a
//!   node's inventory is readable by its subnet's LSN, itself an admitted fleet member.
//! * The LSN queues its children's changes (bounded), and sends them to the master in
//!   zstd-compressed [`InventoryBatch`]es, at most one in flight and one every
//!   [`BATCH_GAP`](crate::overlay::node::INVENTORY_BATCH_GAP): a morning of machines starting
//!   together becomes a few large messages per LSN, not one per machine.
//! * The master accepts a batch only from a registered LSN and each change only for a node
//!   under it, checks the node's signature, applies it when its base is the version it holds,
//!   and answers with one [`InventoryResult`] per change, which the LSN passes on. A node
//!   whose change got no result (its LSN crashed mid-batch) sends it again; a repeat of the
//!   version held is acknowledged again.
//!
//! Compression runs inside the sans-IO core: `zstd` at a fixed level is a pure function of its
//! input (no clock, no randomness, no I/O), so the core stays deterministic.

mod batch;
mod change;
mod doc;

pub use batch::{pack, unpack, MAX_BATCH_CHANGES, MAX_BATCH_PLAIN, ZSTD_LEVEL};
pub(crate) use change::{sign_change, verify_change};
pub(crate) use doc::document_len as doc_len;
pub use doc::{diff, InventoryDiff, InventoryDocument};

pub use crate::wire::{
    InventoryAcks, InventoryBatch, InventoryChange, InventoryResult, InventoryStatus,
};
use crate::NodeId;

/// Most diff bytes in one change: a larger diff goes as several consecutive changes, so each
/// fits a frame with room for the certificate and signature.
pub const MAX_CHANGE_BYTES: usize = 48_000;

/// Why an inventory batch or change was refused (at the master, or by [`unpack`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// A batch from a peer that is not a registered LSN.
    #[error("inventory batch from {0}, which is not a registered LSN")]
    NotLsn(NodeId),
    /// A change for a node that is neither the LSN itself nor one of its children.
    #[error("change for {node} carried by {lsn}, which is not its LSN")]
    NotChild {
        /// The LSN that carried it.
        lsn: NodeId,
        /// The node it names.
        node: NodeId,
    },
    /// A change whose signature is not its node's.
    #[error("change for {0} not signed by it")]
    BadSignature(NodeId),
    /// Bytes that do not decode (zstd, CBOR, or a diff).
    #[error("undecodable inventory data: {0}")]
    Undecodable(String),
    /// Over a bound: the batch's size or count, or a document's entries or bytes.
    #[error("over a bound: {0}")]
    TooLarge(String),
    /// The master holds [`MAX_INVENTORY_DOCUMENTS`](crate::overlay::master::MAX_INVENTORY_DOCUMENTS)
    /// documents, or [`MAX_INVENTORY_BYTES`](crate::overlay::master::MAX_INVENTORY_BYTES),
    /// already.
    #[error("the master holds as many inventories as it may")]
    Full,
}
