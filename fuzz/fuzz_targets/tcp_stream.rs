//! Fuzzes TCP framing and the hello (`transports/tcp/src/frame.rs`): the bytes a dialer sends
//! on an accepted connection are read as a hello then length-prefixed datagrams; any stream
//! is read or refused with `FrameError`, never a panic, and what was read re-encodes to
//! exactly the bytes it was read from.

#![no_main]

use fleetmesh_tcp::{encode_frame, hello_frame, read_accepted, MAX_DATAGRAM_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(read) = read_accepted(data, MAX_DATAGRAM_SIZE) else {
        return;
    };
    assert!(read.consumed <= data.len());
    let mut again = hello_frame(read.port);
    for datagram in &read.datagrams {
        let frame = encode_frame(datagram, MAX_DATAGRAM_SIZE).expect("a read datagram fits");
        again.extend_from_slice(&frame);
    }
    assert_eq!(again, data[..read.consumed], "the frames re-encode differently");
});
