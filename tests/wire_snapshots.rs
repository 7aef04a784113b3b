//! Snapshots of the wire format: one sample of every [`Message`] variant, as its frame in hex and
//! as the message decoded back from that frame.
//!
//! A snapshot change is a wire-format change: review it as one (version bump? compatibility?).
//! Every sample is deterministic: keys come from fixed seeds, times are fixed, and ed25519
//! signatures are deterministic. The snapshots live in `snapshots/wire_*.snap` at the crate
//! root; regenerate them with `INSTA_UPDATE=always cargo test --test wire_snapshots` and review
//! the diff.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use fleetmesh::{
    overlay::inventory::{self, InventoryDiff},
    secure::{seal_envelope, SealedEnvelope},
    trust::{Authority, CertFlags, EnrollRequest, NetworkKey},
    wire::{
        self, Ack, Adopt, AppMessage, Contact, Digest, ErrorCode, ErrorMessage, FleetAcks,
        FleetQuery, FleetRequest, Forward, InventoryAcks, InventoryBatch, InventoryChange,
        InventoryResult, InventoryStatus, Join, KadFindNode, KadFindValue, KadNodes, KadPing,
        KadPong, KadStore, KadStored, KadValue, Keepalive, LsnQuery, Message, MessageType,
        NodeList, Part, PartReason, Ping, Pong, PresenceChange, PresenceKind, ProbeRequest,
        QueryAnswer, ReachProof, Record, Report, ReportAcks, ReportBatch, Request, Response,
        ResponseStatus, Resync, Takeover, Update, Uptime, WireAddr,
    },
    Identity, NodeId, Timestamp,
};
use rand_core::SeedableRng;

/// The fixed "now" of every sample.
const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

