//! Fuzzes the endpoint as the network sees it (`endpoint/`): a run of datagrams from two
//! unauthenticated sources into a fresh endpoint, through packet parsing, handshake message 1
//! and the Noise layer, session lookup and data decryption. Nothing panics, and no datagram
//! sequence the fuzzer makes establishes a session: that takes a key it does not have.
//!
//! The first input byte: bit 1 makes the endpoint dial the first source before anything
//! arrives, so message 2 of a handshake it started is read too. (A master endpoint would add
//! nothing: enrollment happens behind the Noise layer, which the fuzzer cannot get through,
//! and creating one signs a certificate on every execution.)
//! The rest is datagrams, each a big-endian u16 length (its top bit picks the source) and
//! that many bytes.

#![no_main]

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use fleetmesh::{
    endpoint::{Endpoint, EndpointConfig, Event},
    trust::{Authority, CertFlags, Certificate},
    Identity, Timestamp,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

struct Fixture {
    master: Identity,
    node: Identity,
    node_cert: Certificate,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let id = |seed| Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
        let master = id(1001);
        let node = id(1002);
        let mut authority = Authority::new(master.clone());
        let node_cert = authority.issue(
            &node.verifying_key(),
            node.x25519_public(),
            CertFlags::NONE,
            NOW,
            Duration::from_secs(86_400),
        );
        Fixture { master, node, node_cert }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let network = Authority::new(f.master.clone()).network_key();
    let config = EndpointConfig::new(f.node.clone(), network).certificate(f.node_cert.clone());
    let mut endpoint = Endpoint::new(config, [7; 32]);
    let sources: [SocketAddr; 2] =
        ["192.0.2.1:4000".parse().unwrap(), "198.51.100.2:5000".parse().unwrap()];
    if mode & 2 != 0 {
        endpoint.connect(NOW, sources[0], None);
    }
    let mut now = NOW;
    while let Some((head, tail)) = rest.split_first_chunk::<2>() {
        let word = u16::from_be_bytes(*head);
        let len = usize::from(word & 0x7fff).min(tail.len());
        let (datagram, after) = tail.split_at(len);
        rest = after;
        endpoint.handle_datagram(now, sources[usize::from(word >> 15)], datagram);
        now = Timestamp::from_micros(now.as_micros() + 1_000);
        endpoint.handle_timeout(now);
        while endpoint.poll_transmit().is_some() {}
        while let Some(event) = endpoint.poll_event() {
            assert!(!matches!(event, Event::Connected { .. }), "a session from nothing: {event:?}");
        }
    }
});
