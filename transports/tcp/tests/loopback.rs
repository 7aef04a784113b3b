//! TcpTransport over real sockets, on loopback addresses only.
//!
//! Waits are hang guards or retry loops, never timing assertions.

use std::{io, net::SocketAddr, time::Duration};

use fleetmesh_driver::{Transport, TransportError};
use fleetmesh_tcp::{TcpConfig, TcpTransport, MAX_DATAGRAM_SIZE};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

/// Hang guard only: loopback delivery takes microseconds.
const GUARD: Duration = Duration::from_secs(30);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Binds, or `None` when the machine has no such loopback address (IPv6 disabled).
async fn bind_or_skip(s: &str) -> Option<TcpTransport> {
    match TcpTransport::bind(addr(s)).await {
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

async fn bind_v4() -> TcpTransport {
    TcpTransport::bind(addr("127.0.0.1:0")).await.unwrap()
}

async fn recv(t: &TcpTransport) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; MAX_DATAGRAM_SIZE];
    let (len, src) = timeout(GUARD, t.recv_from(&mut buf)).await.expect("hang guard").unwrap();
    buf.truncate(len);
    (buf, src)
}

/// A frame as the wire format defines it, built by hand so the test checks the format too.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn hello(port: u16) -> Vec<u8> {
    let mut payload = b"fmT1".to_vec();
    payload.extend_from_slice(&port.to_be_bytes());
    frame(&payload)
}

/// A port on 127.0.0.1 with nothing listening, reserved while the value lives: a socket bound
/// there without listening refuses connections. (A listener bound and dropped freed its port,
/// and a test running alongside could get it from its own bind to port 0 and answer: two tests
/// once hung that way on a loaded machine.)
struct ClosedPort {
    port: u16,
    _socket: tokio::net::TcpSocket,
}

fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(addr("127.0.0.1:0")).unwrap();
    let port = socket.local_addr().unwrap().port();
    ClosedPort { port, _socket: socket }
}

/// Reads until the peer closes the connection (EOF or reset), discarding bytes.
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match timeout(GUARD, stream.read(&mut buf)).await.expect("connection left open") {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn ping_pong(a: &TcpTransport, b: &TcpTransport) {
    a.send_to(b.local_addr(), b"ping").await.unwrap();
    let (got, src) = recv(b).await;
    assert_eq!((got.as_slice(), src), (&b"ping"[..], a.local_addr()));
    b.send_to(src, b"pong").await.unwrap();
    let (got, src) = recv(a).await;
    assert_eq!((got.as_slice(), src), (&b"pong"[..], b.local_addr()));
}

#[tokio::test]
async fn round_trip_ipv4() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    assert_eq!(a.local_addrs(), vec![a.local_addr()]);
    ping_pong(&a, &b).await;
}

#[tokio::test]
async fn round_trip_ipv6() {
    let (Some(a), Some(b)) = (bind_or_skip("[::1]:0").await, bind_or_skip("[::1]:0").await) else {
        return;
    };
    ping_pong(&a, &b).await;
    assert_eq!(b.stats().dialed, 0, "the reply reused a's connection");
}

#[tokio::test]
async fn replies_reuse_the_dialers_connection() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    for _ in 0..3 {
        ping_pong(&a, &b).await;
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.dialed, sa.accepted, sa.open), (1, 0, 1), "{sa:?}");
    assert_eq!((sb.dialed, sb.accepted, sb.open), (0, 1, 1), "{sb:?}");
}

#[tokio::test]
async fn reply_reaches_a_dialer_that_does_not_listen() {
    let b = bind_v4().await;
    let closed = closed_port();
    let port = closed.port;
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&hello(port)).await.unwrap();
    raw.write_all(&frame(b"from raw")).await.unwrap();

    let (got, src) = recv(&b).await;
    assert_eq!((got.as_slice(), src), (&b"from raw"[..], addr(&format!("127.0.0.1:{port}"))));

    // Nothing listens on `src`: only the existing connection can carry the reply.
    b.send_to(src, b"reply").await.unwrap();
    let mut reply = vec![0u8; 9];
    timeout(GUARD, raw.read_exact(&mut reply)).await.unwrap().unwrap();
    assert_eq!(reply, frame(b"reply"));
    assert_eq!(b.stats().dialed, 0);
}

#[tokio::test]
async fn reconnects_after_peer_restart() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    let b_addr = b.local_addr();
    ping_pong(&a, &b).await;

    b.close().await;
    let b = TcpTransport::bind(b_addr).await.unwrap();

    // A datagram written just before a notices the old connection is gone can be lost (best
    // effort), so retry; but every send must succeed, redialing as needed.
    let delivered = timeout(GUARD, async {
        loop {
            a.send_to(b_addr, b"again").await.expect("send after restart");
            if let Ok(got) = timeout(Duration::from_millis(200), recv(&b)).await {
                break got;
            }
        }
    })
    .await
    .expect("hang guard");
    assert_eq!(delivered, (b"again".to_vec(), a.local_addr()));
    assert!(a.stats().dialed >= 2, "{:?}", a.stats());
}