fn identity(seed: u64) -> Identity {
    Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn addr(s: &str) -> WireAddr {
    // The literals below are valid socket addresses.
    WireAddr(s.parse::<SocketAddr>().expect("valid socket address literal"))
}

fn contact(seed: u64, a: &str) -> Contact {
    Contact { id: identity(seed).node_id(), addr: addr(a) }
}

fn record() -> Record {
    let publisher = identity(20);
    Record {
        key: NodeId::hash(b"service/config"),
        value: b"v=1;interval=30".to_vec(),
        publisher: publisher.node_id(),
        publisher_key: publisher.verifying_key().to_bytes(),
        version: 3,
        expires_at: NOW.as_secs() + 86_400,
        // Any deterministic signature will do: the wire format does not check it.
        signature: publisher.sign(b"record sample").to_bytes(),
    }
}

/// An envelope from `sender` to node 4, sealed with a seeded rng so that the HPKE ephemeral key
/// (and so the whole envelope) is the same on every run.
fn envelope(sender: &Identity, network: &NetworkKey) -> SealedEnvelope {
    let recipient = identity(4);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(40);
    seal_envelope(
        sender,
        network,
        recipient.node_id(),
        &recipient.x25519_public(),
        NOW.as_micros(),
        b"reboot at 03:00",
        &mut rng,
    )
    .expect("the recipient key is valid")
}

/// One sample per message type, named for its snapshot file, in tag order.
fn samples() -> Vec<(&'static str, Message)> {
    let mut authority = Authority::new(identity(1));
    let network = authority.network_key();
    let node = identity(2);
    let lsn = contact(3, "192.168.1.10:7946");

    vec![
        ("wire_ping", Message::Ping(Ping { seq: 7 })),
        ("wire_pong", Message::Pong(Pong { seq: 7, lsn: Some(lsn) })),
        (
            "wire_lsn_query",
            Message::LsnQuery(LsnQuery {
                seq: 1,
                local: addr("192.168.1.23:7946"),
                prefix_len: 24,
            }),
        ),
        (
            "wire_node_list",
            Message::NodeList(NodeList {
                seq: 1,
                nodes: vec![lsn, contact(4, "[2001:db8::4]:7946")],
            }),
        ),
        ("wire_ack", Message::Ack(Ack { seq: 42 })),
        (
            "wire_join",
            Message::Join(Join {
                seq: 2,
                local: addr("192.168.1.23:7946"),
                prefix_len: 24,
                uptime_secs: 86_400,
            }),
        ),
        ("wire_part", Message::Part(Part { reason: PartReason::Yield, better_lsn: Some(lsn) })),
        ("wire_uptime", Message::Uptime(Uptime { uptime_secs: 3_600 })),
        (
            "wire_update",
            Message::Update(Update {
                seq: 3,
                changes: vec![
                    PresenceChange {
                        node: identity(5).node_id(),
                        kind: PresenceKind::Joined,
                        addr: addr("192.168.1.23:7946"),
                    },
                    PresenceChange {
                        node: identity(6).node_id(),
                        kind: PresenceKind::Parted(PartReason::Lost),
                        addr: addr("192.168.1.24:7946"),
                    },
                ],
                route: vec![lsn.id, identity(7).node_id()],
                digest: Some(Digest { count: 12, hash: 0x0123_4567_89ab_cdef }),
            }),
        ),
        (
            "wire_error",
            Message::Error(ErrorMessage {
                seq: 5,
                code: ErrorCode::REFUSED,
                detail: "enrollment refused".into(),
            }),
        ),
        ("wire_takeover", Message::Takeover(Takeover { old: identity(8).node_id(), lsn })),
        ("wire_resync", Message::Resync(Resync { seq: 6 })),
        (
            "wire_adopt",
            Message::Adopt(Adopt { old: identity(8).node_id(), children: vec![lsn, lsn] }),
        ),
        (
            "wire_probe_request",
            Message::ProbeRequest(ProbeRequest {
                nonce: 0x0123_4567_89ab_cdef,
                target: addr("192.168.1.23:7946"),
            }),
        ),
        ("wire_reach_proof", Message::ReachProof(ReachProof { nonce: 0x0123_4567_89ab_cdef })),
        (
            "wire_enroll",
            Message::Enroll(Box::new(EnrollRequest::new(
                &node,
                &network,
                Some("install-42".into()),
            ))),
        ),
        (
            "wire_certificate",
            Message::Certificate(Box::new(authority.issue(
                &node.verifying_key(),
                node.x25519_public(),
                CertFlags::GSN_ELIGIBLE,
                NOW,
                Duration::from_secs(30 * 86_400),
            ))),
        ),
        (
            "wire_revocations",
            Message::Revocations(Box::new(authority.revocation_list(
                2,
                vec![identity(8).node_id(), identity(9).node_id()],
                NOW,
            ))),
        ),
        (
            "wire_keepalive",
            Message::Keepalive(Keepalive { interval_secs: 60, echo_after_secs: 65, digest: None }),
        ),
        ("wire_kad_ping", Message::KadPing(KadPing { rpc: 100, client: true })),
        ("wire_kad_pong", Message::KadPong(KadPong { rpc: 100, client: false })),
        (
            "wire_kad_store",
            Message::KadStore(Box::new(KadStore {
                rpc: 101,
                record: record(),
                cache: true,
                client: false,
            })),
        ),
        ("wire_kad_stored", Message::KadStored(KadStored { rpc: 101, client: false })),
        (
            "wire_kad_find_node",
            Message::KadFindNode(KadFindNode {
                rpc: 102,
                target: NodeId::hash(b"target"),
                client: false,
            }),
        ),
        (
            "wire_kad_nodes",
            Message::KadNodes(KadNodes {
                rpc: 102,
                nodes: vec![contact(10, "203.0.113.10:7946"), contact(11, "203.0.113.11:7946")],
                client: false,
            }),
        ),
        (
            "wire_kad_find_value",
            Message::KadFindValue(KadFindValue {
                rpc: 103,
                key: NodeId::hash(b"service/config"),
                client: false,
            }),
        ),
        (
            "wire_kad_value",
            Message::KadValue(Box::new(KadValue {
                rpc: 103,
                records: vec![record()],
                closer: vec![contact(12, "203.0.113.12:7946")],
                client: false,
            })),
        ),
        (
            "wire_kad_renew",
            Message::KadRenew(Box::new(wire::KadRenew {
                rpc: 104,
                records: vec![wire::RecordRef::of(&record())],
                client: false,
            })),
        ),
        (
            "wire_kad_renewed",
            Message::KadRenewed(wire::KadRenewed { rpc: 104, missing: vec![0], client: false }),
        ),
        ("wire_app", Message::App(AppMessage { id: 9, data: b"hello, fleet".to_vec() })),
        ("wire_envelope", Message::Envelope(Box::new(envelope(&node, &network)))),
        (
            "wire_forward",
            Message::Forward(Box::new(Forward {
                seq: 10,
                to: node.node_id(),
                envelope: envelope(&node, &network),
            })),
        ),
        (
            "wire_report",
            Message::Report(Box::new(Report {
                seq: 11,
                envelope: envelope(&node, &network),
                certificate: None,
            })),
        ),
        (
            "wire_request",
            Message::Request(Box::new(Request {
                id: 1_700_000_000_000_001,
                kind: "exec".to_owned(),
                body: b"uptime".to_vec(),
                expires: NOW.as_secs() + 3600,
            })),
        ),
        (
            "wire_response",
            Message::Response(Box::new(Response {
                id: 1_700_000_000_000_001,
                status: ResponseStatus::OK,
                body: b"up 3 days".to_vec(),
            })),
        ),
        (
            "wire_fleet_request",
            Message::FleetRequest(Box::new(FleetRequest {
                seq: 8,
                request: Request {
                    id: 1_700_000_000_000_002,
                    kind: "inventory".into(),
                    body: Vec::new(),
                    expires: 1_700_003_600,
                },
                nodes: None,
                reply_key: [0x3c; 32],
                signature: [0x5a; 64],
            })),
        ),
        (
            "wire_fleet_acks",
            Message::FleetAcks(Box::new(FleetAcks {
                seq: 9,
                id: 1_700_000_000_000_002,
                nodes: vec![NodeId::from_bytes([0x11; 20]), NodeId::from_bytes([0x22; 20])],
            })),
        ),
        ("wire_inventory_change", Message::InventoryChange(Box::new(inventory_change()))),
        (
            "wire_inventory_batch",
            Message::InventoryBatch(Box::new(InventoryBatch {
                seq: 10,
                data: inventory::pack(&[InventoryChange { seq: 0, ..inventory_change() }]),
            })),
        ),
        (
            "wire_inventory_acks",
            Message::InventoryAcks(Box::new(InventoryAcks {
                seq: 10,
                results: vec![
                    InventoryResult {
                        node: NodeId::from_bytes([0x11; 20]),
                        version: 1_700_000_000_000_003,
                        status: InventoryStatus::Applied,
                    },
                    InventoryResult {
                        node: NodeId::from_bytes([0x22; 20]),
                        version: 1_700_000_000_000_004,
                        status: InventoryStatus::Mismatch,
                    },
                ],
            })),
        ),
        (
            "wire_inventory_result",
            Message::InventoryResult(InventoryResult {
                node: NodeId::from_bytes([0x11; 20]),
                version: 1_700_000_000_000_003,
                status: InventoryStatus::Applied,
            }),
        ),
        (
            "wire_fleet_query",
            Message::FleetQuery(Box::new(FleetQuery {
                seq: 10,
                request: Request {
                    id: 1_700_000_000_000_003,
                    kind: "history".into(),
                    body: b"cpu".to_vec(),
                    expires: 1_700_000_016,
                },
                nodes: Some(vec![NodeId::from_bytes([0x33; 20])]),
                window_ms: 10_000,
                signature: [0x5b; 64],
            })),
        ),
        (
            "wire_query_answer",
            Message::QueryAnswer(Box::new(QueryAnswer {
                seq: 11,
                id: 1_700_000_000_000_003,
                status: ResponseStatus::OK,
                body: b"combined".to_vec(),
                hosts: 41,
                failed: 1,
                missing: 2,
            })),
        ),
        (
            "wire_report_batch",
            Message::ReportBatch(Box::new(ReportBatch {
                reports: vec![
                    Report { seq: 12, envelope: envelope(&node, &network), certificate: None },
                    Report { seq: 13, envelope: envelope(&node, &network), certificate: None },
                ],
            })),
        ),
        ("wire_report_acks", Message::ReportAcks(Box::new(ReportAcks::of(vec![12, 13])))),
        ("wire_observe_me", Message::ObserveMe(fleetmesh::wire::ObserveMe { seq: 21 })),
        (
            "wire_observed",
            Message::Observed(fleetmesh::wire::Observed {
                seq: 21,
                addr: addr("203.0.113.7:20001"),
                nonce: 0x0123_4567_89ab_cdef,
                helper: Some(contact(9, "198.51.100.4:4000")),
            }),
        ),
        (
            "wire_nat_report",
            Message::NatReport(fleetmesh::wire::NatReport {
                class: fleetmesh::wire::NatClass {
                    mapping: fleetmesh::wire::Mapping::EndpointIndependent,
                    inbound: Some(false),
                },
                observed: addr("203.0.113.7:20001"),
                gsn: true,
            }),
        ),
        (
            "wire_introduce",
            Message::Introduce(fleetmesh::wire::Introduce {
                seq: 22,
                target: identity(5).node_id(),
                predict: true,
            }),
        ),
        (
            "wire_introduction",
            Message::Introduction(Box::new(fleetmesh::wire::Introduction {
                nonce: 0x0123_4567_89ab_cdef,
                to: identity(5).node_id(),
                peer: identity(6).node_id(),
                addrs: vec![addr("203.0.113.7:20001"), addr("10.1.0.7:4000")],
                answer: true,
                relay: Some(contact(9, "198.51.100.4:4000")),
                predict: 256,
            })),
        ),
        (
            "wire_introduced",
            Message::Introduced(fleetmesh::wire::Introduced { nonce: 0x0123_4567_89ab_cdef }),
        ),
        (
            "wire_gsn_grant",
            Message::GsnGrant(fleetmesh::wire::GsnGrant {
                active: true,
                ticket: Some(fleetmesh::wire::GsnTicket {
                    gsn: identity(9).node_id(),
                    addr: contact(9, "198.51.100.4:4000").addr,
                    since: 1_700_000_000,
                    confirmed: 3,
                    expires: 1_700_021_600,
                    signature: [0x5a; 64],
                }),
            }),
        ),
        (
            "wire_relay_data",
            Message::RelayData(Box::new(fleetmesh::wire::RelayData {
                to: identity(6).node_id(),
                bytes: vec![0x04, 0, 0, 0, 1, 2, 3, 0xaa, 0xbb],
            })),
        ),
        (
            "wire_relayed",
            Message::Relayed(Box::new(fleetmesh::wire::Relayed {
                from: identity(5).node_id(),
                bytes: vec![0x04, 0, 0, 0, 1, 2, 3, 0xaa, 0xbb],
            })),
        ),
        (
            "wire_bulk_chunk",
            Message::BulkChunk(Box::new(fleetmesh::wire::BulkChunk {
                id: 0x0123_4567_89ab_cdef,
                index: 2,
                total: 2_500,
                chunk: 1_100,
                bytes: vec![0xaa; 300],
            })),
        ),
        (
            "wire_bulk_ack",
            Message::BulkAck(Box::new(fleetmesh::wire::BulkAck {
                id: 0x0123_4567_89ab_cdef,
                next: 40,
                ranges: vec![(45, 60), (42, 43)],
            })),
        ),
        (
            "wire_bulk_stop",
            Message::BulkStop(fleetmesh::wire::BulkStop {
                id: 0x0123_4567_89ab_cdef,
                reason: "too many transfers at once".into(),
            }),
        ),
        ("wire_gsn_probe", Message::GsnProbe(fleetmesh::wire::GsnProbe { nonce: 0x0102_0304 })),
        (
            "wire_gsn_probe_ack",
            Message::GsnProbeAck(fleetmesh::wire::GsnProbeAck { nonce: 0x0102_0304 }),
        ),
        (
            "wire_gsn_choice",
            Message::GsnChoice(fleetmesh::wire::GsnChoice {
                gsn: Some(identity(9).node_id()),
                rtt_ms: 24,
            }),
        ),
    ]
}

/// A node's diff of its inventory: one package upgraded, one removed.
fn inventory_change() -> InventoryChange {
    let diff = InventoryDiff {
        remove: vec!["packages/telnet".into()],
        set: vec![("packages/openssl".into(), "3.0.15-1~deb12u1".into())],
    };
    InventoryChange {
        seq: 11,
        node: NodeId::from_bytes([0x11; 20]),
        base: Some(1_700_000_000_000_001),
        version: 1_700_000_000_000_003,
        diff: diff.encode(),
        certificate: None,
        signature: [0x5a; 64],
    }
}

fn encode(msg: &Message) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode(msg, &mut frame).expect("every sample fits in a frame");
    frame
}

