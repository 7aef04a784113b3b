//! Parsing and writing the outer packet headers (layout in the [module docs](super)).

/// The most a responder sends to an address nobody has validated, as a multiple of what
/// arrived from it: QUIC's anti-amplification limit (RFC 9000, section 8.1).
pub const AMPLIFICATION_LIMIT: usize = 3;

/// The least a handshake message 1 packet may be. The initiator pads message 1 (its Noise
/// payload, plaintext zeros) to exactly this, and a responder does not answer a shorter one:
/// its message 2 (310 bytes, most of them its certificate) then never carries more than
/// [`AMPLIFICATION_LIMIT`] times the bytes that arrived to an address nobody has validated,
/// so a spoofed message 1 cannot make a node much of an amplifier. Until session 51 message 1
/// was padded to 512 bytes, a 1:1 bound; every dial, retransmission and port-prediction copy
/// paid for it, and messages 1 were a third of a simulated night's WAN bytes.
pub const MIN_HS1_LEN: usize = 128;

/// Bytes a data packet adds to its frame: type, receiver index, counter and AEAD tag.
pub const DATA_OVERHEAD: usize = 1 + 4 + 8 + TAG_LEN;

pub(crate) const TAG_LEN: usize = 16;

const HS1: u8 = 0x11;
const HS2: u8 = 0x12;
const HS3: u8 = 0x13;
const DATA: u8 = 0x14;
const PROBE: u8 = 0x15;
const COOKIE: u8 = 0x16;
const HS1_COOKIE: u8 = 0x17;
const STALE: u8 = 0x18;
const OPENER: u8 = 0x19;
/// The size of a stale-session notice: its type and the index it names.
const STALE_LEN: usize = 5;
/// Bytes in a cookie (see `endpoint/cookie.rs`).
pub(crate) const COOKIE_LEN: usize = 16;
/// The size of a cookie reply: its type, the initiator's index and the cookie.
pub(crate) const COOKIE_REPLY_LEN: usize = 5 + COOKIE_LEN;
/// The size of a reach probe: its type and nonce.
const PROBE_LEN: usize = 9;

/// Why a datagram was dropped before or while decrypting it. The session it was aimed at, if
/// any, is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than its header, or an unknown packet type.
    #[error("malformed packet")]
    Malformed,
    /// Names a session index we do not have (expired, or never existed).
    #[error("no session with index {0:#010x}")]
    UnknownSession(u32),
    /// Failed authentication: tampered, truncated, or encrypted under another key.
    #[error("packet failed authentication")]
    Decrypt,
    /// A replayed or too-old counter.
    #[error(transparent)]
    Replay(#[from] super::ReplayError),
    /// Authenticated, but the frame inside could not be decoded.
    #[error("bad frame: {0}")]
    Frame(#[from] crate::codec::WireError),
    /// A handshake packet that fits no handshake in progress.
    #[error("unexpected handshake packet")]
    UnexpectedHandshake,
    /// A handshake message 1 shorter than [`MIN_HS1_LEN`]: not answered, since the answer
    /// would be more than [`AMPLIFICATION_LIMIT`] times what the (unvalidated) sender sent.
    #[error("handshake message 1 of {0} bytes is shorter than {MIN_HS1_LEN}: not answered")]
    ShortHandshake(usize),
    /// A handshake message 1 over its source's rate limit while the responder is under load:
    /// dropped unanswered.
    #[error("handshake rate limit of the source reached: not answered")]
    RateLimited,
    /// Too large to send.
    #[error("payload of {0} bytes is too large for one packet")]
    TooLarge(usize),
}

/// What a datagram is, by its type byte alone: the simulator's report splits traffic by it.
#[cfg(feature = "sim")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PacketKind {
    /// Any handshake message, with or without a cookie.
    Handshake,
    /// A sealed frame.
    Data,
    /// Probes, cookie replies, stale-session notices, and what is malformed.
    Other,
}

#[cfg(feature = "sim")]
impl PacketKind {
    pub(crate) fn of(datagram: &[u8]) -> Self {
        match datagram.first() {
            Some(&(HS1 | HS2 | HS3 | HS1_COOKIE)) => PacketKind::Handshake,
            Some(&DATA) => PacketKind::Data,
            _ => PacketKind::Other,
        }
    }
}

