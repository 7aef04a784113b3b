//! Reach (issue 16, phase 1): NAT classification and introductions (hole punching).
//!
//! A node learns how its NAT behaves from the addresses others observe for it
//! ([`ObserveMe`] / [`Observed`]) and from whether an unsolicited probe from a helper reaches
//! it; it reports the result ([`NatReport`]). A node whose direct dial to a peer gets no answer
//! asks the introducer (the master now, a GSN later) to introduce them ([`Introduce`]); the
//! introducer sends each side the other's addresses ([`Introduction`]) and both dial at once.

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::addr::WireAddr;
use crate::NodeId;

/// How a node's NAT maps its outbound flows to public addresses (RFC 4787), as the node
/// learned it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[non_exhaustive]
pub enum Mapping {
    /// Not learned (yet), or no second observer was available.
    #[default]
    Unknown,
    /// No NAT: the address others see is the node's own.
    Public,
    /// One public address and port for every destination (full cone, restricted cones):
    /// an address learned from one observer is good for every peer.
    EndpointIndependent,
    /// A new public port per destination (symmetric NAT): only port prediction or a relay
    /// gets a peer through.
    EndpointDependent,
}

impl Mapping {
    /// A short name for reports and the topology.
    pub fn name(self) -> &'static str {
        match self {
            Mapping::Unknown => "unknown",
            Mapping::Public => "public",
            Mapping::EndpointIndependent => "endpoint-independent",
            Mapping::EndpointDependent => "endpoint-dependent",
        }
    }
}

impl From<Mapping> for u8 {
    fn from(m: Mapping) -> u8 {
        match m {
            Mapping::Unknown => 0,
            Mapping::Public => 1,
            Mapping::EndpointIndependent => 2,
            Mapping::EndpointDependent => 3,
        }
    }
}

impl TryFrom<u8> for Mapping {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            0 => Mapping::Unknown,
            1 => Mapping::Public,
            2 => Mapping::EndpointIndependent,
            3 => Mapping::EndpointDependent,
            _ => return Err(format!("unknown mapping {v}")),
        })
    }
}

/// What a node learned of its NAT.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize_tuple, Deserialize_tuple)]
pub struct NatClass {
    /// How its outbound flows are mapped.
    pub mapping: Mapping,
    /// Whether a datagram from an address it never sent to reaches it (endpoint-independent
    /// filtering, or no NAT); `None` while not tested.
    pub inbound: Option<bool>,
}

impl std::fmt::Display for NatClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inbound = match self.inbound {
            Some(true) => "open",
            Some(false) => "filtered",
            None => "untested",
        };
        write!(f, "{} mapping, {inbound} inbound", self.mapping.name())
    }
}

/// Asks the receiver which address this message came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ObserveMe {
    /// Request number, echoed in the [`Observed`].
    pub seq: u32,
}

/// The answer to [`ObserveMe`]: the address the request came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Observed {
    /// The request's number.
    pub seq: u32,
    /// The source address of the request, as the sender of this answer saw it.
    pub addr: WireAddr,
    /// (Master) The nonce of the reach probe it asked `helper` to send to `addr`; 0 for none.
    pub nonce: u64,
    /// (Master) A node that takes unsolicited inbound, to observe the asker a second time
    /// (after the probe had its chance) and so tell its mapping.
    pub helper: Option<super::Contact>,
}

/// A node's NAT class and the address the master observed for it, for the topology and the
/// introducer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct NatReport {
    /// What it learned.
    pub class: NatClass,
    /// The address the master observed for it.
    pub observed: WireAddr,
    /// Whether its config lets it serve as a GSN (relay) when it takes unsolicited inbound.
    pub gsn: bool,
}

/// Asks the introducer to introduce the sender to `target` (a direct dial got no answer).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Introduce {
    /// Request number: a refusal comes back as an error with it.
    pub seq: u32,
    /// The node to reach.
    pub target: NodeId,
    /// Whether the pair is worth port prediction ([`Introduction::predict`]): a session an
    /// application waits for (a transfer, a ping, a relayed session in use), not a DHT
    /// request, which moves on to other contacts. Prediction sends up to
    /// [`MAX_PREDICTED_PORTS`] copies of message 1 (156 bytes each on the wire).
    pub predict: bool,
}

/// The introducer tells `to` to dial `peer` at `addrs` now (hole punching). Sent by the
/// introducer, or relayed unchanged by `to`'s LSN when `to` is its child.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Introduction {
    /// The introducer's number for this introduction.
    pub nonce: u64,
    /// Who is to dial.
    pub to: NodeId,
    /// Whom to dial.
    pub peer: NodeId,
    /// Where: the address the introducer observed for `peer`, then its local address (at
    /// most [`MAX_INTRO_ADDRS`] are used).
    pub addrs: Vec<WireAddr>,
    /// `to` answers the introducer with [`Introduced`] at once, directly, so the introducer
    /// observes its current public address and hands it to `peer`.
    pub answer: bool,
    /// The GSN to relay through if no direct session opens in time (issue 16, phase 2).
    pub relay: Option<super::Contact>,
    /// `peer`'s NAT gives every destination a port of its own (`Mapping::EndpointDependent`),
    /// so the port it will use towards us is not the one observed: besides `addrs`, also
    /// send our message 1 to this many ports around the first address's port (port
    /// prediction; at most [`MAX_PREDICTED_PORTS`] are used). 0: none.
    pub predict: u16,
}

/// The introduced node checks in with the introducer (see [`Introduction::answer`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Introduced {
    /// The introduction's nonce.
    pub nonce: u64,
}

/// Addresses of an [`Introduction`] that are dialled; the rest are ignored.
pub const MAX_INTRO_ADDRS: usize = 2;

/// Ports around an [`Introduction`]'s first address that may be tried for a peer behind a
/// NAT that maps each destination to its own port; more are ignored.
pub const MAX_PREDICTED_PORTS: u16 = 256;