/// The snapshot text: type, length, frame in hex (32 bytes a line) and the decoded message
/// (`{:#?}`, with byte arrays such as keys and signatures put on one line each).
fn render(frame: &[u8], decoded: &Message) -> String {
    let mut out = format!(
        "type: {:?} (0x{:02x})\nlen: {}\nhex:\n",
        decoded.message_type(),
        frame[1],
        frame.len()
    );
    for line in frame.chunks(32) {
        out.push_str("  ");
        out.push_str(&hex::encode(line));
        out.push('\n');
    }
    out.push_str("decoded:\n");
    out.push_str(&compact_byte_arrays(&format!("{decoded:#?}")));
    out.push('\n');
    out
}

/// Joins `{:#?}` arrays of plain integers (one per line) into one line: `[1, 2, 3]`.
fn compact_byte_arrays(pretty: &str) -> String {
    let lines: Vec<&str> = pretty.lines().collect();
    let is_int = |l: &str| l.trim().strip_suffix(',').is_some_and(|n| n.parse::<u64>().is_ok());
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let ints = lines[i + 1..].iter().take_while(|l| is_int(l)).count();
        let close = lines.get(i + 1 + ints).map(|l| l.trim_start());
        if line.ends_with('[') && ints > 0 && matches!(close, Some("]" | "],")) {
            let items: Vec<&str> =
                lines[i + 1..=i + ints].iter().map(|l| l.trim().trim_end_matches(',')).collect();
            let close = close.unwrap_or_default();
            out.push(format!("{line}{}{close}", items.join(", ")));
            i += ints + 2;
        } else {
            out.push(line.to_owned());
            i += 1;
        }
    }
    out.join("\n")
}

