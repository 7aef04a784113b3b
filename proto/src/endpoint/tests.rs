//! Link-layer tests on the virtual-time harness.

use std::time::Duration;

use super::*;
use crate::{
    harness::{Fixture, Net, Verdict, DAY, T0},
    secure::HandshakeError,
    trust::CertError,
    wire::{AppMessage, Ping},
};

const SECOND: Duration = Duration::from_secs(1);

fn app(id: u64) -> Message {
    Message::App(AppMessage { id, data: format!("payload {id}").into_bytes() })
}

fn connected(net: &Net, a: usize, b: usize) -> bool {
    let bid = net.nodes[b].endpoint.node_id();
    let aid = net.nodes[a].endpoint.node_id();
    net.nodes[a].endpoint.is_connected(&bid) && net.nodes[b].endpoint.is_connected(&aid)
}

fn received(events: &[Event]) -> Vec<Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// What node `i` rejected since `before` (a snapshot of its counters).
fn rejected_since(net: &Net, i: usize, before: &Rejections) -> Rejections {
    net.nodes[i].endpoint.stats().rejected.since(before)
}

/// Junk is counted, never reported one event per datagram.
fn no_junk_events(events: &[Event]) -> bool {
    events.iter().all(|e| matches!(e, Event::Message { .. }))
}

/// Two certified nodes, connected.
fn pair(seed: u64) -> (Net, Fixture) {
    let mut fx = Fixture::new(seed);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node(), 2);
    let addr_b = net.addr(b);
    net.with(a, |e, now| e.connect(now, addr_b, None));
    net.run_until(5 * SECOND, |n| connected(n, a, b));
    (net, fx)
}

#[test]
fn two_nodes_connect_and_exchange_messages() {
    let (mut net, _) = pair(1);
    let (a, b) = (0, 1);
    let ida = net.nodes[a].endpoint.node_id();
    let idb = net.nodes[b].endpoint.node_id();
    let ev_a = net.events(a);
    assert!(ev_a
        .iter()
        .any(|e| matches!(e, Event::Connected { peer, initiator: true, .. } if *peer == idb)));
    let ev_b = net.events(b);
    assert!(ev_b
        .iter()
        .any(|e| matches!(e, Event::Connected { peer, initiator: false, .. } if *peer == ida)));

    net.with(a, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.with(b, |e, now| e.send(now, &ida, &app(2))).unwrap();
    net.run_for(SECOND);
    assert_eq!(received(&net.events(b)), vec![app(1)]);
    assert_eq!(received(&net.events(a)), vec![app(2)]);
    assert_eq!(net.nodes[a].endpoint.peer_certificate(&idb).unwrap().node_id(), idb);
}

#[test]
fn messages_queued_behind_a_handshake_are_delivered() {
    let mut fx = Fixture::new(2);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node(), 2);
    let addr_b = net.addr(b);
    net.with(a, |e, now| {
        for i in 0..3 {
            e.send_to(now, addr_b, app(i)).unwrap();
        }
    });
    net.run_for(2 * SECOND);
    assert_eq!(received(&net.events(b)), vec![app(0), app(1), app(2)]);
}

#[test]
fn tampered_ciphertext_is_rejected_and_the_session_survives() {
    let (mut net, _) = pair(3);
    let idb = net.nodes[1].endpoint.node_id();
    net.events(1);
    let before = net.nodes[1].endpoint.stats().rejected;
    net.set_filter(|_, _, bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        Verdict::Deliver
    });
    net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.run_for(SECOND);
    net.clear_filter();
    net.with(0, |e, now| e.send(now, &idb, &app(2))).unwrap();
    net.run_for(SECOND);
    let ev = net.events(1);
    let rejected = rejected_since(&net, 1, &before);
    assert_eq!((rejected.decrypt, rejected.total()), (1, 1), "{rejected}");
    assert!(no_junk_events(&ev), "{ev:?}");
    assert_eq!(received(&ev), vec![app(2)]);
}

