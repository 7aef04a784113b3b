//! The async driver over the in-memory transport, on tokio's paused clock: time advances only
//! when every task waits, so the run is exact and instant.

use std::time::Duration;

use fleetmesh::{
    driver::{Clock, EndpointHandle},
    secure::HandshakeError,
    trust::{Authority, CertFlags},
    wire::{AppMessage, Message},
    Endpoint, EndpointConfig, Event, Identity, Timestamp,
};
use fleetmesh_memory::{LinkConfig, MemoryHub};
use rand_core::SeedableRng;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn nodes(n: usize) -> Vec<Endpoint> {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let mut master = Authority::new(Identity::generate(&mut rng));
    (0..n)
        .map(|i| {
            let id = Identity::generate(&mut rng);
            let cert = master.issue(
                &id.verifying_key(),
                id.x25519_public(),
                CertFlags::NONE,
                T0,
                Duration::from_secs(86_400),
            );
            Endpoint::new(
                EndpointConfig::new(id, master.network_key()).certificate(cert),
                [i as u8; 32],
            )
        })
        .collect()
}

async fn next_matching(h: &mut EndpointHandle, mut f: impl FnMut(&Event) -> bool) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), h.next_event())
            .await
            .expect("event within a minute of virtual time")
            .expect("driver running");
        if f(&e) {
            return e;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn driver_runs_handshake_and_delivery_in_virtual_time() {
    let hub = MemoryHub::new(1);
    hub.set_default_link(LinkConfig::new(Duration::from_millis(50), 0.0));
    let (addr_a, addr_b) = ("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:4000".parse().unwrap());
    let mut ends = nodes(2);
    let eb = ends.pop().unwrap();
    let ea = ends.pop().unwrap();
    let id_a = ea.node_id();
    let clock = Clock::starting_at(T0);
    let mut a = EndpointHandle::spawn(ea, hub.bind(addr_a).unwrap(), clock);
    let mut b = EndpointHandle::spawn(eb, hub.bind(addr_b).unwrap(), clock);

    let start = tokio::time::Instant::now();
    a.send_to(addr_b, Message::App(AppMessage { id: 7, data: b"x".to_vec() })).await.unwrap();
    let e = next_matching(&mut b, |e| matches!(e, Event::Message { .. })).await;
    let Event::Message { peer, .. } = e else { unreachable!() };
    assert_eq!(peer, id_a);
    // Handshake (three messages), confirmation, then the data: five one-way trips of 50 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    next_matching(&mut a, |e| matches!(e, Event::Connected { .. })).await;

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn driver_reports_a_handshake_timeout_with_the_unsent_message() {
    let hub = MemoryHub::new(2);
    let addr_a = "10.0.0.1:4000".parse().unwrap();
    let nobody = "10.0.0.9:4000".parse().unwrap();
    let mut a = EndpointHandle::spawn(
        nodes(1).pop().unwrap(),
        hub.bind(addr_a).unwrap(),
        Clock::starting_at(T0),
    );
    let msg = Message::App(AppMessage { id: 1, data: vec![1] });
    a.send_to(nobody, msg.clone()).await.unwrap();
    let e = next_matching(&mut a, |e| matches!(e, Event::ConnectFailed { .. })).await;
    assert_eq!(
        e,
        Event::ConnectFailed { addr: nobody, error: HandshakeError::Timeout, unsent: vec![msg] }
    );
    a.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn driver_stops_when_the_handle_goes_and_reports_failed_commands() {
    let hub = MemoryHub::new(3);
    let addr_a = "10.0.0.1:4000".parse().unwrap();
    let mut a = EndpointHandle::spawn(
        nodes(1).pop().unwrap(),
        hub.bind(addr_a).unwrap(),
        Clock::starting_at(T0),
    );
    // Sending to a peer without a session is reported as an event, not lost silently.
    a.send(fleetmesh::NodeId::ZERO, Message::Ping(fleetmesh::wire::Ping { seq: 1 })).await.unwrap();
    let e = next_matching(&mut a, |e| matches!(e, Event::CommandFailed { .. })).await;
    assert!(matches!(
        e,
        Event::CommandFailed { error: fleetmesh::endpoint::CommandError::Send(_) }
    ));
    a.shutdown().await.unwrap();
}
