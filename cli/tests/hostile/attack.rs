//! The attack of `hostile.rs`: every kind of hostile input at once, while the operator's
//! traffic goes on through the admin API.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use fleetmesh::{trust::NetworkKey, Event};

use super::{legitimate_round, Captured};
use crate::common::flood::{hs1_packets, now, source_ip, spread_ip, Junk, Peer, Sources};

/// What is attacked, and the operator's view of it.
pub(crate) struct Target<'a> {
    pub(crate) master: SocketAddr,
    pub(crate) lsn: SocketAddr,
    pub(crate) nodes: Vec<SocketAddr>,
    pub(crate) network: NetworkKey,
    /// A token whose uses are all spent.
    pub(crate) spent_token: String,
    pub(crate) captured: &'a [Captured],
    pub(crate) admin: SocketAddr,
    pub(crate) admin_token: String,
    pub(crate) ids: Vec<String>,
}

/// What the attack sent and got back.
#[derive(Debug)]
pub(crate) struct Counts {
    /// Junk, mangled captures and replays: datagrams and bytes sent, and answered.
    pub(crate) junk: ((u64, u64), (u64, u64)),
    /// Messages 1 from spread sources: datagrams and bytes sent, and answered.
    pub(crate) handshakes: ((u64, u64), (u64, u64)),
    /// Fresh identities refused (of [`ENROLLMENTS`]); none may be admitted.
    pub(crate) refused: usize,
    /// TCP connections opened.
    pub(crate) tcp: usize,
    /// Rounds of legitimate messages and requests to every node during the attack.
    pub(crate) rounds: usize,
}

/// Fresh identities that try to enroll in one attack.
pub(crate) const ENROLLMENTS: usize = 300;