#[test]
fn replayed_datagram_is_rejected_and_the_session_survives() {
    let (mut net, _) = pair(4);
    let idb = net.nodes[1].endpoint.node_id();
    let (addr_a, addr_b) = (net.addr(0), net.addr(1));
    net.events(1);
    let before = net.nodes[1].endpoint.stats().rejected;
    net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.run_for(SECOND);
    let (_, _, _, captured) =
        net.log.iter().rev().find(|(_, s, d, _)| *s == addr_a && *d == addr_b).unwrap().clone();
    net.inject(addr_a, addr_b, captured);
    net.run_for(SECOND);
    net.with(0, |e, now| e.send(now, &idb, &app(2))).unwrap();
    net.run_for(SECOND);
    let ev = net.events(1);
    let rejected = rejected_since(&net, 1, &before);
    assert_eq!((rejected.replay, rejected.total()), (1, 1), "{rejected}");
    assert!(no_junk_events(&ev), "{ev:?}");
    assert_eq!(received(&ev), vec![app(1), app(2)]);
}

#[test]
fn reordered_datagrams_within_the_window_are_all_accepted() {
    let (mut net, _) = pair(5);
    let idb = net.nodes[1].endpoint.node_id();
    net.events(1);
    let before = net.nodes[1].endpoint.stats().rejected;
    // Capture ten datagrams instead of delivering them, then deliver them in reverse order.
    let held = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let h = held.clone();
    net.set_filter(move |s, d, bytes| {
        h.borrow_mut().push((s, d, bytes.clone()));
        Verdict::Drop
    });
    net.with(0, |e, now| (0..10).try_for_each(|i| e.send(now, &idb, &app(i)))).unwrap();
    net.clear_filter();
    for (s, d, bytes) in held.borrow().iter().rev() {
        net.inject(*s, *d, bytes.clone());
    }
    net.run_for(SECOND);
    let ev = net.events(1);
    assert_eq!(rejected_since(&net, 1, &before).total(), 0);
    let got = received(&ev);
    assert_eq!(got.len(), 10);
    assert_eq!(got[0], app(9));
    assert_eq!(got[9], app(0));
}

#[test]
fn a_node_of_another_network_is_refused_on_both_sides() {
    let mut fx = Fixture::new(6);
    let mut foreign = Fixture::new(60);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    // A node of network B that also believes in network B.
    let x = net.add(foreign.node(), 2);
    let addr_a = net.addr(a);
    net.with(x, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    // X sees A's certificate belongs to another network.
    let ev_x = net.events(x);
    assert!(
        ev_x.iter().any(|e| matches!(
            e,
            Event::ConnectFailed {
                error: HandshakeError::Certificate(CertError::WrongNetwork(_)),
                ..
            }
        )),
        "{ev_x:?}"
    );

    // A node holding network B's certificate but configured for network A.
    let id = foreign.identity();
    let cert = foreign.certify(&id, DAY);
    let y = net.add(EndpointConfig::new(id, fx.authority.network_key()).certificate(cert), 3);
    net.with(y, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    let ev_a = net.events(a);
    assert!(
        ev_a.iter().any(|e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::Certificate(CertError::WrongNetwork(_)),
                ..
            }
        )),
        "{ev_a:?}"
    );
    assert!(!ev_a.iter().any(|e| matches!(e, Event::Connected { .. })));
    assert_eq!(net.nodes[a].endpoint.peers().count(), 0);
}

#[test]
fn expired_certificate_is_refused() {
    let mut fx = Fixture::new(7);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let id = fx.identity();
    let short = fx.certify(&id, Duration::from_secs(60));
    let b = net.add(EndpointConfig::new(id, fx.authority.network_key()).certificate(short), 2);
    net.run_for(Duration::from_secs(120));
    let addr_a = net.addr(a);
    net.with(b, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    let ev_a = net.events(a);
    assert!(
        ev_a.iter().any(|e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::Certificate(CertError::Expired { .. }),
                ..
            }
        )),
        "{ev_a:?}"
    );
}

