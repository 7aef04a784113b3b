//! Bulk transfers on loopback through a GSN's relay, next to the same transfers over a direct
//! path in the same run (issue 16's relay benchmark): throughput per flow, two relayed flows
//! sharing the GSN, and the round trip each path adds (a one-chunk transfer, sent until its
//! acknowledgement).
//!
//! Real nodes and a real master under the real driver, over real UDP sockets on loopback
//! addresses of five "subnets" (127.0.<s>.1, each a /24). Loopback has no NAT, so the two
//! relayed nodes sit behind the testkit's symmetric [`Nat`] (a port per destination): their
//! punches fail and their session runs through the public node the master appointed GSN, as
//! across two real symmetric NATs. The GSN's rate limits are lifted (defaults: 1 MiB/s per
//! circuit) so that the relay's own cost shows.
//!
//! `cargo bench --bench relay [-- --mib N --chunk BYTES --rounds N]`. Targets: ≥ 50 MB/s per
//! relayed flow, ≤ 1 ms added to the round trip (p50), two flows within 20 % of each other.
//! It prints its figures; nothing here asserts a time.

#![allow(missing_docs)]

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fleetmesh::{
    driver::{self, Clock},
    overlay::{
        LocalNetwork, Master, MasterConfig, Node, NodeCommand, NodeEvent, NodeState, OverlayConfig,
        RelayLimits,
    },
    trust::{Authority, CertFlags, OpenEnrollment},
    Endpoint, EndpointConfig, Identity, MemoryDiscovery, NodeId, Transport,
};
use fleetmesh_testkit::{Bind, Nat, NatKind};
use fleetmesh_udp::UdpTransport;
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;

struct Args {
    mib: usize,
    chunk: u32,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args { mib: 64, chunk: 1_100, rounds: 200 };
    let argv: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        argv.iter()
            .position(|x| x == flag)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    a.mib = value("--mib").unwrap_or(a.mib);
    a.chunk = value("--chunk").map(|c: usize| c as u32).unwrap_or(a.chunk);
    a.rounds = value("--rounds").unwrap_or(a.rounds);
    a
}

/// A running node: its id, address, state machine, commands and bulk outcomes.
struct Peer {
    id: NodeId,
    addr: SocketAddr,
    node: Arc<Mutex<Node>>,
    commands: mpsc::Sender<NodeCommand>,
    done: mpsc::UnboundedReceiver<(u64, Instant, bool)>,
}

struct World {
    authority: Authority,
    clock: Clock,
    master: SocketAddr,
    chunk: u32,
}

fn seed() -> [u8; 32] {
    let mut s = [0; 32];
    OsRng.fill_bytes(&mut s);
    s
}

impl World {
    /// A node in subnet `s` (127.0.s.1/24), behind `nat`, serving as GSN if `gsn`.
    async fn node(&mut self, subnet: u8, nat: Option<NatKind>, gsn: bool) -> Peer {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, subnet, 1));
        let udp = UdpTransport::bind(SocketAddr::new(ip, 0)).await.expect("bind");
        let addr = udp.local_addrs()[0];
        let transport: Arc<dyn Transport> = match nat {
            None => Arc::new(udp),
            Some(kind) => {
                let any = SocketAddr::new(ip, 0);
                let bind: Bind<UdpTransport> = Arc::new(move || Box::pin(UdpTransport::bind(any)));
                Arc::new(Nat::new(kind, (ip, 24), udp, bind))
            }
        };
        let identity = Identity::generate(&mut OsRng);
        let id = identity.node_id();
        let cert = self.authority.issue(
            &identity.verifying_key(),
            identity.x25519_public(),
            CertFlags::NONE,
            self.clock.now(),
            Duration::from_secs(86_400),
        );
        let config = EndpointConfig::new(identity, self.authority.network_key()).certificate(cert);
        let chunk = self.chunk;
        let overlay = OverlayConfig {
            dht: OverlayConfig::new(self.master, addr).dht.enabled(false),
            relay_limits: RelayLimits {
                circuit_rate: 1 << 40,
                circuit_burst: 1 << 40,
                member_rate: 1 << 40,
                member_burst: 1 << 40,
            },
            bulk_chunk: chunk,
            gsn,
            ..OverlayConfig::new(self.master, addr).local(LocalNetwork { addr: ip, prefix_len: 24 })
        };
        let node = Arc::new(Mutex::new(Node::new(Endpoint::new(config, seed()), overlay)));
        let discovery = Arc::new(MemoryDiscovery::new());
        let (commands, mut events, _task) =
            driver::spawn(node.clone(), transport, discovery, self.clock);
        let (tx, done) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let outcome = match e {
                    NodeEvent::BulkSent { id, .. } => (id, true),
                    NodeEvent::BulkFailed { id, error, .. } => {
                        eprintln!("transfer {id} failed: {error}");
                        (id, false)
                    }
                    _ => continue,
                };
                let _ = tx.send((outcome.0, Instant::now(), outcome.1));
            }
        });
        Peer { id, addr, node, commands, done }
    }
}

