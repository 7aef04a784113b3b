//! TCP fallback over real sockets on loopback: two endpoints, each with a UDP socket and a TCP
//! listener on the same port behind a [`DualTransport`]; the responder's firewall drops all
//! its UDP. The handshake gets no answer over UDP, falls back to TCP after the configured
//! second, and the message arrives.

use std::time::{Duration, Instant};

use fleetmesh::{
    driver::{Clock, EndpointHandle},
    trust::{Authority, CertFlags},
    wire::{AppMessage, Message},
    DualTransport, Endpoint, EndpointConfig, Event, Identity, Path, Timestamp, Transport,
};
use fleetmesh_tcp::TcpTransport;
use fleetmesh_testkit::{Firewall, UdpBlock};
use fleetmesh_udp::UdpTransport;
use rand_core::SeedableRng;

const FALLBACK: Duration = Duration::from_secs(1);

fn endpoints() -> (Endpoint, Endpoint) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(66);
    let mut master = Authority::new(Identity::generate(&mut rng));
    let now = Timestamp::from_secs(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
    );
    let mut make = |seed: u8| {
        let id = Identity::generate(&mut rng);
        let cert = master.issue(
            &id.verifying_key(),
            id.x25519_public(),
            CertFlags::NONE,
            now,
            Duration::from_secs(86_400),
        );
        let config = EndpointConfig::new(id, master.network_key())
            .certificate(cert)
            .tcp_fallback(Some(FALLBACK));
        Endpoint::new(config, [seed; 32])
    };
    (make(1), make(2))
}

/// A UDP socket behind `firewall` and a TCP listener on the same loopback port.
async fn dual(firewall: &Firewall) -> impl Transport {
    let udp = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let tcp = TcpTransport::bind(udp.local_addr()).await.unwrap();
    DualTransport::new(firewall.wrap(udp), tcp)
}

async fn next_matching(h: &mut EndpointHandle, mut f: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), h.next_event())
            .await
            .expect("event within 10 s")
            .expect("driver running");
        if f(&e) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_blocked_both_ways_falls_back_to_tcp_on_loopback() {
    let (ea, eb) = endpoints();
    let id_a = ea.node_id();
    let firewall_b = Firewall::default();
    firewall_b.set(UdpBlock::Both);
    let ta = dual(&Firewall::default()).await;
    let tb = dual(&firewall_b).await;
    let addr_b = tb.local_addrs()[0];
    let mut a = EndpointHandle::spawn(ea, ta, Clock::system());
    let mut b = EndpointHandle::spawn(eb, tb, Clock::system());

    let start = Instant::now();
    a.send_to(addr_b, Message::App(AppMessage { id: 1, data: b"over tcp".to_vec() }))
        .await
        .unwrap();
    let e = next_matching(&mut b, |e| matches!(e, Event::Message { .. })).await;
    let took = start.elapsed();
    eprintln!("message delivered through the TCP fallback after {took:?}");
    let Event::Message { peer, message, .. } = e else { unreachable!() };
    assert_eq!(peer, id_a);
    assert_eq!(message, Message::App(AppMessage { id: 1, data: b"over tcp".to_vec() }));
    assert!(took >= FALLBACK, "arrived before the fallback: UDP was not blocked? {took:?}");
    assert!(took < FALLBACK * 3, "fallback took {took:?}");
    let path = next_matching(&mut a, |e| matches!(e, Event::PathChanged { .. })).await;
    assert!(matches!(path, Event::PathChanged { path: Path::Tcp, addr, .. } if addr == addr_b));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
