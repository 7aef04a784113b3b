//! `fleetmesh demo`: a master and nodes over real UDP sockets on loopback.
//!
//! Until the overlay lands this shows the foundation end to end: a node enrolls with the master
//! (one-time token), a second node enrolls, the two open a mutually authenticated session and
//! exchange a message, and the master sends an end-to-end envelope that the node opens.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use fleetmesh::{
    driver::{Clock, EndpointHandle},
    secure::{open_envelope, seal_envelope},
    trust::{Authority, TokenEnrollment},
    wire::{AppMessage, Message},
    Endpoint, EndpointConfig, Event, Identity, NodeId, Transport,
};
use fleetmesh_udp::UdpTransport;
use rand_core::OsRng;

/// Options of `fleetmesh demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on any step after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    #[error("could not open a UDP socket on loopback: {0}")]
    Bind(#[from] fleetmesh::TransportError),
    #[error("timed out waiting for: {0}")]
    Timeout(&'static str),
    #[error("{0}")]
    Failed(String),
    #[error("a node stopped unexpectedly")]
    Stopped,
}

struct Running {
    handle: EndpointHandle,
    addr: SocketAddr,
}

async fn start(endpoint: Endpoint) -> Result<Running, DemoError> {
    let transport = UdpTransport::bind("127.0.0.1:0".parse().expect("literal address")).await?;
    let addr = transport.local_addrs()[0];
    Ok(Running { handle: EndpointHandle::spawn(endpoint, transport, Clock::system()), addr })
}

/// Waits for the first event `pick` accepts, failing on any event `fail` recognises.
async fn wait_for<T>(
    node: &mut Running,
    what: &'static str,
    limit: Duration,
    mut pick: impl FnMut(&Event) -> Option<Result<T, String>>,
) -> Result<T, DemoError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, node.handle.next_event())
            .await
            .map_err(|_| DemoError::Timeout(what))?
            .ok_or(DemoError::Stopped)?;
        tracing::debug!(?event, "demo event");
        if let Some(result) = pick(&event) {
            return result.map_err(DemoError::Failed);
        }
    }
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let limit = Duration::from_secs(args.timeout);
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    let clock = Clock::system();
    let master_identity = Identity::generate(&mut OsRng);
    let authority = Authority::new(master_identity.clone());
    let network = authority.network_key();
    let mut tokens = TokenEnrollment::new();
    tokens.add_token("demo-token-a");
    tokens.add_token("demo-token-b");
    let master_id = network.master_id();
    let mut master =
        start(Endpoint::new(EndpointConfig::master(authority, tokens, clock.now()), seed()))
            .await?;
    say(format!("master   {} listening on udp {}", short(&master_id), master.addr));

    // Two nodes enroll with one-time tokens.
    let mut nodes = Vec::new();
    let mut identities = Vec::new();
    let mut enroll_ms = Vec::new();
    for token in ["demo-token-a", "demo-token-b"] {
        let identity = Identity::generate(&mut OsRng);
        identities.push(identity.clone());
        let mut node = start(Endpoint::new(
            EndpointConfig::new(identity, network).enroll_token(token),
            seed(),
        ))
        .await?;
        let started = Instant::now();
        node.handle.connect(master.addr, Some(master_id)).await.map_err(|_| DemoError::Stopped)?;
        let cert = wait_for(&mut node, "enrollment", limit, |e| match e {
            Event::Enrolled { certificate } => Some(Ok(certificate.clone())),
            Event::EnrollmentFailed { error } => {
                Some(Err(format!("enrollment failed: {}", error.detail)))
            }
            Event::ConnectFailed { error, .. } => {
                Some(Err(format!("could not reach the master: {error}")))
            }
            _ => None,
        })
        .await?;
        enroll_ms.push(started.elapsed().as_secs_f64() * 1e3);
        say(format!(
            "node     {} on udp {} enrolled: certificate #{} valid until unix {}",
            short(&cert.node_id()),
            node.addr,
            cert.body.serial,
            cert.body.expires_at
        ));
        nodes.push(node);
    }

    // A opens a session with B (certificates now) and they exchange a message.
    let a_identity = identities.swap_remove(0);
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let (id_a, id_b) = (a.handle.node_id(), b.handle.node_id());
    let started = Instant::now();
    a.handle
        .send_to(b.addr, Message::App(AppMessage { id: 1, data: b"hello from A".to_vec() }))
        .await
        .map_err(|_| DemoError::Stopped)?;
    let (peer, text) = wait_for(b, "message from A", limit, |e| match e {
        Event::Message { peer, message: Message::App(m), .. } => {
            Some(Ok((*peer, String::from_utf8_lossy(&m.data).into_owned())))
        }
        _ => None,
    })
    .await?;
    let session_ms = started.elapsed().as_secs_f64() * 1e3;
    if peer != id_a {
        return Err(DemoError::Failed(format!("message came from {peer}, expected {id_a}")));
    }
    say(format!(
        "session  {} -> {}: {:?} (handshake + first message in {session_ms:.1} ms)",
        short(&id_a),
        short(&id_b),
        text
    ));
    let started = Instant::now();
    b.handle
        .send(id_a, Message::App(AppMessage { id: 2, data: b"hello back from B".to_vec() }))
        .await
        .map_err(|_| DemoError::Stopped)?;
    let reply = wait_for(a, "reply from B", limit, |e| match e {
        Event::Message { message: Message::App(m), .. } => {
            Some(Ok(String::from_utf8_lossy(&m.data).into_owned()))
        }
        _ => None,
    })
    .await?;
    let reply_ms = started.elapsed().as_secs_f64() * 1e3;
    say(format!("session  {} -> {}: {:?} ({reply_ms:.2} ms)", short(&id_b), short(&id_a), reply));

    // The master seals an envelope for A with the certificate A enrolled with; it travels as an
    // ordinary message, and only A can open it (an LSN forwarding it could not).
    let a_x25519 = wait_for(&mut master, "A's certificate at the master", limit, |e| match e {
        Event::PeerEnrolled { peer, certificate } if *peer == id_a => {
            Some(Ok(certificate.body.x25519))
        }
        _ => None,
    })
    .await?;
    let envelope =
        seal_envelope(&master_identity, &network, id_a, &a_x25519, b"run inventory", &mut OsRng)
            .map_err(|e| DemoError::Failed(e.to_string()))?;
    master
        .handle
        .send(id_a, Message::Envelope(Box::new(envelope)))
        .await
        .map_err(|_| DemoError::Stopped)?;
    let identity_a = a_identity;
    let opened = wait_for(a, "envelope from the master", limit, |e| match e {
        Event::Message { message: Message::Envelope(env), .. } => Some(
            open_envelope(&identity_a, &network, env, &master_identity.verifying_key())
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .map_err(|e| format!("envelope refused: {e}")),
        ),
        _ => None,
    })
    .await?;
    say(format!(
        "envelope {} -> {}: {:?} (signed by the master, sealed to A)",
        short(&master_id),
        short(&id_a),
        opened
    ));

    let line = format!(
        "demo: nodes=2 enrolled=2 sessions=1 envelopes=1 enroll_ms={:.1} session_ms={session_ms:.1} reply_ms={reply_ms:.2}",
        enroll_ms.iter().cloned().fold(0.0, f64::max)
    );
    if args.json {
        println!(
            "{{\"nodes\":2,\"enrolled\":2,\"sessions\":1,\"enroll_ms\":[{}],\"session_ms\":{session_ms:.3},\"reply_ms\":{reply_ms:.3},\"master\":\"{master_id}\",\"node_ids\":[\"{id_a}\",\"{id_b}\"]}}",
            enroll_ms.iter().map(|m| format!("{m:.3}")).collect::<Vec<_>>().join(",")
        );
    } else {
        println!("{line}");
    }
    for node in nodes {
        let _ = node.handle.shutdown().await;
    }
    let _ = master.handle.shutdown().await;
    Ok(())
}

fn seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut s = [0u8; 32];
    OsRng.fill_bytes(&mut s);
    s
}

fn short(id: &NodeId) -> String {
    id.to_string()[..12].to_owned()
}
