/// Why bytes could not be decoded as a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than a frame header.
    #[error("frame is truncated")]
    Truncated,
    /// Larger than [`MAX_FRAME_LEN`](crate::wire::MAX_FRAME_LEN).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Size received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A wire version this build does not speak.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// A message type this build does not know.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The body is not a valid encoding of the message.
    #[error("malformed message body: {0}")]
    Malformed(String),
    /// Bytes left over after the message body.
    #[error("{0} unexpected bytes after the message body")]
    TrailingBytes(usize),
}