#[test]
fn established_session_ends_when_the_peer_certificate_expires() {
    let mut fx = Fixture::new(17);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let id = fx.identity();
    let short = fx.certify(&id, Duration::from_secs(60));
    let b = net.add(EndpointConfig::new(id, fx.authority.network_key()).certificate(short), 2);
    let addr_b = net.addr(b);
    net.with(a, |e, now| e.connect(now, addr_b, None));
    net.run_until(5 * SECOND, |n| connected(n, a, b));
    net.run_for(Duration::from_secs(60));
    let idb = net.nodes[b].endpoint.node_id();
    assert!(net
        .events(a)
        .contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Expired }));
}

#[test]
fn revoked_certificate_is_refused_and_live_sessions_close() {
    let (mut net, fx) = pair(8);
    let ida = net.nodes[0].endpoint.node_id();
    let idb = net.nodes[1].endpoint.node_id();
    let list = fx.authority.revocation_list(1, vec![idb], T0);
    net.with(0, |e, _| e.update_revocations(list.clone())).unwrap();
    let ev = net.events(0);
    assert!(ev.contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Revoked }));
    assert!(ev.contains(&Event::RevocationsUpdated { version: 1 }));
    assert!(!net.nodes[0].endpoint.is_connected(&idb));

    // B tries again: refused.
    net.with(1, |e, _| e.close(&ida));
    let addr_a = net.addr(0);
    net.with(1, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    let ev = net.events(0);
    assert!(
        ev.iter().any(|e| matches!(e, Event::HandshakeRejected { error: HandshakeError::Certificate(CertError::Revoked(id)), .. } if *id == idb)),
        "{ev:?}"
    );
}

#[test]
fn revocation_list_sent_as_a_message_is_adopted() {
    let (mut net, mut fx) = pair(18);
    let idb = net.nodes[1].endpoint.node_id();
    let c = net.add(fx.node(), 3);
    let victim = net.nodes[c].endpoint.node_id();
    let addr_c = net.addr(c);
    net.with(1, |e, now| e.connect(now, addr_c, None));
    net.run_until(5 * SECOND, |n| connected(n, 1, c));
    // Anyone may pass the list on: the master's signature is what makes it count.
    let list = fx.authority.revocation_list(4, vec![victim], T0);
    net.with(0, |e, now| e.send(now, &idb, &Message::Revocations(Box::new(list)))).unwrap();
    net.run_for(SECOND);
    assert_eq!(net.nodes[1].endpoint.trust().revocation_version(), 4);
    assert!(!net.nodes[1].endpoint.is_connected(&victim));
}

#[test]
fn a_stolen_certificate_without_its_key_is_refused() {
    let mut fx = Fixture::new(9);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    // Mallory presents the victim's certificate with her own keys.
    let victim = fx.identity();
    let victim_cert = fx.certify(&victim, DAY);
    let mallory = fx.identity();
    let m = net
        .add(EndpointConfig::new(mallory, fx.authority.network_key()).certificate(victim_cert), 2);
    let addr_a = net.addr(a);
    net.with(m, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    let ev = net.events(a);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::Certificate(CertError::KeyMismatch),
                ..
            }
        )),
        "{ev:?}"
    );
    assert!(!net.nodes[a].endpoint.is_connected(&victim.node_id()));
}

#[test]
fn a_forged_certificate_is_refused() {
    let mut fx = Fixture::new(10);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let mallory = fx.identity();
    let mut cert = fx.certify(&mallory, DAY);
    cert.body.flags = crate::trust::CertFlags::GSN_ELIGIBLE; // privilege escalation attempt
    let m = net.add(EndpointConfig::new(mallory, fx.authority.network_key()).certificate(cert), 2);
    let addr_a = net.addr(a);
    net.with(m, |e, now| e.connect(now, addr_a, None));
    net.run_for(2 * SECOND);
    let ev = net.events(a);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::HandshakeRejected {
                error: HandshakeError::Certificate(CertError::BadSignature),
                ..
            }
        )),
        "{ev:?}"
    );
}

