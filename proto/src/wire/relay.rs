//! Reach (issue 16, phase 2): Global Super Nodes and the relay.
//!
//! The master appoints nodes that take unsolicited inbound and are allowed to serve as
//! GSNs ([`GsnGrant`]), and names one in each [`Introduction`](super::Introduction)
//! ([`Introduction::relay`](super::Introduction::relay)). When the hole punch produces no
//! session, both sides open a session with that GSN and send each other their Noise
//! datagrams inside [`RelayData`]; the GSN passes them on as [`Relayed`]. The end-to-end
//! session runs inside, so the GSN can neither read nor forge what it carries.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::NodeId;

/// The master tells a node whether it serves as a GSN (forwards [`RelayData`]) now.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnGrant {
    /// Serve (true) or stop serving (false).
    pub active: bool,
}

/// A member asks its GSN to pass `bytes` (a datagram of its end-to-end session) to `to`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct RelayData {
    /// The member to pass it to.
    pub to: NodeId,
    /// The datagram, opaque to the GSN.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// The GSN passes on a [`RelayData`] from `from`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Relayed {
    /// The member that sent it (the GSN's session with it authenticates this).
    pub from: NodeId,
    /// The datagram, unchanged.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Largest datagram a GSN passes on: room for the [`RelayData`] around it inside one frame
/// ([`MAX_FRAME_LEN`](super::MAX_FRAME_LEN)), so every end-to-end datagram but the few
/// within a hundred bytes of the frame limit passes; not a control-traffic size, so bulk
/// data can later flow through the same circuits.
pub const MAX_RELAY_BYTES: usize = super::MAX_FRAME_LEN - 128;
