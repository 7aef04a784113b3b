//! Behaviour of the in-memory network: delivery, latency, seeded loss, partitions, binding.

use std::{collections::BTreeSet, io, net::SocketAddr, time::Duration};

use fleetmesh_driver::{Transport, TransportError};
use fleetmesh_memory::{LinkConfig, MemoryHub, MemoryTransport, MAX_DATAGRAM_SIZE};
use tokio::time::{timeout, Instant};

/// Hang guard for receives that must succeed. With the paused clock an idle runtime jumps
/// straight to it, so it is also how "nothing arrives" is observed without real waiting.
const GUARD: Duration = Duration::from_secs(30);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

async fn recv(t: &MemoryTransport) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    let (len, src) = timeout(GUARD, t.recv_from(&mut buf)).await.expect("hang guard").unwrap();
    buf.truncate(len);
    (buf, src)
}

/// Everything that arrives before the runtime goes idle. Only for paused-clock tests.
async fn drain(t: &MemoryTransport) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    while let Ok(res) = timeout(GUARD, t.recv_from(&mut buf)).await {
        let (len, _) = res.unwrap();
        got.push(buf[..len].to_vec());
    }
    got
}

#[tokio::test]
async fn delivers_datagram_with_source() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1000")).unwrap();
    let b = hub.bind(addr("[fd00::2]:1000")).unwrap();

    a.send_to(b.local_addr(), b"ping").await.unwrap();
    assert_eq!(recv(&b).await, (b"ping".to_vec(), a.local_addr()));
    b.send_to(a.local_addr(), b"").await.unwrap();
    assert_eq!(recv(&a).await, (Vec::new(), b.local_addr()));
    assert_eq!(a.local_addrs(), vec![a.local_addr()]);
}

#[tokio::test(start_paused = true)]
async fn latency_delays_delivery_in_virtual_time() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    hub.set_default_link(LinkConfig::new(Duration::from_millis(50), 0.0));
    hub.set_link(a.local_addr(), b.local_addr(), LinkConfig::new(Duration::from_secs(3), 0.0));

    let start = Instant::now();
    a.send_to(b.local_addr(), b"slow").await.unwrap();
    recv(&b).await;
    assert!(start.elapsed() >= Duration::from_secs(3), "{:?}", start.elapsed());

    // The reverse direction has no override, so it uses the default.
    let start = Instant::now();
    b.send_to(a.local_addr(), b"fast").await.unwrap();
    recv(&a).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(50) && elapsed < Duration::from_secs(3));
}

