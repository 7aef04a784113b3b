//! Property tests of the frame decoder: bytes from the wire never cause a panic, the size limit
//! is checked before anything is parsed, and header errors are reported as such.
//!
//! The fuzz target `fuzz/fuzz_targets/frame_decode.rs` explores the same decoder for longer.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use fleetmesh::{
    overlay::inventory,
    secure::seal_envelope,
    trust::{Authority, EnrollRequest},
    wire::{
        self, Ack, Adopt, AppMessage, Contact, Digest, ErrorCode, ErrorMessage, FleetAcks,
        FleetQuery, FleetRequest, Forward, Join, KadFindNode, KadFindValue, KadNodes, KadPing,
        KadPong, KadStore, KadStored, KadValue, Keepalive, LsnQuery, Message, MessageType,
        NodeList, Part, PartReason, Ping, Pong, PresenceChange, PresenceKind, ProbeRequest,
        QueryAnswer, ReachProof, Record, Report, ReportAcks, ReportBatch, Request, Response,
        ResponseStatus, Resync, Takeover, Update, Uptime, WireAddr, WireError, MAX_FRAME_LEN,
        WIRE_VERSION,
    },
    wire::{InventoryAcks, InventoryBatch, InventoryChange, InventoryResult, InventoryStatus},
    Identity, NodeId, Timestamp,
};
use proptest::{collection::vec, prelude::*};
use rand_core::SeedableRng;

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn contact(seed: u64, addr: &str) -> Contact {
    // The literals below are valid socket addresses.
    let addr: SocketAddr = addr.parse().expect("valid socket address literal");
    Contact { id: identity(seed).node_id(), addr: WireAddr(addr) }
}

fn record(seed: u64) -> Record {
    let publisher = identity(seed);
    Record {
        key: NodeId::hash(&seed.to_be_bytes()),
        value: vec![0xa5; 40],
        publisher: publisher.node_id(),
        publisher_key: publisher.verifying_key().to_bytes(),
        version: u64::MAX,
        expires_at: 1_700_000_000,
        signature: publisher.sign(b"record").to_bytes(),
    }
}

