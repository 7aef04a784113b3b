//! Fuzzes the LAN discovery datagram decoder (`discovery/lan/src/proto.rs`), which reads
//! unauthenticated broadcasts from anyone on the LAN: any bytes decode or fail with
//! `DecodeError`, never panic, and a datagram that decodes encodes back to the same bytes
//! (the format has one encoding per datagram).

#![no_main]

use fleetmesh_lan::proto::Datagram;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(datagram) = Datagram::decode(data) {
        assert_eq!(datagram.encode(), data, "a decoded datagram encodes differently");
    }
});
