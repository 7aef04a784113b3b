use std::net::SocketAddr;

use super::SendError;
use crate::{
    secure::HandshakeError,
    trust::RevocationError,
    trust::{CertFlags, Certificate, EnrollError},
    wire::{ErrorMessage, Message},
    NodeId,
};

/// What an [`Endpoint`](super::Endpoint) reports. Every failure the endpoint sees surfaces here
/// or as a returned error (thesis S16).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A session with `peer` is established.
    Connected {
        /// The peer.
        peer: NodeId,
        /// Where it is.
        addr: SocketAddr,
        /// The roles its certificate grants.
        flags: CertFlags,
        /// Whether we opened the session.
        initiator: bool,
    },
    /// A session we tried to open failed. Messages queued for it are handed back.
    ConnectFailed {
        /// Whom we dialled.
        addr: SocketAddr,
        /// Why it failed.
        error: HandshakeError,
        /// Messages that were waiting for this session, unsent.
        unsent: Vec<Message>,
    },
    /// We refused a peer that tried to open a session with us.
    HandshakeRejected {
        /// Where it came from.
        addr: SocketAddr,
        /// Why it was refused.
        error: HandshakeError,
    },
    /// A message arrived on an established session.
    Message {
        /// The authenticated sender.
        peer: NodeId,
        /// Where it came from.
        addr: SocketAddr,
        /// The message.
        message: Message,
    },
    /// A session ended.
    Disconnected {
        /// The peer.
        peer: NodeId,
        /// Why.
        reason: DisconnectReason,
    },
    /// We obtained our certificate from the master.
    Enrolled {
        /// The certificate, now in use for every new session.
        certificate: Box<Certificate>,
    },
    /// The master refused our enrollment, or answered with something unusable.
    EnrollmentFailed {
        /// What the master said (or what was wrong with its answer).
        error: ErrorMessage,
    },
    /// (Master) A node enrolled.
    PeerEnrolled {
        /// The node.
        peer: NodeId,
        /// Its new certificate.
        certificate: Box<Certificate>,
    },
    /// (Master) An enrollment request was refused.
    EnrollmentRefused {
        /// The node that asked.
        peer: NodeId,
        /// Why it was refused.
        error: EnrollError,
    },
    /// A command given through the driver failed.
    CommandFailed {
        /// Why.
        error: CommandError,
    },
    /// The session with `peer` now runs over `path`: it was established over TCP after UDP got
    /// no answer, or it moved between UDP and TCP.
    PathChanged {
        /// The peer.
        peer: NodeId,
        /// Where it is.
        addr: SocketAddr,
        /// The path its datagrams now take.
        path: crate::Path,
    },
    /// (Responder) Requests we sent on the session with `peer` went unanswered over UDP (see
    /// `path.rs`, "UDP lost mid-session"). The initiator decides the path, so nothing moves;
    /// a node that knows another path to the peer (a relay) may turn to it.
    PathSilent {
        /// The peer.
        peer: NodeId,
        /// Where its silent session is.
        addr: SocketAddr,
    },
    /// A reach probe arrived (see [`Endpoint::send_reach_probe`](super::Endpoint::send_reach_probe)):
    /// unauthenticated, it only tells that datagrams from `addr` got in over `path`.
    ReachProbe {
        /// Where it came from.
        addr: SocketAddr,
        /// The path it came over.
        path: crate::Path,
        /// The nonce it carried.
        nonce: u64,
        /// Whether we already have a session with `addr` (a stateful firewall may then have let
        /// the probe in as an answer, so it proves nothing).
        session: bool,
    },
    /// A newer revocation list was adopted; sessions with revoked peers were closed.
    RevocationsUpdated {
        /// The new version.
        version: u64,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Nothing received within the idle timeout.
    Idle,
    /// Closed on request.
    Closed,
    /// The peer's certificate was revoked.
    Revoked,
    /// The peer's certificate expired.
    Expired,
    /// We opened it, but the peer never confirmed the handshake's last message (reported as
    /// [`Event::ConnectFailed`], never as a disconnection).
    Unconfirmed,
}

/// A command that failed, as reported by [`Event::CommandFailed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A send failed.
    #[error("send failed: {0}")]
    Send(#[from] SendError),
    /// A revocation list was refused.
    #[error("revocation list refused: {0}")]
    Revocations(#[from] RevocationError),
}
