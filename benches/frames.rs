//! Frame throughput: encode and decode of a hot message (`Ping`) and of a typical `Update` (10
//! presence changes, a 3-hop route), in frames per second.
//!
//! `cargo bench --bench frames` (add `-- --warm-up-time 1 --measurement-time 3` for a quick run).

use std::{hint::black_box, net::SocketAddr};

use criterion::{BenchmarkId, Criterion, Throughput};
use fleetmesh::{
    wire::{
        self, Digest, Message, PartReason, Ping, PresenceChange, PresenceKind, Update, WireAddr,
    },
    NodeId,
};

fn ping() -> Message {
    Message::Ping(Ping { seq: 123_456 })
}

fn update() -> Message {
    let id = |i: u32| NodeId::hash(&i.to_be_bytes());
    let changes = (0..10u8)
        .map(|i| PresenceChange {
            node: id(u32::from(i)),
            kind: if i % 3 == 0 {
                PresenceKind::Parted(PartReason::Lost)
            } else {
                PresenceKind::Joined
            },
            addr: WireAddr(SocketAddr::from(([192, 168, 1, 10 + i], 7946))),
        })
        .collect();
    Message::Update(Update {
        seq: 4_242,
        changes,
        route: vec![id(100), id(101), id(102)],
        digest: Some(Digest { count: 57, hash: 0x9e37_79b9_7f4a_7c15 }),
    })
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    for (name, msg) in [("ping", ping()), ("update", update())] {
        let mut buf = Vec::with_capacity(wire::encoded_len(&msg));
        let id = BenchmarkId::new("encode+decode", format!("{name}/{}B", wire::encoded_len(&msg)));
        group.bench_with_input(id, &msg, |b, msg| {
            b.iter(|| {
                buf.clear();
                // Both samples are far below MAX_FRAME_LEN.
                wire::encode(black_box(msg), &mut buf).expect("fits in a frame");
                wire::decode(black_box(&buf)).expect("decodes")
            })
        });
    }
    group.finish();
}

// What `criterion_group!` and `criterion_main!` expand to, written out because the group macro
// makes an undocumented `pub fn` that the workspace's `missing_docs` lint flags.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    frames(&mut criterion);
    criterion.final_summary();
}
