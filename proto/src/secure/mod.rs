//! Secure links and end-to-end envelopes.
//!
//! * **Links.** Every peer-to-peer link is a Noise `XX` session
//!   (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, via the `snow` crate): mutual authentication of both
//!   X25519 static keys, forward secrecy from ephemeral keys, ChaCha20-Poly1305 for data. Each
//!   side sends its admission certificate inside the handshake (encrypted) and the other side
//!   checks it binds the static key the handshake proved. Data packets carry an explicit 64-bit
//!   counter used as the AEAD nonce, so lost and reordered datagrams decrypt independently; a
//!   sliding-window filter ([`ReplayWindow`]) rejects duplicates and stale counters.
//! * **Envelopes.** Master ↔ node payloads that pass through LSNs and relays are additionally
//!   sealed end to end ([`SealedEnvelope`]): signed with the sender's ed25519 key and encrypted
//!   to the recipient's X25519 key with HPKE (RFC 9180, X25519-HKDF-SHA256, ChaCha20-Poly1305).
//!
//! # Packet layout
//!
//! ```text
//! handshake 1:  0x11 | sender index (u32) | noise message 1 (e)
//! handshake 2:  0x12 | sender index (u32) | receiver index (u32) | noise message 2 (e, ee, s, es + certificate)
//! handshake 3:  0x13 | receiver index (u32) | noise message 3 (s, se + certificate or enrollment request)
//! data:         0x14 | receiver index (u32) | counter (u64) | ciphertext + 16-byte tag
//! reach probe:  0x15 | nonce (u64)                                     (exactly 9 bytes)
//! cookie reply: 0x16 | receiver index (u32) | cookie (16 bytes)       (exactly 21 bytes)
//! handshake 1 with cookie: 0x17 | sender index (u32) | cookie (16 bytes) | noise message 1
//! stale session: 0x18 | receiver index (u32)                        (exactly 5 bytes)
//! NAT opener:   0x19                                                 (exactly 1 byte)
//! ```
//! A data packet naming a session the receiver does not hold is answered with a stale-session
//! notice (smaller than what arrived, and rate-limited), on which the sender opens a fresh
//! session beside the old one (`endpoint/stale.rs`).
//! A responder under load answers a message 1 without a valid cookie with a cookie reply
//! instead of message 2 (`endpoint/cookie.rs`); the initiator sends the same Noise message
//! again behind the 0x17 header.
//! A NAT opener is what a hole punch sends with a low TTL ahead of the peer: it only has to
//! create our own NAT's mapping and dies before the peer's NAT, so it carries nothing (a
//! padded message 1 there cost 540 bytes that never arrived: a third of the WAN bytes of a
//! simulated night's handshakes). It is ignored where it does arrive.
//! The reach probe is the one packet outside a session: unauthenticated, never answered to its
//! source (so it cannot be used for reflection), and only meaningful to the master, to which
//! the receiver echoes the nonce over its authenticated session (LSN eligibility, issue 6).
//! Integers are big-endian. Indices are chosen at random by each side and name the session
//! independently of the source address, so a peer that moves keeps its session. A data packet
//! costs 29 bytes over its frame.

mod envelope;
mod envelope_window;
mod handshake;
mod packet;
mod replay;
mod rng;
mod session;

#[doc(hidden)]
pub use envelope::open_envelope_plaintext;
pub use envelope::{open_envelope, seal_envelope, EnvelopeError, Opened, SealedEnvelope};
pub use envelope_window::EnvelopeWindow;
#[doc(hidden)]
pub use handshake::reencode_handshake_payload;
pub use handshake::HandshakeError;
pub(crate) use handshake::{Credential, Handshake};
#[doc(hidden)]
pub use packet::reencode_packet;
#[cfg(feature = "sim")]
pub(crate) use packet::PacketKind;
pub(crate) use packet::{Packet, COOKIE_LEN};
pub use packet::{PacketError, AMPLIFICATION_LIMIT, DATA_OVERHEAD, MIN_HS1_LEN};
pub use replay::{ReplayError, ReplayWindow};
pub(crate) use rng::SeededResolver;
pub use session::{session_pair, Session, SessionError};

/// The Noise protocol name every fleetmesh link uses.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// Bound into every handshake: peers speaking another protocol or version fail at once.
pub(crate) const PROLOGUE: &[u8] = b"fleetmesh/1";

#[cfg(test)]
mod tests;
