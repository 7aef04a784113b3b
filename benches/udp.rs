//! Loopback UDP round trips per second: through `fleetmesh-udp`'s `Transport`, next to a bare
//! tokio `UdpSocket` echo on the same runtime.
//!
//! Target (issue 2): the transport reaches ≥ 70 % of bare round trips per second. Figures are
//! printed by criterion (elements/s = round trips/s); nothing here asserts a time.

// criterion's macros generate undocumented public items.
#![allow(missing_docs)]

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fleetmesh::Transport;
use fleetmesh_udp::UdpTransport;
use tokio::{net::UdpSocket, runtime::Runtime};

const PAYLOAD: usize = 64;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn bare_pair() -> (Arc<UdpSocket>, SocketAddr) {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let server_addr = server.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, src)) = server.recv_from(&mut buf).await {
            let _ = server.send_to(&buf[..n], src).await;
        }
    });
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    (Arc::new(client), server_addr)
}

async fn transport_pair() -> (Arc<UdpTransport>, SocketAddr) {
    let server = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let server_addr = server.local_addrs()[0];
    tokio::spawn(async move {
        let mut buf = vec![0u8; server.max_datagram_size()];
        while let Ok((n, src)) = server.recv_from(&mut buf).await {
            let _ = server.send_to(src, &buf[..n]).await;
        }
    });
    let client = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    (Arc::new(client), server_addr)
}

fn round_trips(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("udp-round-trip");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));

    let (bare, bare_server) = rt.block_on(bare_pair());
    group.bench_function("bare-tokio-udpsocket", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let payload = [1u8; PAYLOAD];
                let mut buf = [0u8; 2048];
                let start = Instant::now();
                for _ in 0..iters {
                    bare.send_to(&payload, bare_server).await.expect("send");
                    bare.recv_from(&mut buf).await.expect("recv");
                }
                start.elapsed()
            })
        })
    });

    let (transport, server) = rt.block_on(transport_pair());
    group.bench_function("fleetmesh-udp-transport", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let payload = [1u8; PAYLOAD];
                let mut buf = vec![0u8; transport.max_datagram_size()];
                let start = Instant::now();
                for _ in 0..iters {
                    transport.send_to(server, &payload).await.expect("send");
                    transport.recv_from(&mut buf).await.expect("recv");
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
