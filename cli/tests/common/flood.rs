//! Hostile traffic for the flood test (`cli/tests/hostile.rs`) and its benchmark
//! (`cli/benches/handshake_flood.rs`, which includes this file): real distinct sources on
//! loopback (any 127.x.y.z can be bound), a sans-IO endpoint driven over a socket of its own
//! with every datagram recorded (the "captures"), spoofed handshake messages 1, junk, and a
//! process's resident memory.

use std::{
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use fleetmesh::{trust::NetworkKey, Endpoint, EndpointConfig, Event, Identity, Timestamp};
use rand_core::{OsRng, RngCore};

/// Protocol time from the wall clock (certificates are checked against it).
pub fn now() -> Timestamp {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    Timestamp::from_micros(u64::try_from(since.as_micros()).expect("fits"))
}

/// A small seeded generator for junk (xorshift64*): reproducible floods without a dependency.
pub struct Junk(u64);

impl Junk {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Junk {
        Junk(seed | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Source address number `i`: 127.(16 + i / 62,500).(i / 250 % 250 + 1).(i % 250 + 1), so
/// consecutive sources fill a /24 with 250 addresses before moving to the next.
pub fn source_ip(i: usize) -> Ipv4Addr {
    let (a, b, c) = (16 + i / 62_500, (i / 250) % 250 + 1, i % 250 + 1);
    Ipv4Addr::new(127, a as u8, b as u8, c as u8)
}

/// `n` sources spread one per /24 (127.(16+k/250).(k%250+1).9): a flood that no per-prefix
/// limit catches, as from spoofed sources all over the internet.
pub fn spread_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, (100 + k / 250) as u8, (k % 250 + 1) as u8, 9)
}

/// Non-blocking UDP sockets on distinct loopback addresses; what they send and what comes back
/// to them is counted (bytes out/in to unvalidated sources).
pub struct Sources {
    socks: Vec<UdpSocket>,
    next: usize,
    /// Datagrams and bytes sent.
    pub sent: (u64, u64),
    /// Datagrams and bytes received back.
    pub answered: (u64, u64),
}

impl Sources {
    /// One socket on each of `ips`.
    pub fn bind(ips: impl IntoIterator<Item = Ipv4Addr>) -> Sources {
        let socks = ips
            .into_iter()
            .map(|ip| {
                let sock = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
                sock.set_nonblocking(true).unwrap();
                sock
            })
            .collect();
        Sources { socks, next: 0, sent: (0, 0), answered: (0, 0) }
    }

    /// Sends `datagram` to `to` from the next source in turn.
    pub fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        let sock = &self.socks[self.next % self.socks.len()];
        self.next += 1;
        // A full socket buffer drops the datagram, as the network would.
        if sock.send_to(datagram, to).is_ok() {
            self.sent.0 += 1;
            self.sent.1 += datagram.len() as u64;
        }
    }

    /// Reads and counts whatever came back, without waiting.
    pub fn drain(&mut self) {
        let mut buf = [0u8; 65_536];
        for sock in &self.socks {
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                self.answered.0 += 1;
                self.answered.1 += n as u64;
            }
        }
    }
}

/// A node of our own, driven by hand over a socket on `ip`: a fresh identity (enrolling) or a
/// certified one. Every datagram both ways is kept.
pub struct Peer {
    /// The endpoint.
    pub ep: Endpoint,
    sock: UdpSocket,
    /// Datagrams sent, in order.
    pub sent: Vec<Vec<u8>>,
    /// Datagrams received, in order.
    pub received: Vec<Vec<u8>>,
}

impl Peer {
    /// A peer with `config` on a socket bound to `ip`.
    pub fn bind(ip: Ipv4Addr, config: EndpointConfig) -> Peer {
        let sock = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        Peer { ep: Endpoint::new(config, seed), sock, sent: Vec::new(), received: Vec::new() }
    }

    /// A fresh identity of `network` asking to enroll with `token` (none: no token).
    pub fn fresh(ip: Ipv4Addr, network: NetworkKey, token: Option<&str>) -> Peer {
        let mut config = EndpointConfig::new(Identity::generate(&mut OsRng), network);
        if let Some(token) = token {
            config = config.enroll_token(token);
        }
        Peer::bind(ip, config)
    }

    /// The socket's address.
    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// Runs the endpoint (sends, receives, timers) until `done` picks an event, or `limit`
    /// passes (`None`).
    pub fn run_until<T>(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 65_536];
        loop {
            while let Some(t) = self.ep.poll_transmit() {
                // Loopback does not lose datagrams unless a buffer is full: then it is lost.
                let _ = self.sock.send_to(&t.payload, t.dst);
                self.sent.push(t.payload);
            }
            while let Some(event) = self.ep.poll_event() {
                if let Some(found) = done(&event) {
                    return Some(found);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let timer = self.ep.poll_timeout().map(|t| t.saturating_since(now()));
            let wait = timer.unwrap_or(left).min(left).max(Duration::from_millis(1));
            self.sock.set_read_timeout(Some(wait)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, src)) => {
                    self.received.push(buf[..n].to_vec());
                    self.ep.handle_datagram(now(), src, &buf[..n]);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("recv: {e}"),
            }
            self.ep.handle_timeout(now());
        }
    }

    /// A second handle on this peer's socket: replays from the original source.
    pub fn socket(&self) -> UdpSocket {
        self.sock.try_clone().expect("clone a socket")
    }
}

/// `n` handshake messages 1 from fresh identities of `network`, each as a spoofing flooder
/// would precompute them (padded to the full size: a short one is not even answered).
pub fn hs1_packets(network: NetworkKey, n: usize) -> Vec<Vec<u8>> {
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    (0..n)
        .map(|_| {
            let config = EndpointConfig::new(Identity::generate(&mut OsRng), network);
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            let mut ep = Endpoint::new(config, seed);
            ep.connect(now(), to, None);
            ep.poll_transmit().expect("message 1").payload
        })
        .collect()
}

/// A process's resident set size in KiB (`VmRSS` in /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
