//! The wire format: message vocabulary and the versioned frame that carries it.
//!
//! # Frame layout
//!
//! A frame is the plaintext of one secure-session datagram (or one end-to-end envelope):
//!
//! ```text
//!  0        1        2
//! +--------+--------+----------------------------------------+
//! | version|  type  |  body: CBOR, one array, no field names  |
//! +--------+--------+----------------------------------------+
//! ```
//!
//! * `version` is [`WIRE_VERSION`]; a frame of another version is refused with
//!   [`WireError::UnsupportedVersion`] before the body is read (a frame shorter than the
//!   two-byte header is [`WireError::Truncated`]).
//! * `type` selects the message ([`MessageType`]); unknown types are [`WireError::UnknownType`].
//! * The body is the message's fields as a CBOR array in declaration order. Structs are encoded
//!   as tuples so hot messages carry no field-name strings: a `Ping` is 4 to 7 bytes, a `Pong`
//!   with an IPv4 LSN contact 33 (IPv6: up to 49).
//! * The whole frame is at most [`MAX_FRAME_LEN`] bytes; the length is checked before decoding,
//!   and decoding is a pure function of the buffer that never panics on arbitrary input.

pub(crate) mod addr;
mod bulk;
mod frame;
mod inventory;
mod kad;
mod message;
mod nat;
mod relay;
mod report;

pub use addr::WireAddr;
// The codec sits below `wire`, `trust` and `secure` so none of them imports another's encoding.
pub(crate) use crate::codec::cbor;
pub use crate::codec::WireError;
pub use bulk::{BulkAck, BulkChunk, BulkStop, MAX_ACK_RANGES};
pub use frame::{decode, encode, encoded_len, MessageType, MAX_FRAME_LEN, WIRE_VERSION};
pub use inventory::{
    InventoryAcks, InventoryBatch, InventoryChange, InventoryResult, InventoryStatus,
};
pub use kad::{
    KadFindNode, KadFindValue, KadNodes, KadPing, KadPong, KadRenew, KadRenewed, KadStore,
    KadStored, KadValue, Record, RecordRef, MAX_RENEW_ENTRIES,
};
pub use message::{
    Ack, Adopt, AppMessage, Contact, Digest, ErrorCode, ErrorMessage, FleetAcks, FleetQuery,
    FleetRequest, Forward, Join, Keepalive, LsnQuery, Message, NodeList, Part, PartReason, Ping,
    Pong, PresenceChange, PresenceKind, ProbeRequest, QueryAnswer, ReachProof, Request, Response,
    ResponseStatus, Resync, Takeover, Update, Uptime,
};
pub use nat::{
    Introduce, Introduced, Introduction, Mapping, NatClass, NatReport, ObserveMe, Observed,
    MAX_INTRO_ADDRS, MAX_PREDICTED_PORTS,
};
pub use relay::{
    GsnChoice, GsnGrant, GsnProbe, GsnProbeAck, GsnTicket, RelayData, Relayed, MAX_RELAY_BYTES,
};
pub use report::{Report, ReportAcks, ReportBatch, SeqRun};