#[test]
fn a_data_packet_aimed_at_another_session_fails_authentication() {
    let (mut net, mut fx) = pair(11);
    let c = net.add(fx.node(), 3);
    let (addr_a, addr_c) = (net.addr(0), net.addr(c));
    net.with(c, |e, now| e.connect(now, addr_a, None));
    net.run_until(5 * SECOND, |n| connected(n, 0, c));
    let ida = net.nodes[0].endpoint.node_id();
    let idb = net.nodes[1].endpoint.node_id();
    net.events(0);
    let before = net.nodes[0].endpoint.stats().rejected;
    // C seals a packet on its own session with A; we catch it and rewrite the receiver index to
    // name A's session with B, as if C tried to speak as B.
    let b_index = net.nodes[0].endpoint.by_peer[&idb];
    let caught = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = caught.clone();
    net.set_filter(move |_, _, bytes| {
        *slot.borrow_mut() = Some(bytes.clone());
        Verdict::Drop
    });
    net.with(c, |e, now| e.send(now, &ida, &app(1))).unwrap();
    net.clear_filter();
    let mut packet = caught.borrow_mut().take().unwrap();
    packet[1..5].copy_from_slice(&b_index.to_be_bytes());
    // A counter that session has not seen, so the replay filter lets it reach decryption.
    packet[5..13].copy_from_slice(&1000u64.to_be_bytes());
    net.inject(addr_c, addr_a, packet);
    net.run_for(SECOND);
    let ev = net.events(0);
    let rejected = rejected_since(&net, 0, &before);
    assert_eq!((rejected.decrypt, rejected.total()), (1, 1), "{rejected}");
    assert!(ev.is_empty(), "{ev:?}");
    assert!(net.nodes[0].endpoint.is_connected(&idb));
}

#[test]
fn garbage_and_unknown_sessions_are_rejected_without_harm() {
    let (mut net, _) = pair(12);
    let (addr_a, addr_b) = (net.addr(0), net.addr(1));
    let idb = net.nodes[1].endpoint.node_id();
    net.events(1);
    let before = net.nodes[1].endpoint.stats().rejected;
    net.inject(addr_a, addr_b, vec![]);
    net.inject(
        addr_a,
        addr_b,
        vec![
            0x14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
            14, 15, 16,
        ],
    );
    net.inject(addr_a, addr_b, vec![0x13, 0, 0, 0, 9, 1, 2, 3]);
    net.inject(addr_a, addr_b, vec![0x11, 1, 2, 3, 4, 5]);
    net.run_for(SECOND);
    net.with(0, |e, now| e.send(now, &idb, &app(7))).unwrap();
    net.run_for(SECOND);
    let ev = net.events(1);
    let rejected = rejected_since(&net, 1, &before);
    assert_eq!(
        rejected.to_string(),
        "1 malformed, 1 unknown_session, 1 unexpected_handshake, 1 short_handshake"
    );
    assert!(no_junk_events(&ev), "{ev:?}");
    assert_eq!(received(&ev), vec![app(7)]);
}