/// A parsed packet, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    Hs1 {
        sender: u32,
        noise: &'a [u8],
    },
    Hs2 {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    Hs3 {
        receiver: u32,
        noise: &'a [u8],
    },
    Data {
        receiver: u32,
        counter: u64,
        ciphertext: &'a [u8],
    },
    Probe {
        nonce: u64,
    },
    /// A responder under load asks the initiator of `receiver` to prove its address.
    Cookie {
        receiver: u32,
        cookie: [u8; COOKIE_LEN],
    },
    /// Message 1 again, with the cookie its sender was given.
    Hs1Cookie {
        sender: u32,
        cookie: [u8; COOKIE_LEN],
        noise: &'a [u8],
    },
    /// A data packet to `receiver` found no session there (`endpoint/stale.rs`).
    Stale {
        receiver: u32,
    },
    /// Sent with a low TTL to open our own NAT towards a peer; ignored where it arrives.
    Opener,
}

fn cookie_at(b: &[u8], i: usize) -> Option<[u8; COOKIE_LEN]> {
    b.get(i..i + COOKIE_LEN)?.try_into().ok()
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

impl<'a> Packet<'a> {
    pub(crate) fn parse(b: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let m = PacketError::Malformed;
        let (&ty, _) = b.split_first().ok_or(PacketError::Malformed)?;
        Ok(match ty {
            HS1 => Packet::Hs1 { sender: u32_at(b, 1).ok_or(m)?, noise: &b[5..] },
            HS2 => Packet::Hs2 {
                sender: u32_at(b, 1).ok_or(m.clone())?,
                receiver: u32_at(b, 5).ok_or(m)?,
                noise: &b[9..],
            },
            HS3 => Packet::Hs3 { receiver: u32_at(b, 1).ok_or(m)?, noise: &b[5..] },
            DATA => {
                let receiver = u32_at(b, 1).ok_or(m.clone())?;
                let counter = u64_at(b, 5).ok_or(m.clone())?;
                let ciphertext = &b[13..];
                if ciphertext.len() < TAG_LEN {
                    return Err(m);
                }
                Packet::Data { receiver, counter, ciphertext }
            }
            PROBE if b.len() == PROBE_LEN => Packet::Probe { nonce: u64_at(b, 1).ok_or(m)? },
            COOKIE if b.len() == COOKIE_REPLY_LEN => Packet::Cookie {
                receiver: u32_at(b, 1).ok_or(m.clone())?,
                cookie: cookie_at(b, 5).ok_or(m)?,
            },
            HS1_COOKIE => Packet::Hs1Cookie {
                sender: u32_at(b, 1).ok_or(m.clone())?,
                cookie: cookie_at(b, 5).ok_or(m)?,
                noise: &b[5 + COOKIE_LEN..],
            },
            STALE if b.len() == STALE_LEN => Packet::Stale { receiver: u32_at(b, 1).ok_or(m)? },
            OPENER if b.len() == 1 => Packet::Opener,
            _ => return Err(m),
        })
    }

    /// The NAT opener: its type byte alone.
    pub(crate) fn opener() -> Vec<u8> {
        vec![OPENER]
    }

    pub(crate) fn hs1(sender: u32, noise: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + noise.len());
        out.push(HS1);
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(noise);
        out
    }

    pub(crate) fn cookie(receiver: u32, cookie: &[u8; COOKIE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(COOKIE_REPLY_LEN);
        out.push(COOKIE);
        out.extend_from_slice(&receiver.to_be_bytes());
        out.extend_from_slice(cookie);
        out
    }

    pub(crate) fn hs1_cookie(sender: u32, cookie: &[u8; COOKIE_LEN], noise: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + COOKIE_LEN + noise.len());
        out.push(HS1_COOKIE);
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(cookie);
        out.extend_from_slice(noise);
        out
    }

    pub(crate) fn hs2(sender: u32, receiver: u32, noise: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + noise.len());
        out.push(HS2);
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(&receiver.to_be_bytes());
        out.extend_from_slice(noise);
        out
    }

    pub(crate) fn hs3(receiver: u32, noise: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + noise.len());
        out.push(HS3);
        out.extend_from_slice(&receiver.to_be_bytes());
        out.extend_from_slice(noise);
        out
    }

    pub(crate) fn stale(receiver: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(STALE_LEN);
        out.push(STALE);
        out.extend_from_slice(&receiver.to_be_bytes());
        out
    }

    pub(crate) fn probe(nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROBE_LEN);
        out.push(PROBE);
        out.extend_from_slice(&nonce.to_be_bytes());
        out
    }

    /// Writes a data header into `out` (cleared first); the ciphertext follows.
    pub(crate) fn data_header(out: &mut Vec<u8>, receiver: u32, counter: u64) {
        out.clear();
        out.push(DATA);
        out.extend_from_slice(&receiver.to_be_bytes());
        out.extend_from_slice(&counter.to_be_bytes());
    }
}