#[tokio::test]
async fn oversized_frame_closes_only_that_connection() {
    let b = bind_v4().await;
    let c = bind_v4().await;
    c.send_to(b.local_addr(), b"before").await.unwrap();
    assert_eq!(recv(&b).await.0, b"before");

    let closed = closed_port();
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&hello(closed.port)).await.unwrap();
    raw.write_all(&(MAX_DATAGRAM_SIZE as u32 + 1).to_be_bytes()).await.unwrap();
    until_closed(&mut raw).await;

    c.send_to(b.local_addr(), b"after").await.unwrap();
    assert_eq!(recv(&b).await.0, b"after");
    assert_eq!(b.stats().accepted, 2, "raw hello was accepted, then dropped");
}

#[tokio::test]
async fn malformed_hello_closes_the_connection() {
    let b = bind_v4().await;
    for garbage in [frame(b"GET / HTTP/1.1"), vec![0xff; 64], frame(b"fmT1\0\0")] {
        let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
        raw.write_all(&garbage).await.unwrap();
        until_closed(&mut raw).await;
    }
    assert_eq!(b.stats().accepted, 0);

    let a = bind_v4().await;
    ping_pong(&a, &b).await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_redialed() {
    let config = TcpConfig::default().with_idle_timeout(Duration::from_millis(300));
    let a = TcpTransport::bind_with_config(addr("127.0.0.1:0"), config.clone()).await.unwrap();
    let b = TcpTransport::bind_with_config(addr("127.0.0.1:0"), config).await.unwrap();
    ping_pong(&a, &b).await;

    timeout(GUARD, async {
        while a.stats().open + b.stats().open > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("idle connections were not closed");

    ping_pong(&a, &b).await;
    assert_eq!(a.stats().dialed, 2);
}

#[tokio::test]
async fn oversized_send_is_refused() {
    let a = bind_v4().await;
    assert_eq!(a.max_datagram_size(), MAX_DATAGRAM_SIZE);
    let err = a.send_to(addr("127.0.0.1:9"), &vec![0; MAX_DATAGRAM_SIZE + 1]).await.unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { size, max }
        if size == MAX_DATAGRAM_SIZE + 1 && max == MAX_DATAGRAM_SIZE));
    assert_eq!(a.stats().dialed, 0);
}

#[tokio::test]
async fn largest_datagram_arrives_whole() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    let big: Vec<u8> = (0..MAX_DATAGRAM_SIZE).map(|i| i as u8).collect();
    a.send_to(b.local_addr(), &big).await.unwrap();
    assert_eq!(recv(&b).await.0, big);
}

#[tokio::test]
async fn datagram_larger_than_buffer_is_an_error_not_truncated() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    a.send_to(b.local_addr(), b"0123456789").await.unwrap();
    a.send_to(b.local_addr(), b"ok").await.unwrap();
    let mut small = [0u8; 4];
    let err = timeout(GUARD, b.recv_from(&mut small)).await.unwrap().unwrap_err();
    assert!(matches!(err, TransportError::TooLarge { size: 10, max: 4 }), "{err:?}");
    let (len, _) = timeout(GUARD, b.recv_from(&mut small)).await.unwrap().unwrap();
    assert_eq!(&small[..len], b"ok");
}

#[tokio::test]
async fn unreachable_and_wrong_family_destinations() {
    let a = bind_v4().await;
    let closed = closed_port();
    let dst = addr(&format!("127.0.0.1:{}", closed.port));
    assert!(matches!(a.send_to(dst, b"x").await, Err(TransportError::Unreachable(d)) if d == dst));
    let v6 = addr("[::1]:9");
    assert!(matches!(a.send_to(v6, b"x").await, Err(TransportError::AddressFamily(d)) if d == v6));
}

#[tokio::test]
async fn cancelled_recv_loses_nothing() {
    let (a, b) = (bind_v4().await, bind_v4().await);
    let mut buf = [0u8; 16];
    assert!(timeout(Duration::from_millis(20), b.recv_from(&mut buf)).await.is_err());
    a.send_to(b.local_addr(), b"kept").await.unwrap();
    let (len, _) = timeout(GUARD, b.recv_from(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..len], b"kept");
}

/// A raw peer that files itself under `claimed_port` and then never reads, so `b`'s writes
/// eventually stall and time out on that connection.
async fn stalled_peer(b: &TcpTransport, claimed_port: u16) -> TcpStream {
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&hello(claimed_port)).await.unwrap();
    raw.write_all(&frame(b"hi")).await.unwrap();
    let (_, src) = recv(b).await;
    assert_eq!(src.port(), claimed_port);
    raw
}

