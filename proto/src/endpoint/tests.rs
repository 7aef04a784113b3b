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
mod path;

/// Bytes sent back for each message 1 from an address nobody validated.
#[test]
fn an_unvalidated_address_never_gets_more_bytes_than_it_sent() {
    let mut fx = Fixture::new(61);
    let mut initiator = Endpoint::new(fx.node(), [1; 32]);
    let mut responder = Endpoint::new(fx.node(), [2; 32]);
    let responder_addr: SocketAddr = "10.0.0.2:4000".parse().unwrap();
    initiator.connect(T0, responder_addr, None);
    let hs1 = initiator.poll_transmit().expect("message 1").payload;
    assert_eq!(hs1.len(), crate::secure::MIN_HS1_LEN, "message 1 is padded");

    // Spoofed sources replay the message 1 (each a fresh handshake at the responder), and
    // send the bare, unpadded Noise message 1 (37 bytes, 8.4x before this check).
    let (mut sent_in, mut sent_out) = (0, 0);
    for i in 0..50u8 {
        let src = SocketAddr::from(([192, 0, 2, i], 5000));
        for datagram in [&hs1[..], &hs1[..37]] {
            responder.handle_datagram(T0, src, datagram);
            sent_in += datagram.len();
            while let Some(t) = responder.poll_transmit() {
                assert_eq!(t.dst, src);
                assert!(t.payload.len() <= hs1.len(), "{} > {}", t.payload.len(), hs1.len());
                sent_out += t.payload.len();
            }
        }
    }
    assert!(sent_out > 0, "padded messages 1 are answered");
    assert!(sent_out <= sent_in, "amplified: {sent_out} bytes out for {sent_in} in");
    assert_eq!(responder.stats().rejected.short_handshake, 50, "every short message 1 refused");
    assert_eq!(responder.poll_event(), None, "junk raises no event");
}

/// Sends `hs1` from `src` as an initiator would under load: answers the cookie reply with
/// message 1 and the cookie. What came back to that: message 2, or nothing (rate-limited).
fn with_cookie(responder: &mut Endpoint, src: SocketAddr, hs1: &[u8]) -> Option<Vec<u8>> {
    responder.handle_datagram(T0, src, hs1);
    let reply = responder.poll_transmit().expect("a cookie reply").payload;
    let Ok(crate::secure::Packet::Cookie { receiver, cookie }) =
        crate::secure::Packet::parse(&reply)
    else {
        panic!("not a cookie reply: {reply:?}");
    };
    let again = crate::secure::Packet::hs1_cookie(receiver, &cookie, &hs1[5..]);
    responder.handle_datagram(T0, src, &again);
    responder.poll_transmit().map(|t| t.payload)
}

/// Under load (a quarter of `max_accepting` half-open), one source flooding messages 1 gets
/// its burst answered and no more, while another source is still answered.
#[test]
fn under_load_a_flooding_source_is_cut_at_its_burst_and_others_still_get_answers() {
    let mut fx = Fixture::new(62);
    let mut initiator = Endpoint::new(fx.node(), [1; 32]);
    // Load at 512 half-open: what the unvalidated budget's burst fills.
    let mut responder = Endpoint::new(fx.node().max_accepting(2_048), [2; 32]);
    initiator.connect(T0, "10.0.0.2:4000".parse().unwrap(), None);
    let hs1 = initiator.poll_transmit().expect("message 1").payload;
    // 1,024 messages 1 from spoofed sources in as many /24s: the unvalidated budget's burst
    // gets messages 2 (and the responder is under load), the rest cookie replies.
    for i in 0..1024u32 {
        let src = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)), 5000));
        responder.handle_datagram(T0, src, &hs1);
    }
    let before = std::iter::from_fn(|| responder.poll_transmit()).count();
    assert_eq!(before, 1024, "every one answered");
    let unvalidated = super::DEFAULT_UNVALIDATED.burst as u64;
    assert_eq!(responder.stats().cookies_sent, 1024 - unvalidated, "the rest with cookies");
    assert_eq!(responder.stats().handshakes_rate_limited, 0);

    // Under load a message 1 must carry a cookie; this source answers every cookie reply.
    let burst = super::DEFAULT_PER_SOURCE.burst as usize;
    let answered = (0..1000u16)
        .filter(|port| {
            let src = SocketAddr::from(([192, 0, 2, 7], 1000 + port));
            with_cookie(&mut responder, src, &hs1).is_some()
        })
        .count();
    assert_eq!(answered, burst, "whatever ports it uses, one IP gets its burst");
    assert_eq!(responder.stats().handshakes_rate_limited, (1000 - burst) as u64);
    let other = SocketAddr::from(([198, 51, 100, 1], 5000));
    assert!(with_cookie(&mut responder, other, &hs1).is_some(), "another source is answered");
    assert_eq!(responder.stats().rejected.rate_limited, (1000 - burst) as u64);
    assert_eq!(responder.poll_event(), None, "a flood raises no event");
}