#[test]
fn every_message_matches_its_snapshot() {
    for (name, msg) in samples() {
        let frame = encode(&msg);
        let decoded = wire::decode(&frame).expect("a sample frame decodes");
        assert_eq!(decoded, msg, "{name}: decoded differs from the sample");
        insta::with_settings!({
            snapshot_path => "../snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, render(&frame, &decoded));
        });
    }
}

#[test]
fn every_sample_round_trips() {
    for (name, msg) in samples() {
        let frame = encode(&msg);
        assert_eq!(frame[0], wire::WIRE_VERSION, "{name}");
        assert_eq!(MessageType::from_tag(frame[1]), Some(msg.message_type()), "{name}");
        assert_eq!(frame.len(), wire::encoded_len(&msg), "{name}: encoded_len disagrees");
        assert_eq!(wire::decode(&frame).as_ref(), Ok(&msg), "{name}");
        // Encoding appends: a second frame after the first is byte-for-byte the same.
        let mut two = frame.clone();
        wire::encode(&msg, &mut two).expect("fits");
        assert_eq!(&two[frame.len()..], &frame[..], "{name}: encode must append");
    }
}

#[test]
fn samples_cover_every_message_type_once() {
    let samples = samples();
    let mut seen = HashSet::new();
    for (name, msg) in &samples {
        assert!(seen.insert(msg.message_type()), "{name}: a second sample of the same type");
    }
    let all: HashSet<MessageType> = MessageType::ALL.iter().copied().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "message types without a sample (add one): {missing:?}");
    assert_eq!(seen, all);
    let names: HashSet<_> = samples.iter().map(|(name, _)| name).collect();
    assert_eq!(names.len(), samples.len(), "snapshot names must be unique");
}

