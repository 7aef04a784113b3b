//! Session seal+open against raw ChaCha20-Poly1305 on the same buffers.
//!
//! Target (issue 2): at 1 KiB, session throughput ≥ 80 % of raw AEAD. The session adds the
//! packet header, the explicit-nonce bookkeeping and the replay window on top of the AEAD.
//! Figures are printed by criterion; nothing here asserts a time.

// criterion's macros generate undocumented public items.
#![allow(missing_docs)]

use chacha20poly1305::{
    aead::{AeadInPlace, KeyInit},
    ChaCha20Poly1305, Key, Nonce,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fleetmesh::secure::session_pair;

fn seal_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal+open");
    for size in [64usize, 1024, 16 * 1024] {
        group.throughput(Throughput::Bytes(size as u64));
        let payload = vec![0x5au8; size];

        let (mut a, mut b) = session_pair(1);
        let (mut packet, mut plain) =
            (Vec::with_capacity(size + 64), Vec::with_capacity(size + 64));
        group.bench_with_input(BenchmarkId::new("session", size), &payload, |bench, payload| {
            bench.iter(|| {
                a.seal(payload, &mut packet).expect("seal");
                b.open_packet(&packet, &mut plain).expect("open");
            })
        });

        let cipher = ChaCha20Poly1305::new(Key::from_slice(&[7u8; 32]));
        let mut buf = Vec::with_capacity(size + 16);
        let mut counter = 0u64;
        group.bench_with_input(
            BenchmarkId::new("raw-chacha20poly1305", size),
            &payload,
            |bench, payload| {
                bench.iter(|| {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_le_bytes());
                    let nonce = Nonce::from_slice(&nonce);
                    buf.clear();
                    buf.extend_from_slice(payload);
                    cipher.encrypt_in_place(nonce, b"", &mut buf).expect("encrypt");
                    cipher.decrypt_in_place(nonce, b"", &mut buf).expect("decrypt");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