/// Runs the whole attack once; `wave` tells the operator's messages of each wave apart.
pub(crate) fn attack(t: &Target, wave: usize) -> Counts {
    let Target { master: master_addr, lsn, network, captured, admin, .. } = *t;
    let (node_addrs, ids, token, spent_token) = (&t.nodes, &t.ids, &t.admin_token, &t.spent_token);
    let port = master_addr.port();
    let flooding = AtomicBool::new(true);
    thread::scope(|s| {
        // Ends the TCP flood however the scope ends (a failed assertion must not hang it).
        let _stop = Stop(&flooding);
        // Junk, mangled captures and replays, from 500 sources in two /24s.
        let junk = s.spawn(|| {
            let mut rng = Junk::new(18);
            let mut from = Sources::bind((0..500).map(source_ip));
            let targets: Vec<SocketAddr> =
                std::iter::once(master_addr).chain(node_addrs.iter().copied()).collect();
            for i in 0..20_000 {
                let to = targets[i % targets.len()];
                let len = rng.below(1_400);
                let mut datagram = rng.bytes(len);
                if let Some(first) = datagram.first_mut() {
                    // Half dressed as a real packet type (0x11 to 0x15).
                    if i % 2 == 0 {
                        *first = 0x11 + (i / 2 % 5) as u8;
                    }
                }
                from.send(to, &datagram);
                if i % 32 == 0 {
                    from.drain();
                    thread::sleep(Duration::from_millis(4));
                }
            }
            for Captured { to, datagram, own } in captured {
                for len in 0..datagram.len() {
                    from.send(*to, &datagram[..len]);
                    if len % 32 == 0 {
                        from.drain();
                        thread::sleep(Duration::from_millis(4));
                    }
                }
                for flip in 0..64 {
                    let mut d = datagram.clone();
                    let bit = rng.below(d.len() * 8);
                    d[bit / 8] ^= 1 << (bit % 8);
                    from.send(*to, &d);
                    if flip % 8 == 0 {
                        let _ = own.send_to(datagram, to);
                        from.send(*to, datagram);
                    }
                }
                from.drain();
                thread::sleep(Duration::from_millis(10));
            }
            from.drain();
            (from.sent, from.answered)
        });
        // The handshake flood: 2,000 messages 1 from 1,999 /24s, five rounds (each message
        // from another source every round: 10,000 new handshakes), master and LSN.
        let handshakes = s.spawn(|| {
            let packets = hs1_packets(network, 2_000);
            let mut from = Sources::bind((0..1_999).map(spread_ip));
            for round in 0..5 {
                for (i, p) in packets.iter().enumerate() {
                    let to = if (i + round) % 5 == 0 { lsn } else { master_addr };
                    from.send(to, p);
                    if i % 50 == 0 {
                        from.drain();
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            from.drain();
            (from.sent, from.answered)
        });
        // Fresh identities that finish the handshake and ask to enroll: wrong, spent, none.
        let enrollments = s.spawn(|| {
            let mut refused = 0;
            for i in 0..ENROLLMENTS {
                let bad = format!("guess-{i}");
                let token = [Some(bad.as_str()), Some(spent_token.as_str()), None][i % 3];
                let mut peer = Peer::fresh(source_ip(1_000 + wave * 1_000 + i), network, token);
                peer.ep.connect(now(), master_addr, None);
                let outcome = peer.run_until(Duration::from_secs(5), |e| match e {
                    Event::EnrollmentFailed { .. } => Some(true),
                    Event::Enrolled { .. } => Some(false),
                    _ => None,
                });
                assert_ne!(outcome, Some(false), "a fresh identity enrolled with token {token:?}");
                refused += usize::from(outcome == Some(true));
            }
            refused
        });
        // TCP: from 8 addresses, 100 connections each (over the per-IP cap of 64).
        let tcp = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let mut rng = Junk::new(7);
            let mut held = Vec::new();
            let mut hello = b"\0\0\0\x06fmT1".to_vec();
            hello.extend_from_slice(&port.to_be_bytes());
            for i in 0..800 {
                let Some(mut sock) = tcp_from(&rt, source_ip(3_000 + i % 8), master_addr) else {
                    continue; // Refused or reset: what the caps are for.
                };
                let _ = sock.set_nonblocking(false);
                let _ = match i % 5 {
                    0 => Ok(()), // Idle: held open, says nothing.
                    1 => sock.write_all(&rng.bytes(2_000)),
                    2 => sock.write_all(b"\xff\xff\xff\xff fmT1"),
                    3 => sock.write_all(&[hello.clone(), vec![0xff, 0xff, 0xff, 0xf0]].concat()),
                    _ => {
                        let mut frames = hello.clone();
                        for _ in 0..20 {
                            let len = rng.below(600);
                            frames.extend_from_slice(&(len as u32).to_be_bytes());
                            frames.extend(rng.bytes(len));
                        }
                        sock.write_all(&frames)
                    }
                };
                held.push(sock);
            }
            while flooding.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(50));
            }
            held.len()
        });
        // The operator's traffic while it all goes on, a round every half second (each is
        // kept in the admin API's event buffer: unpaced, the rounds alone would grow it).
        let mut rounds = 0;
        while !(junk.is_finished() && handshakes.is_finished() && enrollments.is_finished()) {
            for id in ids {
                legitimate_round(admin, token, id, 100 + wave * 1_000 + rounds);
            }
            rounds += 1;
            thread::sleep(Duration::from_millis(500));
        }
        let (junk, handshakes, refused) =
            (junk.join().unwrap(), handshakes.join().unwrap(), enrollments.join().unwrap());
        flooding.store(false, Ordering::Relaxed);
        Counts { junk, handshakes, refused, tcp: tcp.join().unwrap(), rounds }
    })
}

/// Sets the flag false when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Connects to `to` over TCP from `ip`.
fn tcp_from(
    rt: &tokio::runtime::Runtime,
    ip: std::net::Ipv4Addr,
    to: SocketAddr,
) -> Option<TcpStream> {
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().ok()?;
        sock.bind(SocketAddr::from((ip, 0))).ok()?;
        let stream = tokio::time::timeout(Duration::from_secs(2), sock.connect(to)).await.ok()?;
        stream.ok()?.into_std().ok()
    })
}
