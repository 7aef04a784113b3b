//! Stale sessions (`stale.rs`): a peer that no longer holds our session says so, and we open
//! a fresh one; the notice can neither amplify nor be forged into more than a handshake.

use super::*;

/// The remote index of `a`'s session with `b`: what `a`'s data packets name.
fn remote_index(net: &Net, a: usize, b: usize) -> u32 {
    let idb = net.nodes[b].endpoint.node_id();
    net.nodes[a].endpoint.link(&idb).expect("a session").session.remote_index()
}

#[test]
fn a_peer_that_dropped_our_session_gets_a_fresh_one_and_the_next_message() {
    // B closes its side only (it left its LSN, or restarted): A's messages went into nothing
    // until A's session idled out, and under loss nothing else told A.
    let (mut net, _) = pair(71);
    let (a, b) = (0, 1);
    let (ida, idb) = (net.nodes[a].endpoint.node_id(), net.nodes[b].endpoint.node_id());
    net.with(b, |e, _| e.close(&ida));
    net.events(b);
    net.with(a, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.run_for(SECOND);
    assert!(received(&net.events(b)).is_empty(), "sent into the dropped session");
    assert_eq!(net.nodes[b].endpoint.stats().stale_notices_sent, 1);
    assert_eq!(net.nodes[a].endpoint.stats().stale_redials, 1);
    assert!(connected(&net, a, b), "a fresh session stands");
    net.with(a, |e, now| e.send(now, &idb, &app(2))).unwrap();
    net.run_for(SECOND);
    assert_eq!(received(&net.events(b)), vec![app(2)]);
}

#[test]
fn a_notice_naming_another_index_or_from_elsewhere_changes_nothing() {
    let (mut net, _) = pair(72);
    let (a, b) = (0, 1);
    let (addr_a, addr_b) = (net.addr(a), net.addr(b));
    let index = remote_index(&net, a, b);
    let stranger: SocketAddr = "10.9.9.9:4000".parse().unwrap();
    let before = net.nodes[a].endpoint.stats().rejected;
    net.inject(addr_b, addr_a, crate::secure::Packet::stale(index.wrapping_add(1)));
    net.inject(stranger, addr_a, crate::secure::Packet::stale(index));
    net.run_for(SECOND);
    assert_eq!(net.nodes[a].endpoint.stats().stale_redials, 0);
    assert_eq!(rejected_since(&net, a, &before).unknown_session, 2);
    assert_eq!(remote_index(&net, a, b), index, "the session stands unchanged");
}

#[test]
fn notices_about_one_session_open_at_most_one_session_per_gap() {
    // A forged notice (an on-path attacker knows the index) costs one handshake, and a stream
    // of them no more than one per REDIAL_GAP.
    let (mut net, _) = pair(73);
    let (a, b) = (0, 1);
    let (addr_a, addr_b) = (net.addr(a), net.addr(b));
    let index = remote_index(&net, a, b);
    for _ in 0..20 {
        net.inject(addr_b, addr_a, crate::secure::Packet::stale(index));
    }
    net.run_for(SECOND);
    assert_eq!(net.nodes[a].endpoint.stats().stale_redials, 1);
    // The fresh session replaced the old one, and both sides still talk.
    let idb = net.nodes[b].endpoint.node_id();
    assert_ne!(remote_index(&net, a, b), index);
    net.with(a, |e, now| e.send(now, &idb, &app(3))).unwrap();
    net.run_for(SECOND);
    assert_eq!(received(&net.events(b)), vec![app(3)]);
}

#[test]
fn a_flood_of_unknown_sessions_gets_few_small_notices() {
    // Junk data packets from spoofed sources: every notice is smaller than what caused it,
    // and at most NOTICES_PER_SEC go out per second.
    let mut fx = Fixture::new(74);
    let mut node = Endpoint::new(fx.node(), [4; 32]);
    let mut junk = vec![0x14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    junk.extend_from_slice(&[0; 16]);
    let (mut notices, mut bytes) = (0u32, 0usize);
    for i in 0..1000u32 {
        let src = SocketAddr::from(([192, 0, 2, (i % 250) as u8], 5000));
        let now = T0 + Duration::from_millis(u64::from(i)); // one second of flood
        node.handle_datagram(now, src, &junk);
        while let Some(t) = node.poll_transmit() {
            assert!(t.payload.len() < junk.len());
            notices += 1;
            bytes += t.payload.len();
        }
    }
    assert!(notices <= 2 * super::super::stale::NOTICES_PER_SEC, "{notices} notices");
    assert!(notices > 0, "the first junk packet was answered");
    assert!(bytes < 1000 * junk.len() / 10, "{bytes} bytes out");
}

#[test]
fn with_two_sessions_to_a_peer_losing_the_one_in_use_leaves_the_other_for_its_address() {
    // Each side dialled the other: two sessions. One may idle out on our side while the peer
    // answers on the other; our next message must take the other, not dial afresh (its
    // messages would wait for a confirmation the quiet peer has no reason to send).
    let (mut net, _) = pair(75);
    let (a, b) = (0, 1);
    let (ida, idb) = (net.nodes[a].endpoint.node_id(), net.nodes[b].endpoint.node_id());
    let (addr_a, addr_b) = (net.addr(a), net.addr(b));
    net.with(b, |e, now| e.dial(now, addr_a, Some(ida)));
    net.run_for(SECOND);
    let ep = &net.nodes[a].endpoint;
    let links: Vec<u32> = ep.links.iter().filter(|(_, l)| l.peer == idb).map(|(i, _)| *i).collect();
    assert_eq!(links.len(), 2, "two sessions with B");
    let used = ep.by_addr[&addr_b];
    net.nodes[a].endpoint.remove_link(used);
    let other = links.into_iter().find(|&i| i != used).expect("the other");
    assert_eq!(net.nodes[a].endpoint.by_addr.get(&addr_b), Some(&other));
    net.events(b);
    net.with(a, |e, now| e.send_to(now, addr_b, app(5))).unwrap();
    assert!(net.nodes[a].endpoint.dials.is_empty(), "no fresh dial");
    net.run_for(SECOND);
    assert_eq!(received(&net.events(b)), vec![app(5)]);
}
