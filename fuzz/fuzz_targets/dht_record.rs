//! Fuzzes DHT records (`dht/record.rs`), which arrive in `KadStore` and `KadValue` messages
//! from any peer: the message body is the fuzz input. Nothing panics; every record is checked
//! and offered to a record store, which accepts it or refuses it with a `RecordError`; a record
//! the store accepted is then held as it was given.
//!
//! Bits of the first input byte: bit 0 picks `KadValue` (several records) over `KadStore`;
//! bit 1 re-signs each record with a fixed publisher (bit 2: the master) before storing it,
//! so the fuzzer reaches the store's rules (expiry, size, versions, the master's override)
//! behind the signature check it could never pass itself.

#![no_main]

use std::sync::OnceLock;

use fleetmesh::{
    dht::{DhtConfig, RecordStore},
    wire::{self, Message, Record, WIRE_VERSION},
    Identity, Timestamp,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

/// `MessageType::KadStore` and `MessageType::KadValue`.
const KAD_STORE: u8 = 0x22;
const KAD_VALUE: u8 = 0x27;

/// Near the snapshots' time, so their expiry times are in the future.
const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

struct Fixture {
    master: Identity,
    publisher: Identity,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let id = |seed| Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed));
        Fixture { master: id(1), publisher: id(20) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut frame = vec![WIRE_VERSION, if mode & 1 == 0 { KAD_STORE } else { KAD_VALUE }];
    frame.extend_from_slice(rest);
    let records = match wire::decode(&frame) {
        Ok(Message::KadStore(m)) => vec![m.record],
        Ok(Message::KadValue(m)) => m.records,
        _ => return,
    };
    let f = fixture();
    let mut store = RecordStore::new(&DhtConfig::default(), f.master.node_id());
    for record in records {
        let record = match (mode & 2 != 0, mode & 4 != 0) {
            (false, _) => record,
            (true, master) => {
                let signer = if master { &f.master } else { &f.publisher };
                let r = record;
                let signed = Record::sign(signer, r.key, r.value, r.version, r.expires_at);
                assert_eq!(signed.verify_embedded(), Ok(()), "a signed record does not verify");
                signed
            }
        };
        let Ok(key) = record.embedded_key() else {
            continue;
        };
        let checked = store.check(NOW, &record, &key);
        if store.put(NOW, record.clone(), &key).is_ok() {
            assert_eq!(checked, Ok(()), "stored a record that fails the checks");
            let held = store.get_from(&record.key, &record.publisher);
            assert_eq!(held, Some(&record), "the stored record is not held as given");
        }
    }
    store.handle_timeout(Timestamp::from_secs(NOW.as_secs() + 7 * 86_400));
    while store.poll_event().is_some() {}
});
