//! Reach (issue 16, phase 2): Global Super Nodes and the relay.
//!
//! The master appoints nodes that take unsolicited inbound and are allowed to serve as
//! GSNs ([`GsnGrant`]), and names one in each [`Introduction`](super::Introduction)
//! ([`Introduction::relay`](super::Introduction::relay)). When the hole punch produces no
//! session, both sides open a session with that GSN and send each other their Noise
//! datagrams inside [`RelayData`]; the GSN passes them on as [`Relayed`]. The end-to-end
//! session runs inside, so the GSN can neither read nor forge what it carries.

use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::WireAddr;
use crate::{id::serde_bytes_array, NodeId};

/// The master tells a node whether it serves as a GSN (forwards [`RelayData`]) now.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnGrant {
    /// Serve (true) or stop serving (false).
    pub active: bool,
    /// With `active`: the master's signed statement that the node is a GSN, which it
    /// publishes in the DHT's GSN directory (`overlay/gsn_ticket.rs`).
    pub ticket: Option<GsnTicket>,
}

/// The master's signed statement that `gsn` serves as a GSN at `addr`: what a GSN publishes
/// in the DHT ([`KeyKind::Gsn`](crate::dht::KeyKind::Gsn)) so that LSNs find GSNs without
/// asking the master. The signature (ed25519 by the master's key, domain
/// `fleetmesh/v1/gsn-ticket`) covers every other field and the network key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnTicket {
    /// The GSN.
    pub gsn: NodeId,
    /// Where the master observed it (where members reach it).
    pub addr: WireAddr,
    /// Reliability: since when (UNIX seconds) the node has served without a break.
    pub since: u64,
    /// Reliability: how many times the master confirmed the node's evidence (its reports
    /// showing unsolicited inbound) during that tenure.
    pub confirmed: u32,
    /// Not valid after this (UNIX seconds); the GSN asks for a fresh one before.
    pub expires: u64,
    /// The master's signature.
    #[serde(with = "serde_bytes_array")]
    pub signature: [u8; 64],
}

/// An LSN measures its round-trip time to a GSN it may hand its children
/// (`node/gsn_survey.rs`); the GSN answers with [`GsnProbeAck`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnProbe {
    /// Echoed in the answer.
    pub nonce: u32,
}

/// A GSN's answer to a [`GsnProbe`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnProbeAck {
    /// The probe's nonce.
    pub nonce: u32,
}

/// An LSN tells the master which GSN it measured nearest, so that the master names that
/// one in the introductions of the LSN and its children.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct GsnChoice {
    /// The GSN; `None` withdraws an earlier choice.
    pub gsn: Option<NodeId>,
    /// The round trip measured to it, milliseconds (for the topology).
    pub rtt_ms: u32,
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
