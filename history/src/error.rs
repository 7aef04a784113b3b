//! Typed errors, one enum per operation.

/// Why a compressed block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the block did.
    #[error("block truncated")]
    Truncated,
    /// The header names a format version or value mode we do not know.
    #[error("unknown block format {0}")]
    UnknownFormat(u8),
    /// The header claims more points than a block may hold.
    #[error("block claims {0} points, more than the limit")]
    TooManyPoints(u32),
    /// Bytes follow the block's last point.
    #[error("trailing bytes after block")]
    Trailing,
    /// An integer value does not fit the quantised range.
    #[error("value out of range")]
    ValueRange,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A series name is empty or longer than [`crate::MAX_SERIES_NAME`] bytes.
    #[error("invalid series name")]
    SeriesName,
    /// The store already holds [`crate::MAX_SERIES`] series.
    #[error("too many series")]
    TooManySeries,
    /// A sample is older than the last one of its series.
    #[error("sample out of order for series {0}")]
    OutOfOrder(String),
    /// A sealed block failed to decode (a checksum passed, so this is a bug or a format change).
    #[error("block: {0}")]
    Decode(#[from] DecodeError),
    /// The query was invalid.
    #[error("query: {0}")]
    Query(#[from] QueryError),
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The range is empty or the bucket width is zero.
    #[error("empty range or zero bucket width")]
    EmptyRange,
    /// The answer would have more than [`crate::MAX_BUCKETS`] buckets.
    #[error("{0} buckets requested, more than the limit")]
    TooManyBuckets(u64),
    /// Aggregated series do not share one bucket grid.
    #[error("series do not share a bucket grid")]
    GridMismatch,
    /// More series to aggregate than [`crate::MAX_AGGREGATE_INPUTS`].
    #[error("too many series to aggregate")]
    TooManyInputs,
}