/// Messages to mutate, one or more of every type. Unlike the snapshot samples they lean to the
/// corners: IPv6 addresses, maximal integers, empty and `None` fields, several records.
fn messages() -> Vec<Message> {
    let now = Timestamp::from_secs(1_700_000_000);
    let mut authority = Authority::new(identity(1));
    let network = authority.network_key();
    let node = identity(2);
    let v6 = contact(3, "[2001:db8::3]:65535");
    let v4 = contact(4, "10.0.0.4:1");
    let sealed = seal_envelope(
        &node,
        &network,
        v4.id,
        &identity(4).x25519_public(),
        1_700_000_000_000_000,
        b"payload",
        &mut rand_chacha::ChaCha20Rng::seed_from_u64(5),
    )
    .expect("the recipient key is valid");
    vec![
        Message::Ping(Ping { seq: u32::MAX }),
        Message::Pong(Pong { seq: 0, lsn: None }),
        Message::Pong(Pong { seq: 1 << 20, lsn: Some(v6) }),
        Message::LsnQuery(LsnQuery { seq: 9, local: v6.addr, prefix_len: 64 }),
        Message::NodeList(NodeList { seq: 0, nodes: vec![] }),
        Message::NodeList(NodeList { seq: 3, nodes: vec![v4, v6, v4] }),
        Message::Ack(Ack { seq: 300 }),
        Message::Join(Join { seq: 1, local: v4.addr, prefix_len: 24, uptime_secs: u32::MAX }),
        Message::Part(Part { reason: PartReason::Shutdown, better_lsn: None }),
        Message::Part(Part { reason: PartReason::Yield, better_lsn: Some(v6) }),
        Message::Uptime(Uptime { uptime_secs: u64::MAX }),
        Message::Update(Update {
            seq: 77,
            changes: (0..4)
                .map(|i| PresenceChange {
                    node: identity(10 + i).node_id(),
                    kind: [
                        PresenceKind::Joined,
                        PresenceKind::Parted(PartReason::Lost),
                        PresenceKind::Parted(PartReason::Moved),
                        PresenceKind::Parted(PartReason::Yield),
                    ][i as usize],
                    addr: if i % 2 == 0 { v4.addr } else { v6.addr },
                })
                .collect(),
            route: vec![v4.id, v6.id],
            digest: Some(Digest { count: 4, hash: u64::MAX }),
        }),
        Message::Update(Update { seq: 0, changes: vec![], route: vec![], digest: None }),
        Message::Error(ErrorMessage {
            seq: 8,
            code: ErrorCode::UNREACHABLE,
            detail: "node ünreachable".into(),
        }),
        Message::Takeover(Takeover { old: v6.id, lsn: v4 }),
        Message::Resync(Resync { seq: u32::MAX }),
        Message::Adopt(Adopt { old: v6.id, children: vec![v4, v6] }),
        Message::ProbeRequest(ProbeRequest { nonce: u64::MAX, target: v6.addr }),
        Message::ReachProof(ReachProof { nonce: 0 }),
        Message::Enroll(Box::new(EnrollRequest::new(&node, &network, None))),
        Message::Enroll(Box::new(EnrollRequest::new(&node, &network, Some("t".repeat(40))))),
        Message::Certificate(Box::new(
            authority.master_certificate(now, Duration::from_secs(86_400)),
        )),
        Message::Revocations(Box::new(authority.revocation_list(1, vec![v4.id, v6.id], now))),
        Message::Keepalive(Keepalive {
            interval_secs: u16::MAX,
            echo_after_secs: 0,
            digest: Some(Digest { count: u32::MAX, hash: u64::MAX }),
        }),
        Message::KadPing(KadPing { rpc: 0, client: false }),
        Message::KadPong(KadPong { rpc: u32::MAX, client: false }),
        Message::KadStore(Box::new(KadStore {
            rpc: 5,
            record: record(20),
            cache: true,
            client: false,
        })),
        Message::KadStored(KadStored { rpc: 5, client: false }),
        Message::KadFindNode(KadFindNode { rpc: 6, target: NodeId::ZERO, client: false }),
        Message::KadNodes(KadNodes { rpc: 6, nodes: vec![v6, v4], client: false }),
        Message::KadFindValue(KadFindValue { rpc: 7, key: NodeId::hash(b"k"), client: false }),
        Message::KadValue(Box::new(KadValue {
            rpc: 7,
            records: vec![record(21), record(22)],
            closer: vec![],
            client: true,
        })),
        Message::KadValue(Box::new(KadValue {
            rpc: 7,
            records: vec![],
            closer: vec![v4],
            client: false,
        })),
        Message::KadRenew(Box::new(wire::KadRenew {
            rpc: 8,
            records: vec![wire::RecordRef::of(&record(21)), wire::RecordRef::of(&record(22))],
            client: false,
        })),
        Message::KadRenewed(wire::KadRenewed { rpc: 8, missing: vec![1], client: true }),
        Message::App(AppMessage { id: u64::MAX, data: (0..=255).collect() }),
        Message::App(AppMessage { id: 0, data: vec![] }),
        Message::Envelope(Box::new(sealed.clone())),
        Message::Forward(Box::new(Forward { seq: 3, to: v4.id, envelope: sealed.clone() })),
        Message::Report(Box::new(Report { seq: 4, envelope: sealed.clone(), certificate: None })),
        Message::Request(Box::new(Request {
            id: u64::MAX,
            kind: "exec".into(),
            body: b"uptime".to_vec(),
            expires: 1_700_003_600,
        })),
        Message::Request(Box::new(Request {
            id: 1,
            kind: String::new(),
            body: vec![],
            expires: 0,
        })),
        Message::Response(Box::new(Response {
            id: 9,
            status: ResponseStatus::FAILED,
            body: (0..=255).collect(),
        })),
        Message::FleetRequest(Box::new(FleetRequest {
            seq: u32::MAX,
            request: Request { id: u64::MAX, kind: "ping".into(), body: vec![0; 300], expires: 1 },
            nodes: Some(vec![NodeId::from_bytes([7; 20]); 3]),
            reply_key: [9; 32],
            signature: [0xfe; 64],
        })),
        Message::FleetAcks(Box::new(FleetAcks {
            seq: 1,
            id: 2,
            nodes: vec![NodeId::from_bytes([1; 20]), NodeId::from_bytes([2; 20])],
        })),
        Message::InventoryChange(Box::new(inventory_change())),
        Message::InventoryBatch(Box::new(InventoryBatch {
            seq: 3,
            data: inventory::pack(&[inventory_change(), inventory_change()]),
        })),
        Message::InventoryAcks(Box::new(InventoryAcks {
            seq: 3,
            results: vec![InventoryResult {
                node: NodeId::from_bytes([4; 20]),
                version: u64::MAX,
                status: InventoryStatus::Refused,
            }],
        })),
        Message::InventoryResult(InventoryResult {
            node: NodeId::from_bytes([4; 20]),
            version: 1,
            status: InventoryStatus::Mismatch,
        }),
        Message::FleetQuery(Box::new(FleetQuery {
            seq: 3,
            request: Request { id: 4, kind: "history".into(), body: vec![1, 2], expires: 5 },
            nodes: Some(vec![NodeId::from_bytes([3; 20])]),
            window_ms: 5000,
            signature: [0xfd; 64],
        })),
        Message::QueryAnswer(Box::new(QueryAnswer {
            seq: 6,
            id: 4,
            status: ResponseStatus::FAILED,
            body: b"no answers".to_vec(),
            hosts: 0,
            failed: 1,
            missing: 2,
        })),
        Message::ReportBatch(Box::new(ReportBatch {
            reports: vec![Report { seq: 5, envelope: sealed, certificate: None }],
        })),
        Message::ReportBatch(Box::new(ReportBatch { reports: vec![] })),
        Message::ReportAcks(Box::new(ReportAcks::of(vec![0, u32::MAX, 7, 8, 9]))),
        Message::ObserveMe(fleetmesh::wire::ObserveMe { seq: u32::MAX }),
        Message::Observed(fleetmesh::wire::Observed {
            seq: 0,
            addr: v6.addr,
            nonce: u64::MAX,
            helper: Some(v4),
        }),
        Message::NatReport(fleetmesh::wire::NatReport {
            class: fleetmesh::wire::NatClass {
                mapping: fleetmesh::wire::Mapping::EndpointDependent,
                inbound: None,
            },
            observed: v4.addr,
            gsn: false,
        }),
        Message::Introduce(fleetmesh::wire::Introduce { seq: 1, target: v6.id, predict: false }),
        Message::Introduction(Box::new(fleetmesh::wire::Introduction {
            nonce: 1,
            to: v4.id,
            peer: v6.id,
            addrs: vec![v4.addr, v6.addr],
            answer: false,
            relay: Some(v6),
            predict: u16::MAX,
        })),
        Message::Introduced(fleetmesh::wire::Introduced { nonce: 0 }),
        Message::GsnGrant(fleetmesh::wire::GsnGrant { active: false, ticket: None }),
        Message::GsnGrant(fleetmesh::wire::GsnGrant {
            active: true,
            ticket: Some(fleetmesh::wire::GsnTicket {
                gsn: v6.id,
                addr: v6.addr,
                since: u64::MAX,
                confirmed: u32::MAX,
                expires: 0,
                signature: [0xff; 64],
            }),
        }),
        Message::RelayData(Box::new(fleetmesh::wire::RelayData {
            to: v6.id,
            bytes: vec![0; fleetmesh::wire::MAX_RELAY_BYTES],
        })),
        Message::Relayed(Box::new(fleetmesh::wire::Relayed { from: v4.id, bytes: vec![] })),
        Message::BulkChunk(Box::new(fleetmesh::wire::BulkChunk {
            id: u64::MAX,
            index: u32::MAX,
            total: u64::MAX,
            chunk: 1_100,
            bytes: vec![0; 1_100],
        })),
        Message::BulkAck(Box::new(fleetmesh::wire::BulkAck {
            id: 0,
            next: 7,
            ranges: vec![(9, 12); fleetmesh::wire::MAX_ACK_RANGES],
        })),
        Message::BulkStop(fleetmesh::wire::BulkStop { id: 1, reason: "too large".into() }),
        Message::GsnProbe(fleetmesh::wire::GsnProbe { nonce: u32::MAX }),
        Message::GsnProbeAck(fleetmesh::wire::GsnProbeAck { nonce: 0 }),
        Message::GsnChoice(fleetmesh::wire::GsnChoice { gsn: None, rtt_ms: u32::MAX }),
    ]
}

