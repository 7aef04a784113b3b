use super::{cbor, Message, WireError};

/// The wire version this build speaks.
pub const WIRE_VERSION: u8 = 1;

/// Largest frame accepted or produced, header included. Fits a UDP datagram together with the
/// session header and tag.
pub const MAX_FRAME_LEN: usize = 65_000;

const HEADER_LEN: usize = 2;

macro_rules! message_types {
    ($($variant:ident = $tag:literal),* $(,)?) => {
        /// The type byte of a frame.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum MessageType {
            $(
                #[doc = concat!("[`Message::", stringify!($variant), "`]")]
                $variant = $tag,
            )*
        }

        impl MessageType {
            /// Every message type, in tag order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant),*];

            /// The type for a tag byte.
            pub fn from_tag(tag: u8) -> Option<MessageType> {
                match tag {
                    $($tag => Some(MessageType::$variant),)*
                    _ => None,
                }
            }
        }

        impl Message {
            /// This message's type.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $(Message::$variant(_) => MessageType::$variant,)*
                }
            }

            fn write_body(&self, out: &mut Vec<u8>) {
                match self {
                    $(Message::$variant(m) => cbor::write(out, m),)*
                }
            }

            fn read_body(ty: MessageType, body: &[u8]) -> Result<Message, WireError> {
                Ok(match ty {
                    $(MessageType::$variant => Message::$variant(cbor::from_slice(body)?),)*
                })
            }
        }
    };
}

message_types! {
    Ping = 0x01,
    Pong = 0x02,
    LsnQuery = 0x03,
    NodeList = 0x04,
    Ack = 0x05,
    Join = 0x06,
    Part = 0x07,
    Uptime = 0x08,
    Update = 0x09,
    Error = 0x0a,
    Takeover = 0x0b,
    Resync = 0x0c,
    Adopt = 0x0d,
    ProbeRequest = 0x0e,
    ReachProof = 0x0f,
    Enroll = 0x10,
    Certificate = 0x11,
    Revocations = 0x12,
    Keepalive = 0x13,
    KadPing = 0x20,
    KadPong = 0x21,
    KadStore = 0x22,
    KadStored = 0x23,
    KadFindNode = 0x24,
    KadNodes = 0x25,
    KadFindValue = 0x26,
    KadValue = 0x27,
    KadRenew = 0x28,
    KadRenewed = 0x29,
    App = 0x30,
    Envelope = 0x31,
    Forward = 0x32,
    Report = 0x33,
    Request = 0x34,
    Response = 0x35,
    FleetRequest = 0x36,
    FleetAcks = 0x37,
    InventoryChange = 0x38,
    InventoryBatch = 0x39,
    InventoryAcks = 0x3a,
    InventoryResult = 0x3b,
    FleetQuery = 0x3c,
    QueryAnswer = 0x3d,
    ReportBatch = 0x3e,
    ReportAcks = 0x3f,
    ObserveMe = 0x40,
    Observed = 0x41,
    NatReport = 0x42,
    Introduce = 0x43,
    Introduction = 0x44,
    Introduced = 0x45,
    GsnGrant = 0x46,
    RelayData = 0x47,
    Relayed = 0x48,
    BulkChunk = 0x49,
    BulkAck = 0x4a,
    BulkStop = 0x4b,
    GsnProbe = 0x4c,
    GsnProbeAck = 0x4d,
    GsnChoice = 0x4e,
}

/// Encodes `msg` as a frame, appending to `out`.
///
/// Returns [`WireError::TooLarge`] (leaving `out` as it was) when the frame would exceed
/// [`MAX_FRAME_LEN`], so an oversized application payload is refused at the sender.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.push(WIRE_VERSION);
    out.push(msg.message_type() as u8);
    msg.write_body(out);
    let len = out.len() - start;
    if len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(WireError::TooLarge { len, max: MAX_FRAME_LEN });
    }
    Ok(())
}

/// The encoded size of `msg` in bytes.
pub fn encoded_len(msg: &Message) -> usize {
    let mut out = Vec::new();
    msg.write_body(&mut out);
    out.len() + HEADER_LEN
}

/// Decodes one frame. The size limit is checked first; arbitrary input yields an error, never
/// a panic.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    if frame.len() > MAX_FRAME_LEN {
        return Err(WireError::TooLarge { len: frame.len(), max: MAX_FRAME_LEN });
    }
    let [version, tag, body @ ..] = frame else {
        return Err(WireError::Truncated);
    };
    if *version != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion(*version));
    }
    let ty = MessageType::from_tag(*tag).ok_or(WireError::UnknownType(*tag))?;
    Message::read_body(ty, body)
}