#[test]
fn samples_follow_tag_order() {
    // A tag is part of the wire format: `ALL` is in tag order and each tag maps back.
    let tags: Vec<u8> = samples().iter().map(|(_, msg)| encode(msg)[1]).collect();
    assert!(tags.windows(2).all(|w| w[0] < w[1]), "samples (and tags) out of order: {tags:x?}");
    for (&ty, tag) in MessageType::ALL.iter().zip(&tags) {
        assert_eq!(MessageType::from_tag(*tag), Some(ty));
    }
}

#[test]
fn hot_messages_are_small() {
    let ping = encode(&Message::Ping(Ping { seq: u32::MAX }));
    assert!(ping.len() < 64, "ping frame is {} bytes", ping.len());
    // Worst case: a large sequence number and an IPv6 LSN contact.
    let pong = Message::Pong(Pong { seq: u32::MAX, lsn: Some(contact(3, "[2001:db8::1]:7946")) });
    let pong = encode(&pong);
    assert!(pong.len() < 100, "pong frame is {} bytes", pong.len());
    let pong4 = encode(&Message::Pong(Pong { seq: 7, lsn: Some(contact(3, "192.168.1.10:7946")) }));
    assert!(pong4.len() < 64, "pong frame with an IPv4 contact is {} bytes", pong4.len());
}

