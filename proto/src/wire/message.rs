//! The overlay's message vocabulary (thesis 5.3, extended).
//!
//! Every struct is encoded as a CBOR array in field order (see the [module docs](super)).
//! Request/reply pairs are matched by a `seq` the requester chooses.

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{addr::WireAddr, kad::*, report::*};
use crate::{
    trust::{Certificate, EnrollRequest, RevocationList},
    NodeId,
};

/// Everything that travels inside a frame. Large, rare messages are boxed so the enum stays
/// small for the hot ones.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Message {
    /// Liveness probe.
    Ping(Ping),
    /// Answer to a [`Ping`], naming the sender's LSN so a misdirected node is redirected.
    Pong(Pong),
    /// Asks the master for the LSNs of the sender's subnet.
    LsnQuery(LsnQuery),
    /// A list of nodes (the master's answer to [`LsnQuery`], an LSN's neighbour list).
    NodeList(NodeList),
    /// Positive acknowledgement of a request; an empty answer to [`LsnQuery`] means "become LSN".
    Ack(Ack),
    /// Asks an LSN (or the master) to accept the sender as a child.
    Join(Join),
    /// Leaves, announced, with a reason.
    Part(Part),
    /// An LSN's uptime, to settle which of two LSNs in one subnet stays.
    Uptime(Uptime),
    /// Presence changes travelling towards the master, with the route taken.
    Update(Update),
    /// A failed operation, reported to whoever asked (thesis S16).
    Error(ErrorMessage),
    /// A hot standby announces it has taken over from a dead LSN.
    Takeover(Takeover),
    /// The master asks an LSN for its full child list (its view diverged).
    Resync(Resync),
    /// The master hands a new LSN the children of the LSN it replaced, so it can announce the
    /// takeover to those its standby list missed.
    Adopt(Adopt),
    /// The master asks a node to send a reach probe to another node (LSN eligibility).
    ProbeRequest(ProbeRequest),
    /// A node tells the master that a reach probe got through to it.
    ReachProof(ReachProof),
    /// A node without a certificate asks the master for one.
    Enroll(Box<EnrollRequest>),
    /// The master's answer to [`Message::Enroll`].
    Certificate(Box<Certificate>),
    /// The master's current revocation list.
    Revocations(Box<RevocationList>),
    /// An LSN's one-way keepalive to the master (no answer unless an echo is asked for).
    Keepalive(Keepalive),
    /// Kademlia liveness probe.
    KadPing(KadPing),
    /// Kademlia liveness answer.
    KadPong(KadPong),
    /// Kademlia: store a record.
    KadStore(Box<KadStore>),
    /// Kademlia: the record was stored.
    KadStored(KadStored),
    /// Kademlia: the k closest contacts to a target, please.
    KadFindNode(KadFindNode),
    /// Kademlia: contacts close to a target.
    KadNodes(KadNodes),
    /// Kademlia: the value under a key, or closer contacts.
    KadFindValue(KadFindValue),
    /// Kademlia: a value, or closer contacts.
    KadValue(Box<KadValue>),
    /// Kademlia: renew these records, held already (a republish without the records).
    KadRenew(Box<KadRenew>),
    /// Kademlia: renewed, except the records named missing.
    KadRenewed(KadRenewed),
    /// An application payload.
    App(AppMessage),
    /// An end-to-end sealed envelope, routed by nodes that can neither read nor forge it.
    Envelope(Box<crate::secure::SealedEnvelope>),
    /// An envelope for `to`, handed hop by hop (master → LSN → node); acknowledged per hop.
    Forward(Box<Forward>),
    /// A node's envelope for the master, handed hop by hop (node → LSN → master);
    /// acknowledged per hop.
    Report(Box<Report>),
    /// The master's request to a node (only inside an envelope): answered with a
    /// [`Response`], handled at most once.
    Request(Box<Request>),
    /// A node's answer to a [`Request`] (only inside an envelope, in a [`Report`]).
    Response(Box<Response>),
    /// The master's request to every node under an LSN, signed by the master; the LSN fans
    /// it out to its children (`overlay/fleet.rs`).
    FleetRequest(Box<FleetRequest>),
    /// An LSN tells the master which of its children took a [`FleetRequest`].
    FleetAcks(Box<FleetAcks>),
    /// A node's signed change to its inventory, for its LSN to batch (`overlay/inventory`).
    InventoryChange(Box<super::InventoryChange>),
    /// An LSN's compressed batch of inventory changes for the master.
    InventoryBatch(Box<super::InventoryBatch>),
    /// The master's results for an [`InventoryBatch`](super::InventoryBatch).
    InventoryAcks(Box<super::InventoryAcks>),
    /// The master's result for one node's change, passed on by its LSN.
    InventoryResult(super::InventoryResult),
    /// The master's query for every node under an LSN, signed by the master; the LSN asks its
    /// children and combines their answers into one (`overlay/query.rs`).
    FleetQuery(Box<FleetQuery>),
    /// An answer to a [`FleetQuery`]: a child's to its LSN, or an LSN's combination of its
    /// children's to the master.
    QueryAnswer(Box<QueryAnswer>),
    /// An LSN's children's reports for the master, carried together (`node/report_batch.rs`).
    ReportBatch(Box<ReportBatch>),
    /// The master's acknowledgement of the reports of a [`ReportBatch`] it took.
    ReportAcks(Box<ReportAcks>),
    /// Which address did this come from? (NAT classification, `wire/nat.rs`.)
    ObserveMe(super::ObserveMe),
    /// The address an [`ObserveMe`](super::ObserveMe) came from.
    Observed(super::Observed),
    /// A node's NAT class, for the master.
    NatReport(super::NatReport),
    /// Asks the introducer to introduce the sender to a node it cannot reach.
    Introduce(super::Introduce),
    /// The introducer tells a node to dial a peer at once (hole punching).
    Introduction(Box<super::Introduction>),
    /// An introduced node checks in with the introducer.
    Introduced(super::Introduced),
    /// The master tells a node whether it serves as a GSN (relay).
    GsnGrant(super::GsnGrant),
    /// A member's datagram for another member, through a GSN.
    RelayData(Box<super::RelayData>),
    /// A GSN passes on a member's [`RelayData`](super::RelayData).
    Relayed(Box<super::Relayed>),
    /// A chunk of a bulk transfer between peers.
    BulkChunk(Box<super::BulkChunk>),
    /// The receiver acknowledges a bulk transfer's chunks.
    BulkAck(Box<super::BulkAck>),
    /// The receiver refuses, or gave up on, a bulk transfer.
    BulkStop(super::BulkStop),
    /// An LSN measures its round trip to a GSN.
    GsnProbe(super::GsnProbe),
    /// A GSN answers a [`GsnProbe`](super::GsnProbe).
    GsnProbeAck(super::GsnProbeAck),
    /// An LSN tells the master the GSN it measured nearest.
    GsnChoice(super::GsnChoice),
}

