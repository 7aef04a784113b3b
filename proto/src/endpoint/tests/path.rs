//! Path selection (`path.rs`) and reach probes, sans-IO: two endpoints and a tiny path-aware
//! network in virtual time, where UDP can be dropped per receiving host.

use std::{net::SocketAddr, time::Duration};

use crate::{
    endpoint::{Endpoint, Event},
    harness::{seed, Fixture, T0},
    wire::{AppMessage, Message},
    Path, Timestamp,
};

const SECOND: Duration = Duration::from_secs(1);
const LATENCY: Duration = Duration::from_millis(10);

struct Two {
    now: Timestamp,
    ep: [Endpoint; 2],
    addr: [SocketAddr; 2],
    /// UDP arriving at host i is dropped.
    udp_in_blocked: [bool; 2],
    in_flight: Vec<(Timestamp, usize, Path, Vec<u8>)>,
    events: [Vec<Event>; 2],
    sent: [Vec<(Path, usize)>; 2],
}

impl Two {
    fn new(fallback: Option<Duration>, probe_every: Duration) -> Two {
        let mut fx = Fixture::new(9);
        let mk = |fx: &mut Fixture, n| {
            let cfg = fx.node().tcp_fallback(fallback).udp_probe_interval(probe_every);
            Endpoint::new(cfg, seed(n))
        };
        let ep = [mk(&mut fx, 1), mk(&mut fx, 2)];
        let addr = ["10.0.0.1:4000".parse().unwrap(), "10.0.0.2:4000".parse().unwrap()];
        Two {
            now: T0,
            ep,
            addr,
            udp_in_blocked: [false; 2],
            in_flight: Vec::new(),
            events: Default::default(),
            sent: Default::default(),
        }
    }

    fn drain(&mut self, i: usize) {
        while let Some(t) = self.ep[i].poll_transmit() {
            let to = usize::from(t.dst == self.addr[1]);
            self.sent[i].push((t.path, t.payload.len()));
            if !(t.path == Path::Udp && self.udp_in_blocked[to]) {
                self.in_flight.push((self.now + LATENCY, to, t.path, t.payload));
            }
        }
        while let Some(e) = self.ep[i].poll_event() {
            self.events[i].push(e);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        loop {
            self.in_flight.sort_by_key(|(t, ..)| *t);
            let packet = self.in_flight.first().map(|(t, ..)| *t);
            let timer = self.ep.iter().filter_map(|e| e.poll_timeout()).min();
            let Some(next) = packet.into_iter().chain(timer).min().filter(|t| *t <= limit) else {
                break;
            };
            self.now = self.now.max(next);
            if packet == Some(next) {
                let (_, to, path, bytes) = self.in_flight.remove(0);
                let src = self.addr[1 - to];
                self.ep[to].handle_datagram_on(self.now, src, path, &bytes);
                self.drain(to);
            } else {
                for i in 0..2 {
                    if self.ep[i].poll_timeout().is_some_and(|t| t <= self.now) {
                        self.ep[i].handle_timeout(self.now);
                        self.drain(i);
                    }
                }
            }
        }
        self.now = limit;
    }

    fn connect(&mut self) {
        let to = self.addr[1];
        self.ep[0].connect(self.now, to, None);
        self.drain(0);
    }

    fn path_changes(&self, i: usize) -> Vec<Path> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::PathChanged { path, .. } => Some(*path),
                _ => None,
            })
            .collect()
    }

    fn paths(&self) -> [Option<Path>; 2] {
        [self.ep[0].peer_path(&self.ep[1].node_id()), self.ep[1].peer_path(&self.ep[0].node_id())]
    }
}

#[test]
fn a_handshake_without_udp_answers_falls_back_to_tcp_after_the_delay() {
    let mut net = Two::new(Some(SECOND), 30 * SECOND);
    // The responder's answers over UDP never arrive: one-way UDP.
    net.udp_in_blocked[0] = true;
    net.connect();
    net.run_for(SECOND - Duration::from_millis(1));
    assert_eq!(net.paths(), [None, None]);
    assert!(net.sent[0].iter().all(|(p, _)| *p == Path::Udp));
    net.run_for(SECOND);
    assert_eq!(net.paths(), [Some(Path::Tcp), Some(Path::Tcp)]);
    assert_eq!(net.path_changes(0), vec![Path::Tcp]);
    // Data flows over TCP both ways.
    let (a, b) = (net.ep[0].node_id(), net.ep[1].node_id());
    let msg = Message::App(AppMessage { id: 1, data: b"x".to_vec() });
    net.ep[0].send(net.now, &b, &msg).unwrap();
    net.ep[1].send(net.now, &a, &msg).unwrap();
    net.drain(0);
    net.drain(1);
    net.run_for(SECOND);
    for i in 0..2 {
        assert!(net.events[i].iter().any(|e| matches!(e, Event::Message { .. })), "{i}");
    }
}

#[test]
fn without_fallback_a_handshake_over_blocked_udp_fails_and_never_uses_tcp() {
    let mut net = Two::new(None, 30 * SECOND);
    net.udp_in_blocked = [true, true];
    net.connect();
    net.run_for(60 * SECOND);
    assert!(net.events[0].iter().any(|e| matches!(e, Event::ConnectFailed { .. })));
    assert!(net.sent[0].iter().all(|(p, _)| *p == Path::Udp));
}

