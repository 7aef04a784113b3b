//! Fuzzes enrollment links (`src/front/link.rs`), which operators paste and nodes read from
//! their config: any text parses or is refused with a typed error, never a panic, and a link
//! that parses prints as text that parses back to the same link.

#![no_main]

use fleetmesh::JoinLink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(link) = text.parse::<JoinLink>() {
        let again: JoinLink = link.to_string().parse().expect("a printed link parses");
        assert_eq!(again, link);
    }
});