#[test]
fn lost_handshake_messages_are_retransmitted() {
    for lose in [0x11u8, 0x12, 0x13] {
        let mut fx = Fixture::new(13);
        let mut net = Net::new();
        let a = net.add(fx.node(), 1);
        let b = net.add(fx.node(), 2);
        let mut dropped = false;
        net.set_filter(move |_, _, bytes| {
            if bytes[0] == lose && !dropped {
                dropped = true;
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
        let addr_b = net.addr(b);
        net.with(a, |e, now| e.send_to(now, addr_b, app(1))).unwrap();
        net.run_for(5 * SECOND);
        assert!(connected(&net, a, b), "lost {lose:#x}");
        // A message sent right after message 3 is lost with it when 0x13 is dropped; one sent
        // after confirmation must arrive.
        let ida = net.nodes[a].endpoint.node_id();
        let idb = net.nodes[b].endpoint.node_id();
        net.with(a, |e, now| e.send(now, &idb, &app(2))).unwrap();
        net.run_for(SECOND);
        assert!(received(&net.events(b)).contains(&app(2)), "lost {lose:#x}");
        assert!(net.nodes[b].endpoint.is_connected(&ida));
    }
}

#[test]
fn unanswered_handshake_times_out_and_returns_queued_messages() {
    let mut fx = Fixture::new(14);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let nowhere: std::net::SocketAddr = "10.9.9.9:4000".parse().unwrap();
    net.with(a, |e, now| e.send_to(now, nowhere, app(1))).unwrap();
    net.run_for(Duration::from_secs(11));
    let ev = net.events(a);
    assert_eq!(
        ev,
        vec![Event::ConnectFailed {
            addr: nowhere,
            error: HandshakeError::Timeout,
            unsent: vec![app(1)]
        }]
    );
    // Retransmissions back off: 500 ms, 1 s, 2 s, 4 s after the first attempt.
    assert_eq!(net.nodes[a].endpoint.stats().datagrams_sent, 5);
}

#[test]
fn idle_sessions_close() {
    let (mut net, _) = pair(15);
    let idb = net.nodes[1].endpoint.node_id();
    net.events(0);
    net.run_for(Duration::from_secs(181));
    assert!(net
        .events(0)
        .contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Idle }));
    assert_eq!(net.nodes[0].endpoint.peers().count(), 0);
}

#[test]
fn oversized_messages_are_refused_at_the_sender() {
    let (mut net, _) = pair(16);
    let idb = net.nodes[1].endpoint.node_id();
    let big = Message::App(AppMessage { id: 1, data: vec![0; wire::MAX_FRAME_LEN] });
    let err = net.with(0, |e, now| e.send(now, &idb, &big)).unwrap_err();
    assert!(matches!(err, SendError::Encode(WireError::TooLarge { .. })));
    let err = net
        .with(0, |e, now| e.send(now, &NodeId::ZERO, &Message::Ping(Ping { seq: 1 })))
        .unwrap_err();
    assert_eq!(err, SendError::NoSession(NodeId::ZERO));
}

#[test]
fn same_seeds_give_the_same_transcript() {
    let transcript = |seed| {
        let (mut net, _) = pair(seed);
        let idb = net.nodes[1].endpoint.node_id();
        net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
        net.run_for(SECOND);
        net.log
            .iter()
            .map(|(t, s, d, b)| format!("{t:?} {s} {d} {}", hex::encode(b)))
            .collect::<Vec<_>>()
    };
    assert_eq!(transcript(30), transcript(30));
    assert_ne!(transcript(30), transcript(31));
}

mod enrollment;
mod flood;
mod linger;
mod path;
mod stale;

#[test]
fn a_second_session_the_initiator_never_confirmed_does_not_take_the_responders_traffic() {
    // Both sides dial at once. B's confirmations of A's handshake are all lost, so A gives up
    // on that session; B, which completed it last, used to send everything there, and A
    // dropped it all (a live child was reported lost this way).
    let mut fx = Fixture::new(21);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node(), 2);
    let (addr_a, addr_b) = (net.addr(a), net.addr(b));
    let (ida, idb) = (net.nodes[a].endpoint.node_id(), net.nodes[b].endpoint.node_id());
    // B's data packets to A are lost (its confirmations are data); its handshakes get through.
    net.set_filter(move |src, _, bytes| {
        if src == addr_b && bytes.first() == Some(&0x14) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.with(a, |e, now| e.connect(now, addr_b, Some(idb)));
    net.with(b, |e, now| e.connect(now, addr_a, Some(ida)));
    // Past A's wait for the confirmation of its own handshake.
    net.run_for(12 * SECOND);
    net.clear_filter();
    net.events(a);
    net.with(b, |e, now| e.send(now, &ida, &app(7))).unwrap();
    net.with(a, |e, now| e.send(now, &idb, &app(8))).unwrap();
    net.run_for(SECOND);
    assert_eq!(received(&net.events(a)), vec![app(7)], "B's message was lost");
    assert_eq!(received(&net.events(b)), vec![app(8)]);
}

#[test]
fn a_hastened_handshake_sends_its_first_message_again_at_once() {
    // A caller whose own retries say the session is urgent (a new LSN registering) need not
    // wait out the doubling backoff after a lost message 1.
    let mut fx = Fixture::new(41);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node(), 2);
    let addr_b = net.addr(b);
    let mut dropped = false;
    net.set_filter(move |_, _, _| {
        if dropped {
            return Verdict::Deliver;
        }
        dropped = true;
        Verdict::Drop
    });
    assert!(!net.with(a, |e, _| e.hasten(addr_b)), "no handshake under way yet");
    net.with(a, |e, now| e.connect(now, addr_b, None));
    net.run_for(Duration::from_millis(100));
    assert!(!connected(&net, a, b));
    assert!(net.with(a, |e, _| e.hasten(addr_b)));
    // Message 1 would go again only at 500 ms.
    let hastened = net.now;
    net.run_until(5 * SECOND, |n| connected(n, a, b));
    let took = net.now.saturating_since(hastened);
    assert!(took < Duration::from_millis(100), "connected {took:?} after the hastened try");
}

#[test]
fn port_prediction_reaches_a_peer_at_a_port_next_to_the_one_dialled() {
    let mut fx = Fixture::new(41);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node(), 2);
    let (idb, real) = (net.nodes[b].endpoint.node_id(), net.addr(b));
    // The introducer's port for b is two below the one b's packets will come from.
    let observed = SocketAddr::new(real.ip(), real.port() - 2);
    assert_eq!(
        net.with(a, |e, _| e.punch_predicted(idb, observed, 8, false)),
        0,
        "no handshake yet"
    );
    net.with(a, |e, now| e.punch(now, idb, &[observed]));
    let sent = net.with(a, |e, _| e.punch_predicted(idb, observed, 8, false));
    assert_eq!(sent, 8, "observed±1..4: every copy is sent");
    let to_b = net.in_flight_to(real);
    assert_eq!(to_b, 1, "exactly one copy goes to b's real port (observed+2)");
    net.run_until(2 * SECOND, |n| connected(n, a, b));
    assert_eq!(net.nodes[a].endpoint.peer_addr(&idb), Some(real), "the session lives there");
    // A handshake meant for someone else is not sprayed.
    let c = net.add(fx.node(), 3);
    let other = net.nodes[c].endpoint.node_id();
    let elsewhere = SocketAddr::new(real.ip(), 9000);
    net.with(a, |e, now| e.punch(now, other, &[elsewhere]));
    assert_eq!(net.with(a, |e, _| e.punch_predicted(idb, elsewhere, 8, false)), 0);
}