/// A node and where to reach it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Contact {
    /// The node.
    pub id: NodeId,
    /// Its address.
    pub addr: WireAddr,
}

/// Liveness probe.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Ping {
    /// Echoed in the [`Pong`].
    pub seq: u32,
}

/// Answer to a [`Ping`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Pong {
    /// The ping's sequence number.
    pub seq: u32,
    /// The sender's LSN (itself when it is one); `None` while it has none.
    pub lsn: Option<Contact>,
}

/// Asks the master for the LSNs of the sender's subnet.
///
/// The master keys subnets by the sender's local prefix and its observed public address under
/// the same mask (thesis 5.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct LsnQuery {
    /// Request number, echoed in the answer.
    pub seq: u32,
    /// The sender's local address.
    pub local: WireAddr,
    /// The prefix length of the sender's local network.
    pub prefix_len: u8,
}

/// A list of nodes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct NodeList {
    /// The request this answers (0 when unsolicited).
    pub seq: u32,
    /// The nodes, best first.
    pub nodes: Vec<Contact>,
}

/// Positive acknowledgement.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Ack {
    /// The request acknowledged.
    pub seq: u32,
}

/// Asks to become the receiver's child.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Join {
    /// Request number, echoed in the [`Ack`].
    pub seq: u32,
    /// The sender's local address.
    pub local: WireAddr,
    /// The prefix length of the sender's local network (the master keys subnets by it).
    pub prefix_len: u8,
    /// The sender's recent average uptime in seconds (ranks LSN successors).
    pub uptime_secs: u32,
}