#[test]
fn a_session_on_tcp_moves_back_to_udp_once_probes_get_through() {
    let mut net = Two::new(Some(SECOND), 5 * SECOND);
    net.udp_in_blocked = [true, true];
    net.connect();
    net.run_for(3 * SECOND);
    assert_eq!(net.paths(), [Some(Path::Tcp), Some(Path::Tcp)]);
    // Probes over UDP while it is blocked change nothing.
    net.run_for(6 * SECOND);
    assert_eq!(net.paths(), [Some(Path::Tcp), Some(Path::Tcp)]);
    assert!(net.sent[0].iter().any(|(p, n)| *p == Path::Udp && *n == crate::secure::DATA_OVERHEAD));
    net.udp_in_blocked = [false, false];
    // Within a probe interval and a round trip the initiator is back on UDP...
    net.run_for(5 * SECOND + 2 * LATENCY);
    assert_eq!(net.paths()[0], Some(Path::Udp));
    assert_eq!(net.path_changes(0), vec![Path::Tcp, Path::Udp]);
    // ...and its next data moves the responder.
    let b = net.ep[1].node_id();
    let msg = Message::App(AppMessage { id: 2, data: b"y".to_vec() });
    net.ep[0].send(net.now, &b, &msg).unwrap();
    net.drain(0);
    net.run_for(SECOND);
    assert_eq!(net.paths(), [Some(Path::Udp), Some(Path::Udp)]);
}

#[test]
fn a_reach_probe_is_reported_with_whether_a_session_could_have_let_it_in() {
    let mut net = Two::new(Some(SECOND), 30 * SECOND);
    let to = net.addr[1];
    net.ep[0].send_reach_probe(to, 42);
    net.drain(0);
    assert_eq!(net.sent[0], vec![(Path::Udp, 9)]);
    net.run_for(SECOND);
    let probes = |net: &Two| -> Vec<(u64, bool)> {
        net.events[1]
            .iter()
            .filter_map(|e| match e {
                Event::ReachProbe { nonce, session, path: Path::Udp, .. } => {
                    Some((*nonce, *session))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(probes(&net), vec![(42, false)]);
    // Nothing answers a probe.
    assert_eq!(net.sent[1], vec![]);
    net.connect();
    net.run_for(SECOND);
    net.ep[0].send_reach_probe(to, 43);
    net.drain(0);
    net.run_for(SECOND);
    assert_eq!(probes(&net), vec![(42, false), (43, true)]);
}

#[test]
fn an_established_udp_session_moves_to_tcp_when_its_requests_go_unanswered() {
    let mut net = Two::new(Some(SECOND), 5 * SECOND);
    net.connect();
    net.run_for(SECOND);
    assert_eq!(net.paths(), [Some(Path::Udp), Some(Path::Udp)]);
    let (a, b) = (net.ep[0].node_id(), net.ep[1].node_id());
    net.udp_in_blocked = [true, true];
    // One-way messages never count, however many go unanswered.
    for id in 0..20 {
        let msg = Message::App(AppMessage { id, data: vec![] });
        net.ep[0].send(net.now, &b, &msg).unwrap();
        net.drain(0);
        net.run_for(SECOND / 5);
    }
    assert_eq!(net.paths(), [Some(Path::Udp), Some(Path::Udp)]);
    // Requests: the third unanswered one, a second or more after the first, goes over TCP.
    for seq in 1..=3 {
        net.ep[0].send(net.now, &b, &Message::Ping(crate::wire::Ping { seq })).unwrap();
        net.drain(0);
        net.run_for(SECOND / 2);
    }
    assert_eq!(net.paths()[0], Some(Path::Tcp));
    assert_eq!(net.path_changes(0), vec![Path::Tcp]);
    // The responder got that request over TCP and follows; its answers come back.
    assert_eq!(net.paths()[1], Some(Path::Tcp));
    let pings: usize = net.events[1]
        .iter()
        .filter(|e| matches!(e, Event::Message { message: Message::Ping(_), .. }))
        .count();
    assert_eq!(pings, 1);
    net.ep[1].send(net.now, &a, &Message::Pong(crate::wire::Pong { seq: 3, lsn: None })).unwrap();
    net.drain(1);
    net.run_for(SECOND);
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::Message { message: Message::Pong(_), .. })));
    // When UDP works again the probes bring both back.
    net.udp_in_blocked = [false, false];
    net.run_for(6 * SECOND);
    assert_eq!(net.paths()[0], Some(Path::Udp));
}

#[test]
fn answered_requests_keep_a_udp_session_on_udp() {
    let mut net = Two::new(Some(SECOND), 5 * SECOND);
    net.connect();
    net.run_for(SECOND);
    let (a, b) = (net.ep[0].node_id(), net.ep[1].node_id());
    for seq in 1..=10 {
        net.ep[0].send(net.now, &b, &Message::Ping(crate::wire::Ping { seq })).unwrap();
        net.drain(0);
        net.run_for(SECOND / 4);
        net.ep[1].send(net.now, &a, &Message::Pong(crate::wire::Pong { seq, lsn: None })).unwrap();
        net.drain(1);
        net.run_for(SECOND / 4);
    }
    assert_eq!(net.paths(), [Some(Path::Udp), Some(Path::Udp)]);
    assert!(net.path_changes(0).is_empty());
}