fn inventory_change() -> InventoryChange {
    let diff = inventory::InventoryDiff {
        remove: vec!["a".into()],
        set: vec![("packages/b".into(), "1.0".into())],
    };
    InventoryChange {
        seq: 5,
        node: NodeId::from_bytes([4; 20]),
        base: None,
        version: 6,
        diff: diff.encode(),
        certificate: None,
        signature: [0xab; 64],
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode(msg, &mut frame).expect("fits in a frame");
    frame
}

/// The frames of [`messages`], built once.
fn frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| messages().iter().map(encode).collect())
}

/// Decodes `frame`; when that succeeds, the message must re-encode and decode to itself.
fn decode_and_reencode(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(msg) = wire::decode(frame) {
        let mut again = Vec::new();
        // A decoded frame is at most MAX_FRAME_LEN bytes and re-encoding never grows it much;
        // an error here would still be a finding, so only a panic is ruled out.
        if wire::encode(&msg, &mut again).is_ok() {
            prop_assert_eq!(wire::decode(&again), Ok(msg));
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        2 => any::<usize>().prop_map(|at| Mutation::Delete { at }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
    ]
}

fn apply(frame: &mut Vec<u8>, mutation: &Mutation) {
    let len = frame.len();
    match *mutation {
        Mutation::Flip { at, mask } if len > 0 => frame[at % len] ^= mask,
        Mutation::Insert { at, byte } => frame.insert(at % (len + 1), byte),
        Mutation::Delete { at } if len > 0 => {
            frame.remove(at % len);
        }
        Mutation::Truncate { len: keep } => frame.truncate(keep % (len + 1)),
        _ => {}
    }
}

fn unknown_tag() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("a known tag", |t| MessageType::from_tag(*t).is_none())
}

fn known_tag() -> impl Strategy<Value = u8> {
    proptest::sample::select(MessageType::ALL).prop_map(|t| t as u8)
}

fn addr() -> impl Strategy<Value = WireAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| WireAddr((ip, p).into())),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| WireAddr((ip, p).into())),
    ]
}

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId::from_bytes)
}