/// Why a node leaves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
#[non_exhaustive]
pub enum PartReason {
    /// Shut down on purpose.
    Shutdown,
    /// Stopped answering (decided by the parent, never sent by the node itself).
    Lost,
    /// Moved to another network.
    Moved,
    /// An LSN yielding to a better LSN in the same subnet.
    Yield,
}

impl From<PartReason> for u8 {
    fn from(r: PartReason) -> u8 {
        match r {
            PartReason::Shutdown => 0,
            PartReason::Lost => 1,
            PartReason::Moved => 2,
            PartReason::Yield => 3,
        }
    }
}

impl TryFrom<u8> for PartReason {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        Ok(match v {
            0 => PartReason::Shutdown,
            1 => PartReason::Lost,
            2 => PartReason::Moved,
            3 => PartReason::Yield,
            _ => return Err(format!("unknown part reason {v}")),
        })
    }
}

/// Announced departure.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Part {
    /// Why.
    pub reason: PartReason,
    /// When yielding: the LSN to join instead.
    pub better_lsn: Option<Contact>,
}

/// An LSN's uptime.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Uptime {
    /// Seconds the sender has been LSN.
    pub uptime_secs: u64,
}

/// An LSN's keepalive to the master, and the master's echo.
///
/// It holds the NAT mapping towards the master open and keeps the LSN alive in the master's
/// registry; the master does not answer it. To learn whether its NAT keeps an idle mapping
/// longer, an LSN asks for an echo: it then stays silent, and the master sends a `Keepalive`
/// back after `echo_after_secs`. If the echo gets through, the mapping outlived that silence
/// and longer keepalive periods are safe.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Keepalive {
    /// Seconds until the sender's next keepalive at the latest (the master allows two and a
    /// half such periods of silence before calling the LSN lost). 0 in the master's echo.
    pub interval_secs: u16,
    /// Asks the master to send an echo after this many seconds of the LSN's silence; 0 asks
    /// for nothing.
    pub echo_after_secs: u16,
    /// The digest of the LSN's child set, every `digest_interval` (10 minutes) when no
    /// update carried one: the master resyncs on a mismatch. Riding on a keepalive, it costs
    /// 13 bytes instead of an update and its ack (about 190). `None` otherwise, and in the
    /// master's echo.
    pub digest: Option<Digest>,
}

/// Whether a node arrived or left.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum PresenceKind {
    /// Present.
    Joined,
    /// Gone, with a reason.
    Parted(PartReason),
}

impl From<PresenceKind> for u8 {
    fn from(k: PresenceKind) -> u8 {
        match k {
            PresenceKind::Joined => 0x10,
            PresenceKind::Parted(r) => u8::from(r),
        }
    }
}

impl TryFrom<u8> for PresenceKind {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        if v == 0x10 {
            Ok(PresenceKind::Joined)
        } else {
            PartReason::try_from(v).map(PresenceKind::Parted)
        }
    }
}

/// One node's presence change.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct PresenceChange {
    /// The node.
    pub node: NodeId,
    /// Arrived or left.
    pub kind: PresenceKind,
    /// Its address as its LSN sees it.
    pub addr: WireAddr,
}