#[test]
fn tables_a_handshake_flood_grew_shrink_once_it_has_expired() {
    let (mut net, mut fx) = pair(31);
    let addr_b = net.addr(1);
    // 2,000 messages 1 from fresh identities at 2,000 addresses.
    for i in 0..2_000u32 {
        let mut flooder = Endpoint::new(fx.node(), [i as u8; 32]);
        flooder.connect(T0, addr_b, None);
        let hs1 = flooder.poll_transmit().unwrap().payload;
        let src = SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 4000));
        net.with(1, |e, now| e.handle_datagram(now, src, &hs1));
    }
    // The unvalidated budget's burst (512) are taken; the rest only get cookies.
    let grown = net.nodes[1].endpoint.accepts.capacity();
    assert!(grown >= 512, "{grown}");
    // The handshake timeout (10 s) later they are gone, and so is the room they took.
    net.run_for(11 * SECOND);
    assert!(net.nodes[1].endpoint.accepts.is_empty());
    assert!(net.nodes[1].endpoint.accepts.capacity() <= 64, "still {grown}");
    assert!(connected(&net, 0, 1), "the real session is untouched");
}

/// A spoofed flood of messages 1 (sources that never answer) under load gets 21-byte cookie
/// replies, takes no half-open slot and no public-key work, and a real node still connects.
#[test]
fn under_a_spoofed_flood_a_real_initiator_gets_in_through_a_cookie() {
    let mut fx = Fixture::new(63);
    let mut net = Net::new();
    let a = net.add(fx.node(), 1);
    let b = net.add(fx.node().max_accepting(8), 2);
    let addr_b = net.addr(b);
    let mut flooder = Endpoint::new(fx.node(), [9; 32]);
    flooder.connect(T0, addr_b, None);
    let hs1 = flooder.poll_transmit().unwrap().payload;
    for i in 0..1_000u32 {
        let src = SocketAddr::from(([10, 9, (i >> 8) as u8, i as u8], 4000));
        net.with(b, |e, now| e.handle_datagram(now, src, &hs1));
    }
    let stats = net.nodes[b].endpoint.stats();
    let (bytes_in, bytes_out) = (1_000 * hs1.len(), stats.bytes_sent as usize);
    assert_eq!(net.nodes[b].endpoint.accepts.len(), 2, "a quarter of max_accepting, no more");
    assert_eq!(stats.cookies_sent, 998);
    assert_eq!(stats.datagrams_sent, 1_000, "two messages 2, then only cookie replies");
    assert!(bytes_out <= 2 * 400 + 998 * 21, "{bytes_out}");
    assert!(bytes_out * 20 < bytes_in, "{bytes_out} bytes out for {bytes_in} in");

    net.with(a, |e, now| e.connect(now, addr_b, None));
    net.run_until(5 * SECOND, |n| connected(n, a, b));
    assert_eq!(net.nodes[b].endpoint.stats().cookies_sent, 999, "one more: the real one's");
}