pub(crate) const DATA_HEADER_LEN: usize = 13;

/// Parses `bytes` as one packet and writes the parsed packet back out. Not part of the API:
/// the fuzz targets call it (`Packet` is crate-private) to check that parsing never panics
/// and that a packet that parses is exactly the bytes its fields write.
#[doc(hidden)]
pub fn reencode_packet(bytes: &[u8]) -> Result<Vec<u8>, PacketError> {
    Ok(match Packet::parse(bytes)? {
        Packet::Hs1 { sender, noise } => Packet::hs1(sender, noise),
        Packet::Hs2 { sender, receiver, noise } => Packet::hs2(sender, receiver, noise),
        Packet::Hs3 { receiver, noise } => Packet::hs3(receiver, noise),
        Packet::Data { receiver, counter, ciphertext } => {
            let mut out = Vec::with_capacity(DATA_HEADER_LEN + ciphertext.len());
            Packet::data_header(&mut out, receiver, counter);
            out.extend_from_slice(ciphertext);
            out
        }
        Packet::Probe { nonce } => Packet::probe(nonce),
        Packet::Cookie { receiver, cookie } => Packet::cookie(receiver, &cookie),
        Packet::Hs1Cookie { sender, cookie, noise } => Packet::hs1_cookie(sender, &cookie, noise),
        Packet::Stale { receiver } => Packet::stale(receiver),
        Packet::Opener => Packet::opener(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn headers_round_trip() {
        assert_eq!(
            Packet::parse(&Packet::hs1(7, b"e")).unwrap(),
            Packet::Hs1 { sender: 7, noise: b"e" }
        );
        assert_eq!(
            Packet::parse(&Packet::hs2(1, 2, b"x")).unwrap(),
            Packet::Hs2 { sender: 1, receiver: 2, noise: b"x" }
        );
        assert_eq!(
            Packet::parse(&Packet::hs3(3, b"")).unwrap(),
            Packet::Hs3 { receiver: 3, noise: b"" }
        );
        let mut d = Vec::new();
        Packet::data_header(&mut d, 9, 42);
        assert_eq!(d.len(), DATA_HEADER_LEN);
        d.extend_from_slice(&[0; TAG_LEN]);
        assert!(matches!(
            Packet::parse(&d).unwrap(),
            Packet::Data { receiver: 9, counter: 42, .. }
        ));
        assert_eq!(Packet::parse(&Packet::probe(0xfeed)).unwrap(), Packet::Probe { nonce: 0xfeed });
        assert_eq!(Packet::parse(&[0x15, 0, 0]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&[0x15; 10]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&[]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&[0x14, 0, 0]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&[0x99]), Err(PacketError::Malformed));
        let cookie = [5; COOKIE_LEN];
        let reply = Packet::cookie(8, &cookie);
        assert_eq!(reply.len(), COOKIE_REPLY_LEN);
        assert_eq!(Packet::parse(&reply).unwrap(), Packet::Cookie { receiver: 8, cookie });
        assert_eq!(Packet::parse(&reply[..20]), Err(PacketError::Malformed));
        assert_eq!(
            Packet::parse(&Packet::hs1_cookie(7, &cookie, b"e")).unwrap(),
            Packet::Hs1Cookie { sender: 7, cookie, noise: b"e" }
        );
        assert_eq!(Packet::parse(&[0x17, 0, 0, 0, 1, 2]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&Packet::stale(11)).unwrap(), Packet::Stale { receiver: 11 });
        assert_eq!(Packet::parse(&[0x18, 0, 0, 0]), Err(PacketError::Malformed));
        assert_eq!(Packet::parse(&[0x18, 0, 0, 0, 0, 0]), Err(PacketError::Malformed));
    }

    #[test]
    fn reencoding_gives_back_every_kind_of_packet() {
        let mut data = Vec::new();
        Packet::data_header(&mut data, 9, 42);
        data.extend_from_slice(&[7; TAG_LEN + 3]);
        let packets = [
            Packet::hs1(7, b"e"),
            Packet::hs2(1, 2, b"x"),
            Packet::hs3(3, b""),
            Packet::stale(12),
            data,
            Packet::probe(5),
            Packet::cookie(4, &[1; COOKIE_LEN]),
            Packet::hs1_cookie(4, &[2; COOKIE_LEN], b"e"),
        ];
        for p in packets {
            assert_eq!(reencode_packet(&p), Ok(p.clone()));
        }
        assert_eq!(reencode_packet(&[0x13, 0, 0]), Err(PacketError::Malformed));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Packet::parse(&bytes);
        }
    }
}