/// A compact summary of an LSN's child set, so the master can detect divergence.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Digest {
    /// Number of children.
    pub count: u32,
    /// Order-independent hash of the child ids.
    pub hash: u64,
}

/// Presence travelling towards the master.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Update {
    /// Request number, echoed in the master's [`Ack`].
    pub seq: u32,
    /// Changes since the last acknowledged update.
    pub changes: Vec<PresenceChange>,
    /// The route taken: each forwarder appends itself.
    pub route: Vec<NodeId>,
    /// The sender's child-set digest after these changes.
    pub digest: Option<Digest>,
}

/// What failed, as a stable number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Not a failure: the master has the sender's answer to this already, so nothing more
    /// is needed (a child's reply to another copy of a fleet request it answered).
    pub const ALREADY_REPORTED: ErrorCode = ErrorCode(208);
    /// The request could not be decoded or is not valid here.
    pub const BAD_REQUEST: ErrorCode = ErrorCode(400);
    /// The sender is not admitted (no or invalid certificate).
    pub const NOT_ADMITTED: ErrorCode = ErrorCode(401);
    /// Refused by policy (e.g. enrollment refused, join refused).
    pub const REFUSED: ErrorCode = ErrorCode(403);
    /// The target node is unknown or not present.
    pub const UNREACHABLE: ErrorCode = ErrorCode(404);
    /// The recipient does not know the sender's certificate: send it along next time.
    pub const UNKNOWN_CERTIFICATE: ErrorCode = ErrorCode(412);
    /// The operation timed out downstream.
    pub const TIMEOUT: ErrorCode = ErrorCode(408);
    /// Too many requests; try later.
    pub const BUSY: ErrorCode = ErrorCode(429);
    /// An internal failure on the sender.
    pub const INTERNAL: ErrorCode = ErrorCode(500);
}

/// A failed operation, reported back.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ErrorMessage {
    /// The request that failed (0 when not a reply).
    pub seq: u32,
    /// What failed.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub detail: String,
}

/// An application payload.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct AppMessage {
    /// Application-chosen id (for acknowledgement and deduplication).
    pub id: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A hot standby's announcement that it is the subnet's LSN now.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Takeover {
    /// The LSN that died.
    pub old: NodeId,
    /// The new LSN (the sender) and where its children reach it.
    pub lsn: Contact,
}

/// The master asks an LSN to resend its whole child set.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Resync {
    /// Request number; the LSN answers with a [`NodeList`] carrying it.
    pub seq: u32,
}

/// An end-to-end envelope travelling hop by hop towards `to`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Forward {
    /// This hop's request number, acknowledged with [`Ack`] (or answered with an error).
    pub seq: u32,
    /// The final recipient.
    pub to: NodeId,
    /// The sealed payload.
    pub envelope: crate::secure::SealedEnvelope,
}

/// The master's request to a node: what to do (`kind`, e.g. `"exec"`) and its input.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Request {
    /// The master's id for it: unique, increasing; the node handles each id at most once.
    pub id: u64,
    /// Which handler on the node answers it.
    pub kind: String,
    /// The handler's input.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Not to be handled after this (Unix seconds, the master's clock).
    pub expires: u64,
}

/// How a node answered a [`Request`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResponseStatus(pub u16);

impl ResponseStatus {
    /// The handler ran; the body is its output.
    pub const OK: ResponseStatus = ResponseStatus(0);
    /// The handler ran and failed; the body says why.
    pub const FAILED: ResponseStatus = ResponseStatus(1);
    /// The node has no handler for the kind.
    pub const UNKNOWN_KIND: ResponseStatus = ResponseStatus(2);
    /// The request arrived after it expired and was not handled.
    pub const EXPIRED: ResponseStatus = ResponseStatus(3);
    /// The id is older than anything the node still remembers: it may have been handled
    /// long ago, and is not handled again.
    pub const FORGOTTEN: ResponseStatus = ResponseStatus(4);
}