fn joined(p: &Peer) -> bool {
    let n = p.node.lock().unwrap();
    matches!(n.state(), NodeState::IsLsn | NodeState::HasLsn)
}

async fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `len` bytes from `from` to `to`; returns when it was sent and acknowledged whole.
async fn transfer(from: &mut Peer, to: (NodeId, SocketAddr), len: usize) -> (Instant, Instant) {
    let id = OsRng.next_u64();
    let data = vec![0x5a; len];
    let start = Instant::now();
    let command = NodeCommand::SendBulk { id, peer: to.0, addr: to.1, data };
    from.commands.send(command).await.expect("driver");
    loop {
        let (done, at, ok) = from.done.recv().await.expect("events");
        if done == id {
            assert!(ok, "transfer failed");
            return (start, at);
        }
    }
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn round_trips(from: &mut Peer, to: (NodeId, SocketAddr), n: usize) -> (Duration, Duration) {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, e) = transfer(from, to, 64).await;
        v.push(e - s);
    }
    (percentile(&mut v, 0.5), percentile(&mut v, 0.99))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let clock = Clock::system();
    let authority = Authority::new(Identity::generate(&mut OsRng));
    let master_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let udp = UdpTransport::bind(SocketAddr::new(master_ip, 0)).await.expect("bind");
    let master_addr = udp.local_addrs()[0];
    let config = EndpointConfig::master(authority.clone(), OpenEnrollment::default(), clock.now());
    let master = Arc::new(Mutex::new(Master::new(
        Endpoint::new(config, seed()),
        MasterConfig { dht: MasterConfig::default().dht.enabled(false), ..MasterConfig::default() },
    )));
    let (_mc, mut master_events, _mt) =
        driver::spawn(master.clone(), udp, Arc::new(MemoryDiscovery::new()), clock);
    tokio::spawn(async move { while master_events.recv().await.is_some() {} });
    let mut world = World { authority, clock, master: master_addr, chunk: args.chunk };

    let gsn = world.node(3, None, true).await;
    wait("the GSN appointed", || !master.lock().unwrap().gsns().is_empty()).await;
    let mut a = world.node(1, Some(NatKind::Symmetric), false).await;
    let b = world.node(2, Some(NatKind::Symmetric), false).await;
    let mut c = world.node(4, None, false).await;
    let d = world.node(5, None, false).await;
    wait("all joined", || [&a, &b, &c, &d].iter().all(|p| joined(p))).await;
    let (to_b, to_d) = ((b.id, b.addr), (d.id, d.addr));
    // The first transfer opens each session: through the GSN for a -> b, direct for c -> d.
    transfer(&mut a, to_b, 64).await;
    transfer(&mut c, to_d, 64).await;
    let via = a.node.lock().unwrap().relayed_via(&b.id);
    assert_eq!(via, Some(gsn.id), "a -> b is not relayed");
    assert_eq!(c.node.lock().unwrap().relayed_via(&d.id), None);

    let len = args.mib << 20;
    println!(
        "relay benchmark: loopback, {} MiB per flow, {}-byte chunks, {} round trips",
        args.mib, args.chunk, args.rounds
    );
    let (s, e) = transfer(&mut c, to_d, len).await;
    let direct = mbps(len, e - s);
    let (s, e) = transfer(&mut a, to_b, len).await;
    let relayed = mbps(len, e - s);
    let forwarded = gsn.node.lock().unwrap().gsn_stats().forwarded_bytes;
    println!("direct flow          {direct:8.1} MB/s");
    println!("relayed flow         {relayed:8.1} MB/s   (target >= 50; {:.0} % of direct; GSN forwarded {:.1} MB)", relayed / direct * 100.0, forwarded as f64 / 1e6);

    // Two relayed flows at once, one each way through the same GSN.
    let mut b = b;
    let to_a = (a.id, a.addr);
    let (ab, ba) = tokio::join!(transfer(&mut a, to_b, len), transfer(&mut b, to_a, len));
    let (x, y) = (mbps(len, ab.1 - ab.0), mbps(len, ba.1 - ba.0));
    let share = x.min(y) / x.max(y);
    println!("two relayed flows    {x:8.1} and {y:.1} MB/s (the slower at {:.0} % of the faster; target >= 80 %)", share * 100.0);

    let (dp50, dp99) = round_trips(&mut c, to_d, args.rounds).await;
    let (rp50, rp99) = round_trips(&mut a, to_b, args.rounds).await;
    println!(
        "round trip direct    p50 {:.3} ms, p99 {:.3} ms",
        dp50.as_secs_f64() * 1e3,
        dp99.as_secs_f64() * 1e3
    );
    println!(
        "round trip relayed   p50 {:.3} ms, p99 {:.3} ms",
        rp50.as_secs_f64() * 1e3,
        rp99.as_secs_f64() * 1e3
    );
    println!(
        "added by the relay   p50 {:.3} ms (target <= 1 ms)",
        (rp50.as_secs_f64() - dp50.as_secs_f64()) * 1e3
    );
}