fn stalling_config() -> TcpConfig {
    TcpConfig::default().with_write_timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn failed_write_redials_once_and_delivers() {
    let a = bind_v4().await;
    let b = TcpTransport::bind_with_config(addr("127.0.0.1:0"), stalling_config()).await.unwrap();
    // The raw peer claims a's port, so once its connection fails the redial reaches a.
    let _raw = stalled_peer(&b, a.local_addr().port()).await;

    let big = vec![0u8; MAX_DATAGRAM_SIZE];
    let redialed = timeout(GUARD, async {
        for sent in 1.. {
            b.send_to(a.local_addr(), &big).await.expect("redial must rescue the send");
            if b.stats().dialed == 1 {
                return sent;
            }
        }
        unreachable!()
    })
    .await
    .expect("hang guard");
    assert!(redialed > 1, "the first sends used the existing connection");

    // The datagram whose write failed went over the new connection.
    let (got, src) = recv(&a).await;
    assert_eq!((got.len(), src), (MAX_DATAGRAM_SIZE, b.local_addr()));
}

#[tokio::test]
async fn failed_write_with_failed_redial_is_an_error() {
    let b = TcpTransport::bind_with_config(addr("127.0.0.1:0"), stalling_config()).await.unwrap();
    let closed = closed_port();
    let port = closed.port;
    let _raw = stalled_peer(&b, port).await;
    let dst = addr(&format!("127.0.0.1:{port}"));

    let big = vec![0u8; MAX_DATAGRAM_SIZE];
    let err = timeout(GUARD, async {
        loop {
            if let Err(e) = b.send_to(dst, &big).await {
                return e;
            }
        }
    })
    .await
    .expect("hang guard");
    assert!(matches!(err, TransportError::Unreachable(d) if d == dst), "{err:?}");
    assert_eq!(b.stats().open, 0);
}

#[tokio::test]
async fn an_announced_port_cannot_take_over_another_peers_connection() {
    // Two hosts behind one NAT reach us from the same IP. The hello's port is only what the
    // dialer says: a second host announcing the first one's port must not capture the
    // traffic meant for the first.
    let b = bind_v4().await;
    let claimed = closed_port();
    let mut first = TcpStream::connect(b.local_addr()).await.unwrap();
    first.write_all(&hello(claimed.port)).await.unwrap();
    first.write_all(&frame(b"first")).await.unwrap();
    let (got, src) = recv(&b).await;
    assert_eq!(
        (got.as_slice(), src),
        (&b"first"[..], addr(&format!("127.0.0.1:{}", claimed.port)))
    );

    let mut second = TcpStream::connect(b.local_addr()).await.unwrap();
    second.write_all(&hello(claimed.port)).await.unwrap();
    second.write_all(&frame(b"second")).await.unwrap();
    let (got, second_src) = recv(&b).await;
    assert_eq!(got, b"second");

    b.send_to(src, b"for the first").await.unwrap();
    let mut reply = vec![0u8; frame(b"for the first").len()];
    timeout(Duration::from_secs(5), first.read_exact(&mut reply))
        .await
        .expect("the first peer's traffic went elsewhere")
        .unwrap();
    assert_eq!(reply, frame(b"for the first"));
    // The second is reported at the address it really comes from, and answered there.
    assert_ne!(second_src, src);
    assert_eq!(second_src, second.local_addr().unwrap());
    b.send_to(second_src, b"for the second").await.unwrap();
    let mut reply = vec![0u8; frame(b"for the second").len()];
    timeout(GUARD, second.read_exact(&mut reply)).await.unwrap().unwrap();
    assert_eq!(reply, frame(b"for the second"));
    assert_eq!(b.stats().dialed, 0);
}

/// Connects from `local_ip` and tells whether the transport kept the connection open (a
/// refused one is closed at once, before anything is read).
async fn kept_open(to: SocketAddr, local_ip: &str) -> (bool, TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(addr(&format!("{local_ip}:0"))).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let mut byte = [0u8; 1];
    let open = match timeout(Duration::from_millis(300), stream.read(&mut byte)).await {
        Err(_) => true,      // nothing to read and not closed
        Ok(Ok(0)) => false,  // closed by the transport
        Ok(Err(_)) => false, // reset by the transport
        Ok(Ok(_)) => panic!("the transport never sends first"),
    };
    (open, stream)
}

#[tokio::test]
async fn accepted_connections_are_bounded_in_all_and_per_ip() {
    let config = TcpConfig::default().with_accept_limits(3, 2);
    let t = TcpTransport::bind_with_config(addr("127.0.0.1:0"), config).await.unwrap();
    let to = t.local_addr();
    let (first, c1) = kept_open(to, "127.0.0.1").await;
    let (second, _c2) = kept_open(to, "127.0.0.1").await;
    let (third, _c3) = kept_open(to, "127.0.0.1").await;
    assert_eq!((first, second, third), (true, true, false), "two per IP");
    let (other_ip, _c4) = kept_open(to, "127.0.0.2").await;
    assert!(other_ip, "another IP still gets in");
    let (over_total, _c5) = kept_open(to, "127.0.0.3").await;
    assert!(!over_total, "three in all");
    assert_eq!(t.stats().refused, 2);

    // A closed connection gives its place back.
    drop(c1);
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let (open, stream) = kept_open(to, "127.0.0.1").await;
        if open {
            break;
        }
        drop(stream);
        assert!(tokio::time::Instant::now() < deadline, "the place was never given back");
    }
}