/// Sends 200 numbered datagrams over a lossy link and returns the numbers that arrived.
async fn lossy_run(seed: u64) -> BTreeSet<u8> {
    let hub = MemoryHub::new(seed);
    hub.set_default_link(LinkConfig::new(Duration::ZERO, 0.5));
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    for i in 0..200u8 {
        a.send_to(b.local_addr(), &[i]).await.unwrap();
    }
    drain(&b).await.into_iter().map(|d| d[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn same_seed_loses_same_datagrams() {
    let first = lossy_run(7).await;
    assert_eq!(first, lossy_run(7).await);
    assert!(!first.is_empty() && first.len() < 200, "{} delivered", first.len());
    assert_ne!(first, lossy_run(8).await);
}

#[tokio::test(start_paused = true)]
async fn total_loss_drops_everything() {
    let hub = MemoryHub::new(3);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    hub.set_link(a.local_addr(), b.local_addr(), LinkConfig::new(Duration::ZERO, 1.0));
    for _ in 0..50 {
        a.send_to(b.local_addr(), b"x").await.unwrap();
    }
    assert!(drain(&b).await.is_empty());

    hub.clear_link(a.local_addr(), b.local_addr());
    a.send_to(b.local_addr(), b"y").await.unwrap();
    assert_eq!(drain(&b).await, vec![b"y".to_vec()]);
}

#[tokio::test(start_paused = true)]
async fn partition_cuts_both_directions_until_healed() {
    let hub = MemoryHub::new(3);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    let c = hub.bind(addr("10.0.0.3:1")).unwrap();

    hub.partition(a.local_addr(), b.local_addr());
    a.send_to(b.local_addr(), b"a->b").await.unwrap();
    b.send_to(a.local_addr(), b"b->a").await.unwrap();
    c.send_to(a.local_addr(), b"c->a").await.unwrap();
    assert!(drain(&b).await.is_empty());
    assert_eq!(drain(&a).await, vec![b"c->a".to_vec()]);

    hub.heal(b.local_addr(), a.local_addr());
    a.send_to(b.local_addr(), b"healed").await.unwrap();
    assert_eq!(drain(&b).await, vec![b"healed".to_vec()]);
}

#[tokio::test(start_paused = true)]
async fn unbound_destination_is_dropped_silently() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    a.send_to(addr("10.0.0.9:9"), b"void").await.unwrap();

    // Binding after the datagram was dropped does not resurrect it.
    let late = hub.bind(addr("10.0.0.9:9")).unwrap();
    assert!(drain(&late).await.is_empty());
}

#[tokio::test]
async fn oversized_send_is_refused() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    assert_eq!(a.max_datagram_size(), MAX_DATAGRAM_SIZE);

    let err = a.send_to(b.local_addr(), &vec![0; MAX_DATAGRAM_SIZE + 1]).await.unwrap_err();
    assert!(matches!(
        err,
        TransportError::TooLarge { size, max } if size == MAX_DATAGRAM_SIZE + 1 && max == MAX_DATAGRAM_SIZE
    ));
    a.send_to(b.local_addr(), &vec![7; MAX_DATAGRAM_SIZE]).await.unwrap();
    assert_eq!(recv(&b).await.0.len(), MAX_DATAGRAM_SIZE);
}

#[tokio::test]
async fn datagram_larger_than_buffer_is_an_error_and_consumed() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    a.send_to(b.local_addr(), b"0123456789").await.unwrap();
    a.send_to(b.local_addr(), b"ok").await.unwrap();

    let mut small = [0u8; 4];
    let err = b.recv_from(&mut small).await.unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { size: 10, max: 4 }));
    let (len, _) = b.recv_from(&mut small).await.unwrap();
    assert_eq!(&small[..len], b"ok");
}

#[tokio::test]
async fn binding_a_bound_address_fails_until_dropped() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let err = hub.bind(a.local_addr()).unwrap_err();
    assert!(matches!(err, TransportError::Io(ref e) if e.kind() == io::ErrorKind::AddrInUse));

    drop(a);
    hub.bind(addr("10.0.0.1:1")).unwrap();

    let err = hub.bind(addr("0.0.0.0:1")).unwrap_err();
    assert!(
        matches!(err, TransportError::Io(ref e) if e.kind() == io::ErrorKind::AddrNotAvailable)
    );
}

#[tokio::test]
async fn port_zero_picks_distinct_ephemeral_ports() {
    let hub = MemoryHub::new(1);
    let a = hub.bind(addr("10.0.0.1:0")).unwrap();
    let b = hub.bind(addr("10.0.0.1:0")).unwrap();
    assert_ne!(a.local_addr().port(), 0);
    assert_ne!(a.local_addr(), b.local_addr());
    a.send_to(b.local_addr(), b"hi").await.unwrap();
    assert_eq!(recv(&b).await.1, a.local_addr());
}

#[tokio::test(start_paused = true)]
async fn cancelled_recv_loses_nothing() {
    let hub = MemoryHub::new(1);
    hub.set_default_link(LinkConfig::new(Duration::from_millis(100), 0.0));
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();

    a.send_to(b.local_addr(), b"kept").await.unwrap();
    let mut buf = [0u8; 16];
    // Give up before the datagram arrives: the dropped future must not take it.
    assert!(timeout(Duration::from_millis(10), b.recv_from(&mut buf)).await.is_err());
    assert_eq!(recv(&b).await.0, b"kept");
}

#[tokio::test(start_paused = true)]
async fn full_receive_queue_drops_excess() {
    let hub = MemoryHub::new(1);
    hub.set_queue_capacity(2);
    let a = hub.bind(addr("10.0.0.1:1")).unwrap();
    let b = hub.bind(addr("10.0.0.2:1")).unwrap();
    for i in 0..5u8 {
        a.send_to(b.local_addr(), &[i]).await.unwrap();
    }
    assert_eq!(drain(&b).await, vec![vec![0], vec![1]]);
}