/// A `KadStore` frame as encoded before the `cache` flag existed (two fields).
const KAD_STORE_WITHOUT_CACHE_FLAG: &[&str] = &[
    "0122821865875481dbd4ac30ab7a4f8f48d43b9f1c3ed66763bb4b4f763d313b",
    "696e74657276616c3d33305485ff467c764a852bc9309d5bbdf674015c08438a",
    "58206f94ba2689a88a567f8df1b8468f76e2fb67f3c971ce34937196b1add780",
    "80f7031a655542805840d063d821f61595d9bdd959e41c4f15ac9c53162a9219",
    "73849b03de274a808dcd3064f5cbc43803528530edc4ea8bd2cfdca67f29576f",
    "6c46d5c6ed3552768c01",
];

#[test]
fn a_kad_store_from_before_the_cache_flag_decodes_as_a_full_store() {
    let hex: String = KAD_STORE_WITHOUT_CACHE_FLAG.concat();
    let frame: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex literal"))
        .collect();
    let Ok(Message::KadStore(store)) = wire::decode(&frame) else { panic!("old frame refused") };
    assert_eq!((store.rpc, store.cache, store.client), (101, false, false));
    assert_eq!(store.record, record());
    // The new encoding is the old one plus one byte for each flag (`cache`, `client`; the
    // array header keeps its size).
    let new = encode(&Message::KadStore(Box::new(KadStore { cache: false, ..*store })));
    assert_eq!(new.len(), frame.len() + 2);
}
