//! Fuzzes the outer packet parser (`secure/packet.rs`), the first thing every datagram from
//! the network meets: any bytes parse or fail with `PacketError`, never panic, and a packet
//! that parses is exactly the bytes its fields write back (no field read from past its end,
//! none ignored).

#![no_main]

use fleetmesh::secure::reencode_packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(again) = reencode_packet(data) {
        assert_eq!(again, data, "a parsed packet writes back differently");
    }
});
