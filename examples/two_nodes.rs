//! Two certified nodes on an in-memory network, run by the real async driver: the smallest
//! complete use of the library.
//!
//! Run with `cargo run --example two_nodes`.

use std::time::Duration;

use fleetmesh::{
    driver::{Clock, EndpointHandle},
    trust::{Authority, CertFlags},
    wire::{AppMessage, Message},
    Endpoint, EndpointConfig, Event, Identity,
};
use fleetmesh_memory::{LinkConfig, MemoryHub};
use rand_core::OsRng;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The master's key pair is the network's root of trust; here it just issues two certificates.
    let mut master = Authority::new(Identity::generate(&mut OsRng));
    let clock = Clock::system();
    let node = |master: &mut Authority| {
        let identity = Identity::generate(&mut OsRng);
        let cert = master.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::NONE,
            clock.now(),
            Duration::from_secs(3600),
        );
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut OsRng, &mut seed);
        Endpoint::new(EndpointConfig::new(identity, master.network_key()).certificate(cert), seed)
    };

    // A simulated network with 20 ms of latency and 1 % loss on every link.
    let hub = MemoryHub::new(42);
    hub.set_default_link(LinkConfig::new(Duration::from_millis(20), 0.01));
    let (addr_a, addr_b) = ("10.0.0.1:4000".parse()?, "10.0.0.2:4000".parse()?);
    let mut a = EndpointHandle::spawn(node(&mut master), hub.bind(addr_a)?, clock);
    let mut b = EndpointHandle::spawn(node(&mut master), hub.bind(addr_b)?, clock);

    // Sending to an address opens the session first; the message waits for it.
    a.send_to(addr_b, Message::App(AppMessage { id: 1, data: b"hello".to_vec() })).await?;
    while let Some(event) = b.next_event().await {
        if let Event::Message { peer, message: Message::App(m), .. } = event {
            println!("b got {:?} from {}", String::from_utf8_lossy(&m.data), peer);
            break;
        }
    }
    while let Some(event) = a.next_event().await {
        if let Event::Connected { peer, .. } = event {
            println!("a is connected to {peer}");
            break;
        }
    }
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}
