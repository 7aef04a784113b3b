//! Bulk transfers between peers (issue 16: the path manager carries bulk data as well as
//! control messages): one payload, cut into chunks of a size fixed per transfer, sent over the
//! peers' session (direct or relayed, whichever it runs on) and acknowledged by ranges, so a
//! lost chunk is sent again and nothing reaches the application twice or out of order.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

/// Most acknowledged ranges one [`BulkAck`] carries (the highest ones).
pub const MAX_ACK_RANGES: usize = 16;

/// One chunk of a transfer: chunk `index` of `total` bytes cut into `chunk`-byte pieces (the
/// last one shorter).
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct BulkChunk {
    /// The transfer, chosen at random by the sender.
    pub id: u64,
    /// Which chunk.
    pub index: u32,
    /// The whole payload's length.
    pub total: u64,
    /// The chunk size of this transfer.
    pub chunk: u32,
    /// The chunk's bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// The receiver's acknowledgement: every chunk below `next`, and the chunks in `ranges`
/// (half-open `[start, end)`, each above `next`, highest first).
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct BulkAck {
    /// The transfer.
    pub id: u64,
    /// Every chunk below this one arrived.
    pub next: u32,
    /// Chunks above `next` that arrived, at most [`MAX_ACK_RANGES`] ranges.
    pub ranges: Vec<(u32, u32)>,
}

/// The receiver refuses a transfer (too large, too many at once, receiving switched off) or
/// gave up on it; the sender stops and reports why.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct BulkStop {
    /// The transfer.
    pub id: u64,
    /// Why, for the sender's operator.
    pub reason: String,
}
