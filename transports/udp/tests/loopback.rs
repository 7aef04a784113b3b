//! UdpTransport over real sockets, on loopback addresses only.

use std::{io, net::SocketAddr, time::Duration};

use fleetmesh_driver::{Transport, TransportError};
use fleetmesh_udp::{UdpTransport, MAX_DATAGRAM_SIZE};
use tokio::time::timeout;

/// Hang guard only: loopback delivery takes microseconds.
const GUARD: Duration = Duration::from_secs(30);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Binds, or `None` when the machine has no such loopback address (IPv6 disabled).
async fn bind_or_skip(s: &str) -> Option<UdpTransport> {
    match UdpTransport::bind(addr(s)).await {
        Ok(t) => Some(t),
        Err(TransportError::Io(e))
            if matches!(e.kind(), io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported) =>
        {
            eprintln!("skipping: cannot bind {s}: {e}");
            None
        }
        Err(e) => panic!("bind {s}: {e}"),
    }
}

async fn recv(t: &UdpTransport) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    let (len, src) = timeout(GUARD, t.recv_from(&mut buf)).await.expect("hang guard").unwrap();
    buf.truncate(len);
    (buf, src)
}

async fn round_trip(a: UdpTransport, b: UdpTransport) {
    a.send_to(b.local_addr(), b"ping").await.unwrap();
    let (got, src) = recv(&b).await;
    assert_eq!((got.as_slice(), src), (&b"ping"[..], a.local_addr()));
    b.send_to(src, b"pong").await.unwrap();
    let (got, src) = recv(&a).await;
    assert_eq!((got.as_slice(), src), (&b"pong"[..], b.local_addr()));
}

#[tokio::test]
async fn round_trip_ipv4() {
    let a = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    assert_ne!(a.local_addr().port(), 0);
    assert_eq!(a.local_addrs(), vec![a.local_addr()]);
    round_trip(a, b).await;
}

#[tokio::test]
async fn round_trip_ipv6() {
    let (Some(a), Some(b)) = (bind_or_skip("[::1]:0").await, bind_or_skip("[::1]:0").await) else {
        return;
    };
    round_trip(a, b).await;
}

#[tokio::test]
async fn largest_datagram_arrives_whole() {
    let a = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let big: Vec<u8> = (0..MAX_DATAGRAM_SIZE).map(|i| i as u8).collect();
    a.send_to(b.local_addr(), &big).await.unwrap();
    assert_eq!(recv(&b).await.0, big);
}

#[tokio::test]
async fn oversized_send_is_refused() {
    let a = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    assert_eq!(a.max_datagram_size(), MAX_DATAGRAM_SIZE);
    let err = a.send_to(addr("127.0.0.1:9"), &vec![0; MAX_DATAGRAM_SIZE + 1]).await.unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { size, max }
        if size == MAX_DATAGRAM_SIZE + 1 && max == MAX_DATAGRAM_SIZE));
}

#[tokio::test]
async fn datagram_larger_than_buffer_is_an_error_not_truncated() {
    let a = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    a.send_to(b.local_addr(), b"0123456789").await.unwrap();
    a.send_to(b.local_addr(), b"ok").await.unwrap();

    let mut small = [0u8; 4];
    let err = timeout(GUARD, b.recv_from(&mut small)).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { size: 10, max: 4 }), "{err:?}");
    let (len, src) = timeout(GUARD, b.recv_from(&mut small)).await.unwrap().unwrap();
    assert_eq!((&small[..len], src), (&b"ok"[..], a.local_addr()));
}

#[tokio::test]
async fn other_address_family_is_refused() {
    let v4 = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let err = v4.send_to(addr("[::1]:9"), b"x").await.unwrap_err();
    assert!(matches!(err, TransportError::AddressFamily(a) if a == addr("[::1]:9")));

    let Some(v6) = bind_or_skip("[::1]:0").await else { return };
    let err = v6.send_to(addr("127.0.0.1:9"), b"x").await.unwrap_err();
    assert!(matches!(err, TransportError::AddressFamily(a) if a == addr("127.0.0.1:9")));
}

#[tokio::test]
async fn cancelled_recv_loses_nothing() {
    let a = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let b = UdpTransport::bind(addr("127.0.0.1:0")).await.unwrap();
    let mut small = [0u8; 16];
    // Both the direct and the scratch-buffer paths: give up while nothing has arrived.
    assert!(timeout(Duration::from_millis(20), b.recv_from(&mut small)).await.is_err());
    let mut big = vec![0u8; 70_000];
    assert!(timeout(Duration::from_millis(20), b.recv_from(&mut big)).await.is_err());

    a.send_to(b.local_addr(), b"kept").await.unwrap();
    let (len, _) = timeout(GUARD, b.recv_from(&mut small)).await.unwrap().unwrap();
    assert_eq!(&small[..len], b"kept");
}