/// The punch's datagrams with their TTLs. Each low one must be a one-byte NAT opener (message 1
/// there would be bytes that never arrive), each full one message 1.
fn drain_ttls(e: &mut Endpoint) -> Vec<(SocketAddr, Option<u8>)> {
    let sent: Vec<_> = std::iter::from_fn(|| e.poll_transmit()).collect();
    for t in &sent {
        match t.ttl {
            Some(_) => assert_eq!(t.payload, vec![0x19], "a low-TTL datagram is an opener"),
            None => assert!(t.payload.len() >= crate::secure::MIN_HS1_LEN, "message 1 in full"),
        }
    }
    sent.into_iter().map(|t| (t.dst, t.ttl)).collect()
}

#[test]
fn a_dial_ahead_of_an_introduction_keeps_its_low_ttl_until_the_punch() {
    let mut fx = Fixture::new(43);
    let mut e = Endpoint::new(fx.node(), [7; 32]);
    let peer = NodeId::hash(b"peer");
    let (at, other) = ("198.51.100.7:4000".parse().unwrap(), "198.51.100.8:4000".parse().unwrap());
    let low = Some(DEFAULT_PUNCH_TTL);
    e.connect_ahead(T0, at, Some(peer));
    assert_eq!(drain_ttls(&mut e), vec![(at, low)]);
    // Its retransmissions stay low while no introduction came.
    e.handle_timeout(T0 + Duration::from_millis(600));
    assert_eq!(drain_ttls(&mut e), vec![(at, low)]);
    // The introduction's punch goes in full, and so does everything after it.
    e.punch(T0 + Duration::from_millis(700), peer, &[at]);
    assert_eq!(drain_ttls(&mut e), vec![(at, None)]);
    e.handle_timeout(T0 + Duration::from_secs(2));
    assert_eq!(drain_ttls(&mut e), vec![(at, None)]);
    // No introduction at all: `dial_in_full` lets the retransmissions reach a peer that takes
    // unsolicited inbound.
    let third = NodeId::hash(b"third");
    e.connect_ahead(T0, other, Some(third));
    drain_ttls(&mut e);
    assert_eq!(e.dial_in_full(&third), 1);
    assert_eq!(e.dial_in_full(&third), 0, "nothing held any more");
    e.handle_timeout(T0 + Duration::from_secs(4));
    assert!(drain_ttls(&mut e).contains(&(other, None)));
}