fn any_contact() -> impl Strategy<Value = Contact> {
    (node_id(), addr()).prop_map(|(id, addr)| Contact { id, addr })
}

fn presence_kind() -> impl Strategy<Value = PresenceKind> {
    prop_oneof![
        Just(PresenceKind::Joined),
        Just(PresenceKind::Parted(PartReason::Shutdown)),
        Just(PresenceKind::Parted(PartReason::Lost)),
        Just(PresenceKind::Parted(PartReason::Moved)),
        Just(PresenceKind::Parted(PartReason::Yield)),
    ]
}

/// Generated messages of the types whose fields are free-form (no keys or signatures).
fn message() -> impl Strategy<Value = Message> {
    let change = (node_id(), presence_kind(), addr())
        .prop_map(|(node, kind, addr)| PresenceChange { node, kind, addr });
    let digest = (any::<u32>(), any::<u64>()).prop_map(|(count, hash)| Digest { count, hash });
    prop_oneof![
        any::<u32>().prop_map(|seq| Message::Ping(Ping { seq })),
        (any::<u32>(), proptest::option::of(any_contact()))
            .prop_map(|(seq, lsn)| Message::Pong(Pong { seq, lsn })),
        (any::<u32>(), vec(any_contact(), 0..20))
            .prop_map(|(seq, nodes)| Message::NodeList(NodeList { seq, nodes })),
        (any::<u32>(), vec(change, 0..20), vec(node_id(), 0..8), proptest::option::of(digest))
            .prop_map(|(seq, changes, route, digest)| {
                Message::Update(Update { seq, changes, route, digest })
            }),
        (any::<u32>(), any::<u16>(), ".{0,40}").prop_map(|(seq, code, detail)| {
            Message::Error(ErrorMessage { seq, code: ErrorCode(code), detail })
        }),
        (any::<u32>(), vec(any_contact(), 0..20))
            .prop_map(|(rpc, nodes)| Message::KadNodes(KadNodes { rpc, nodes, client: false })),
        (any::<u64>(), vec(any::<u8>(), 0..600))
            .prop_map(|(id, data)| Message::App(AppMessage { id, data })),
    ]
}

