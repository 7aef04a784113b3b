//! The wire format: each frame is a 4-byte big-endian length followed by that many bytes.
//!
//! A dialer's first frame is a hello carrying the port it listens on, so the acceptor can file
//! the connection under the dialer's listening address; every later frame, in both
//! directions, is one datagram. Decoding is a pure function over a buffer that checks the
//! length against the limit before anything is allocated.

/// Bytes in a frame's length prefix.
pub(crate) const HEADER_LEN: usize = 4;

/// Marks a hello and versions the format: a connection from anything else is dropped at once.
const HELLO_MAGIC: [u8; 4] = *b"fmT1";

/// Bytes in a hello's payload: the magic, then the listening port.
const HELLO_LEN: usize = HELLO_MAGIC.len() + 2;

/// The limit for the first frame of an accepted connection: nothing longer can be a hello.
pub(crate) const MAX_HELLO_LEN: usize = HELLO_LEN;

/// Why bytes from the wire are not a valid frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The first frame is not a hello.
    #[error("malformed hello")]
    BadHello,
}

/// A whole frame (header and payload) carrying `payload`, refused if longer than `max`.
pub fn encode(payload: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    let too_long = || FrameError::TooLong { len: payload.len() as u64, max };
    if payload.len() > max {
        return Err(too_long());
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_long())?;
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// The first frame in `buf`: `Ok(Some((payload, consumed)))` when it is complete, `Ok(None)`
/// when more bytes are needed, an error as soon as the header announces more than `max`.
pub(crate) fn decode(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((header, rest)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header);
    // On a target whose usize cannot hold the length it is too long by definition.
    let Some(len_usize) = usize::try_from(len).ok().filter(|&l| l <= max) else {
        return Err(FrameError::TooLong { len: u64::from(len), max });
    };
    Ok(rest.get(..len_usize).map(|payload| (payload, HEADER_LEN + len_usize)))
}

/// The hello frame a dialer listening on `port` sends first.
pub fn hello(port: u16) -> Vec<u8> {
    let mut payload = [0u8; HELLO_LEN];
    payload[..HELLO_MAGIC.len()].copy_from_slice(&HELLO_MAGIC);
    payload[HELLO_MAGIC.len()..].copy_from_slice(&port.to_be_bytes());
    let mut frame = Vec::with_capacity(HEADER_LEN + HELLO_LEN);
    frame.extend_from_slice(&(HELLO_LEN as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The listening port in a hello's payload.
pub(crate) fn parse_hello(payload: &[u8]) -> Result<u16, FrameError> {
    match payload.split_first_chunk::<{ HELLO_MAGIC.len() }>() {
        Some((magic, port)) if *magic == HELLO_MAGIC => {
            let port: [u8; 2] = port.try_into().map_err(|_| FrameError::BadHello)?;
            match u16::from_be_bytes(port) {
                0 => Err(FrameError::BadHello),
                port => Ok(port),
            }
        }
        _ => Err(FrameError::BadHello),
    }
}

/// What the accepting side of a connection makes of `stream`, every byte the dialer sent.
/// Not part of the API: the fuzz targets read streams with it, since a connection's reader is
/// an async task.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The listening port the hello announced.
    pub port: u16,
    /// The datagrams of the complete frames after the hello.
    pub datagrams: Vec<Vec<u8>>,
    /// Bytes of `stream` those frames (hello included) took; the rest is an unfinished frame.
    pub consumed: usize,
}

/// Reads `stream` the way `reader.rs` reads an accepted connection: a hello (at most
/// [`MAX_HELLO_LEN`] bytes), then frames of at most `max` bytes each.
#[doc(hidden)]
pub fn read_accepted(stream: &[u8], max: usize) -> Result<Accepted, FrameError> {
    let (hello, mut consumed) = decode(stream, MAX_HELLO_LEN)?.ok_or(FrameError::BadHello)?;
    let port = parse_hello(hello)?;
    let mut datagrams = Vec::new();
    while let Some((payload, used)) = decode(&stream[consumed..], max)? {
        datagrams.push(payload.to_vec());
        consumed += used;
    }
    Ok(Accepted { port, datagrams, consumed })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAX: usize = 1000;

    #[test]
    fn round_trips_a_datagram() {
        let frame = encode(b"abc", MAX).unwrap();
        assert_eq!(frame, [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(decode(&frame, MAX), Ok(Some((&b"abc"[..], 7))));
        assert_eq!(decode(&frame[..6], MAX), Ok(None));
    }

    #[test]
    fn rejects_oversize_from_the_header_alone() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], MAX),
            Err(FrameError::TooLong { len: u64::from(u32::MAX), max: MAX })
        );
        assert!(encode(&[0; MAX + 1], MAX).is_err());
    }

    #[test]
    fn hello_round_trips_and_rejects_garbage() {
        let frame = hello(4433);
        let (payload, used) = decode(&frame, MAX_HELLO_LEN).unwrap().unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(parse_hello(payload), Ok(4433));
        assert_eq!(parse_hello(b"fmT1"), Err(FrameError::BadHello));
        assert_eq!(parse_hello(b"nope!!"), Err(FrameError::BadHello));
        assert_eq!(parse_hello(b"fmT1\0\0"), Err(FrameError::BadHello));
        assert_eq!(parse_hello(b"fmT1\0\x01extra"), Err(FrameError::BadHello));
    }

    #[test]
    fn an_accepted_stream_is_a_hello_then_whole_frames() {
        let mut stream = hello(7946);
        stream.extend_from_slice(&encode(b"abc", MAX).unwrap());
        stream.extend_from_slice(&encode(b"", MAX).unwrap());
        let whole = stream.len();
        stream.extend_from_slice(&[0, 0, 0, 5, b'd']); // Unfinished: left for later.
        let read = read_accepted(&stream, MAX).unwrap();
        assert_eq!(
            read,
            Accepted { port: 7946, datagrams: vec![b"abc".to_vec(), vec![]], consumed: whole }
        );
        assert_eq!(read_accepted(&stream[..3], MAX), Err(FrameError::BadHello));
        assert_eq!(read_accepted(&encode(b"abc", MAX).unwrap(), MAX), Err(FrameError::BadHello));
        let mut big = hello(1);
        big.extend_from_slice(&[0, 0, 0x10, 0]);
        assert_eq!(read_accepted(&big, MAX), Err(FrameError::TooLong { len: 4096, max: MAX }));
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..32) {
            if let Ok(Some((payload, used))) = decode(&bytes, max) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(payload.len() + HEADER_LEN, used);
                prop_assert!(payload.len() <= max);
            }
            let _ = parse_hello(&bytes);
        }

        #[test]
        fn encode_then_decode_is_identity(payload in proptest::collection::vec(any::<u8>(), 0..256), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = encode(&payload, 256).unwrap();
            let len = buf.len();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decode(&buf, 256), Ok(Some((&payload[..], len))));
        }
    }
}