#[test]
fn after_a_move_held_dials_to_our_new_network_go_in_full_at_once_and_others_stay_held() {
    let mut fx = Fixture::new(45);
    let mut e = Endpoint::new(fx.node(), [7; 32]);
    let lan: SocketAddr = "10.2.0.3:4000".parse().unwrap();
    let wan: SocketAddr = "198.51.100.8:4000".parse().unwrap();
    let low = Some(DEFAULT_PUNCH_TTL);
    e.connect_ahead(T0, lan, Some(NodeId::hash(b"lan")));
    e.connect_ahead(T0, wan, Some(NodeId::hash(b"wan")));
    assert_eq!(drain_ttls(&mut e), vec![(lan, low), (wan, low)]);
    let now = T0 + Duration::from_millis(100);
    let ours = |a: &SocketAddr| a.ip().to_string().starts_with("10.2.0.");
    assert_eq!(e.dial_in_full_within(now, ours), 1);
    assert_eq!(drain_ttls(&mut e), vec![(lan, None)], "message 1 at once, to the LAN only");
    assert_eq!(e.dial_in_full_within(now, ours), 0, "nothing held there any more");
    e.handle_timeout(now + Duration::from_millis(600));
    let mut sent = drain_ttls(&mut e);
    sent.sort();
    assert_eq!(sent, vec![(lan, None), (wan, low)]);
}

#[test]
fn punching_ahead_sends_low_copies_for_a_while_then_in_full() {
    let mut fx = Fixture::new(44);
    let mut e = Endpoint::new(fx.node(), [7; 32]);
    let peer = NodeId::hash(b"peer");
    let at: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    e.punch_ahead(T0, peer, &[at], false, PUNCH_AHEAD_HOLD);
    let sent = e.punch_predicted(peer, at, 2, true);
    assert_eq!(sent, 2);
    let low = Some(DEFAULT_PUNCH_TTL);
    let ttls = drain_ttls(&mut e);
    assert_eq!(ttls.len(), 3);
    assert!(ttls.iter().all(|(_, ttl)| *ttl == low), "{ttls:?}");
    // Low for `PUNCH_AHEAD_HOLD` (the retransmission at 0.5 s), in full after it (1.5 s).
    e.handle_timeout(T0 + Duration::from_millis(600));
    assert_eq!(drain_ttls(&mut e), vec![(at, low)]);
    e.handle_timeout(T0 + PUNCH_AHEAD_HOLD + Duration::from_millis(600));
    assert_eq!(drain_ttls(&mut e), vec![(at, None)]);
    // `punch_ttl(None)` turns it off.
    let mut e = Endpoint::new(fx.node().punch_ttl(None), [7; 32]);
    e.punch_ahead(T0, peer, &[at], false, PUNCH_AHEAD_HOLD);
    assert_eq!(drain_ttls(&mut e), vec![(at, None)]);
}