/// The bytes a frame adds around an [`AppMessage`]'s data of 256 ..= 65,535 bytes (header,
/// CBOR array and byte-string heads), with a zero id.
fn app_overhead() -> usize {
    let data_len = 1_000;
    wire::encoded_len(&Message::App(AppMessage { id: 0, data: vec![0; data_len] })) - data_len
}

// Decoding is cheap (the whole file runs well under a second in the test profile), so the
// no-panic properties get more cases than proptest's default 256; `PROPTEST_CASES` does not
// override these explicit counts.
proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2000)) {
        decode_and_reencode(&bytes)?;
    }

    /// Arbitrary bodies behind a valid header reach every message's body decoder.
    #[test]
    fn arbitrary_bodies_never_panic(tag in known_tag(), body in vec(any::<u8>(), 0..2000)) {
        let mut frame = vec![WIRE_VERSION, tag];
        frame.extend_from_slice(&body);
        decode_and_reencode(&frame)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn mutated_frames_never_panic(
        pick in any::<prop::sample::Index>(),
        mutations in vec(mutation(), 1..6),
    ) {
        let mut frame = pick.get(frames()).clone();
        for m in &mutations {
            apply(&mut frame, m);
        }
        decode_and_reencode(&frame)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn generated_messages_round_trip(msg in message()) {
        let frame = encode(&msg);
        prop_assert_eq!(frame.len(), wire::encoded_len(&msg));
        prop_assert_eq!(wire::decode(&frame), Ok(msg));
    }

    #[test]
    fn oversized_frames_are_refused_before_parsing(
        extra in 1..2000usize,
        head in vec(any::<u8>(), 0..8),
        fill in any::<u8>(),
    ) {
        // Whatever the header says (even an unknown version), size is checked first.
        let mut frame = head;
        frame.resize(MAX_FRAME_LEN + extra, fill);
        prop_assert_eq!(
            wire::decode(&frame),
            Err(WireError::TooLarge { len: MAX_FRAME_LEN + extra, max: MAX_FRAME_LEN })
        );
    }

    #[test]
    fn wrong_version_is_unsupported(
        version in any::<u8>().prop_filter("the current version", |v| *v != WIRE_VERSION),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut frame = pick.get(frames()).clone();
        frame[0] = version;
        prop_assert_eq!(wire::decode(&frame), Err(WireError::UnsupportedVersion(version)));
    }

    #[test]
    fn wrong_version_is_unsupported_whatever_follows(
        version in any::<u8>().prop_filter("the current version", |v| *v != WIRE_VERSION),
        rest in vec(any::<u8>(), 1..100),
    ) {
        let mut frame = vec![version];
        frame.extend_from_slice(&rest);
        prop_assert_eq!(wire::decode(&frame), Err(WireError::UnsupportedVersion(version)));
    }

    #[test]
    fn unknown_type_is_reported(tag in unknown_tag(), body in vec(any::<u8>(), 0..100)) {
        let mut frame = vec![WIRE_VERSION, tag];
        frame.extend_from_slice(&body);
        prop_assert_eq!(wire::decode(&frame), Err(WireError::UnknownType(tag)));
    }

    #[test]
    fn oversized_app_messages_are_refused_at_encode(
        id in any::<u64>(),
        delta in -16i64..16,
        prefix in vec(any::<u8>(), 0..16),
    ) {
        let data_len = (MAX_FRAME_LEN - app_overhead()).saturating_add_signed(delta as isize);
        let msg = Message::App(AppMessage { id, data: vec![0x5a; data_len] });
        let expected = wire::encoded_len(&msg);
        let mut out = prefix.clone();
        match wire::encode(&msg, &mut out) {
            Ok(()) => {
                prop_assert!(expected <= MAX_FRAME_LEN);
                prop_assert_eq!(out.len(), prefix.len() + expected);
                prop_assert_eq!(wire::decode(&out[prefix.len()..]), Ok(msg));
            }
            Err(e) => {
                prop_assert!(expected > MAX_FRAME_LEN);
                prop_assert_eq!(e, WireError::TooLarge { len: expected, max: MAX_FRAME_LEN });
                prop_assert_eq!(out, prefix, "a refused encode must leave the buffer as it was");
            }
        }
    }
}

#[test]
fn mutation_samples_cover_every_message_type() {
    let mut types: Vec<MessageType> = messages().iter().map(Message::message_type).collect();
    types.dedup();
    assert_eq!(types, MessageType::ALL);
}

#[test]
fn size_limit_is_checked_before_the_body() {
    // A well-formed App frame of exactly MAX_FRAME_LEN decodes; the same with one more byte of
    // data, which would decode just as well, is refused for its size alone.
    let data_len = MAX_FRAME_LEN - app_overhead();
    let msg = Message::App(AppMessage { id: 0, data: vec![7; data_len] });
    let frame = encode(&msg);
    assert_eq!(frame.len(), MAX_FRAME_LEN);
    assert_eq!(wire::decode(&frame), Ok(msg));

    let mut longer = frame.clone();
    // The byte-string head (0x59, then a big-endian u16 length) sits just before the data.
    let head = MAX_FRAME_LEN - data_len - 3;
    assert_eq!(longer[head], 0x59);
    let new_len = u16::try_from(data_len + 1).expect("under 64 KiB");
    longer[head + 1..head + 3].copy_from_slice(&new_len.to_be_bytes());
    longer.push(7);
    assert_eq!(
        wire::decode(&longer),
        Err(WireError::TooLarge { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN })
    );
}

#[test]
fn app_message_one_byte_too_large_is_refused_and_buffer_kept() {
    let data_len = MAX_FRAME_LEN - app_overhead() + 1;
    let msg = Message::App(AppMessage { id: 0, data: vec![0; data_len] });
    let mut out = b"earlier frame".to_vec();
    assert_eq!(
        wire::encode(&msg, &mut out),
        Err(WireError::TooLarge { len: MAX_FRAME_LEN + 1, max: MAX_FRAME_LEN })
    );
    assert_eq!(out, b"earlier frame");
}

#[test]
fn short_frames_are_truncated() {
    assert_eq!(wire::decode(&[]), Err(WireError::Truncated));
    assert_eq!(wire::decode(&[WIRE_VERSION]), Err(WireError::Truncated));
    // The header is read whole before the version is judged.
    assert_eq!(wire::decode(&[WIRE_VERSION + 1]), Err(WireError::Truncated));
}

#[test]
fn every_truncation_of_every_sample_is_an_error() {
    for frame in frames() {
        for len in 0..frame.len() {
            assert!(wire::decode(&frame[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for frame in frames() {
        let mut longer = frame.clone();
        longer.push(0);
        assert_eq!(wire::decode(&longer), Err(WireError::TrailingBytes(1)));
    }
}
