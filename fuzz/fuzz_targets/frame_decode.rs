//! Fuzzes the frame decoder: any bytes must decode or fail with an error, never panic, and a
//! frame that decodes must re-encode to a frame that decodes to the same message.

#![no_main]

use fleetmesh::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = wire::decode(data) else {
        return;
    };
    let mut frame = Vec::new();
    // The input was at most MAX_FRAME_LEN bytes; a message decoded from it re-encodes no
    // larger (encoding is canonical CBOR, the shortest form), so this cannot fail.
    wire::encode(&msg, &mut frame).expect("a decoded message re-encodes");
    assert_eq!(wire::decode(&frame), Ok(msg), "re-encoded frame decodes differently");
});