/// A node's answer to a [`Request`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// How it went.
    pub status: ResponseStatus,
    /// The handler's output (or why it failed).
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A request for many nodes at once: one copy per LSN, which hands it to each child.
///
/// Signed by the master (so neither the LSN nor anyone else can forge or alter it) but not
/// sealed: every LSN on the way reads it. Requests whose body must stay secret from other
/// fleet members go to each node alone ([`Request`] inside an envelope).
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct FleetRequest {
    /// This hop's request number, acknowledged with [`Ack`].
    pub seq: u32,
    /// The request, the same for every node.
    pub request: Request,
    /// Only these of the LSN's nodes are to take it (a request for a tag); none: all of
    /// them.
    pub nodes: Option<Vec<NodeId>>,
    /// The master's X25519 key, to seal the answer to: a node that never had a session with
    /// the master would otherwise open one just to learn it.
    #[serde(with = "crate::id::serde_bytes_array")]
    pub reply_key: [u8; 32],
    /// The master's signature over the network, the request, `nodes` and `reply_key`.
    #[serde(with = "crate::id::serde_bytes_array")]
    pub signature: [u8; 64],
}

/// An LSN's batch of acknowledgements for one [`FleetRequest`]: these children took it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct FleetAcks {
    /// This hop's request number, acknowledged with [`Ack`].
    pub seq: u32,
    /// The request's id.
    pub id: u64,
    /// The children that acknowledged it since the last batch.
    pub nodes: Vec<NodeId>,
}

/// A query for many nodes whose answers are combined on the way: each LSN asks its children,
/// combines their answers with its own and sends the master one (`overlay/query.rs`).
///
/// Signed by the master like a [`FleetRequest`], and read by every LSN on the way.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct FleetQuery {
    /// This hop's request number (the master's copy is acknowledged with [`Ack`]).
    pub seq: u32,
    /// The query: its id, kind, body and expiry.
    pub request: Request,
    /// Only these of the LSN's nodes are asked (a query for a tag); none: all of them.
    pub nodes: Option<Vec<NodeId>>,
    /// How long the LSN waits for its children's answers, in milliseconds.
    pub window_ms: u32,
    /// The master's signature over the network, the request, `nodes` and `window_ms`.
    #[serde(with = "crate::id::serde_bytes_array")]
    pub signature: [u8; 64],
}

/// An answer to a [`FleetQuery`], combined over `hosts` nodes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct QueryAnswer {
    /// This hop's request number, acknowledged with [`Ack`] by the master.
    pub seq: u32,
    /// The query's id.
    pub id: u64,
    /// [`ResponseStatus::OK`] when `body` combines at least one answer.
    pub status: ResponseStatus,
    /// The (combined) answer, or why there is none.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// How many nodes' answers `body` combines.
    pub hosts: u32,
    /// Nodes asked whose handler failed (or whose answer could not be combined).
    pub failed: u32,
    /// Nodes asked that did not answer within the window.
    pub missing: u32,
}

/// The children of a replaced LSN, for its successor to announce itself to.
#[derive(Clone, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct Adopt {
    /// The LSN that was replaced.
    pub old: NodeId,
    /// Its children as the master knew them.
    pub children: Vec<Contact>,
}

/// The master asks the receiver to send an unauthenticated reach probe (outer packet type
/// `0x15`, see [`secure`](crate::secure)) carrying `nonce` to `target`, over UDP. The target
/// proves that unsolicited UDP reaches it by echoing the nonce to the master in a
/// [`ReachProof`]: only nodes that did may be designated LSN (issue 6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ProbeRequest {
    /// The master's random nonce for this probe.
    pub nonce: u64,
    /// Where to send the probe: the target's address on the local network.
    pub target: WireAddr,
}

/// The nonce of a reach probe that reached the sender.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize_tuple, Deserialize_tuple)]
pub struct ReachProof {
    /// The nonce the probe carried.
    pub nonce: u64,
}
