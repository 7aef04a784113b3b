//! Lingering sessions (`Endpoint::linger`): kept open while silent past the idle timeout, and
//! closed on it again once the linger ends.

use super::*;

const LINGER: Duration = Duration::from_secs(600);

/// `a` and `b` connected, each keeping its session with the other open for [`LINGER`].
fn lingering_pair(seed: u64) -> (Net, NodeId, NodeId) {
    let (mut net, _) = pair(seed);
    let (ida, idb) = (net.nodes[0].endpoint.node_id(), net.nodes[1].endpoint.node_id());
    let (addr_a, addr_b) = (net.addr(0), net.addr(1));
    net.with(0, |e, now| e.linger(&idb, addr_b, now + LINGER));
    net.with(1, |e, now| e.linger(&ida, addr_a, now + LINGER));
    net.events(0);
    (net, ida, idb)
}

#[test]
fn a_lingering_session_outlives_the_idle_timeout_and_carries_messages_without_a_handshake() {
    let (mut net, _, idb) = lingering_pair(81);
    net.run_for(Duration::from_secs(300));
    assert!(connected(&net, 0, 1), "still open after 300 s of silence");
    let sessions = net.nodes[0].endpoint.stats().sessions_established;
    net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.run_for(SECOND);
    assert_eq!(received(&net.events(1)), vec![app(1)]);
    assert_eq!(net.nodes[0].endpoint.stats().sessions_established, sessions);
    assert_eq!(net.nodes[1].endpoint.stats().stale_notices_sent, 0);
    // The linger ends 600 s after it was set; the message above restarted the idle clock.
    net.run_for(LINGER);
    assert!(net
        .events(0)
        .contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Idle }));
}

#[test]
fn ending_a_linger_lets_the_session_close_on_the_idle_timeout() {
    let (mut net, _, idb) = lingering_pair(82);
    let addr_b = net.addr(1);
    net.run_for(Duration::from_secs(200));
    net.with(0, |e, _| e.linger(&idb, addr_b, Timestamp::ZERO));
    net.run_for(SECOND);
    assert!(net
        .events(0)
        .contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Idle }));
}

#[test]
fn a_linger_naming_another_peer_at_the_address_changes_nothing() {
    let (mut net, _) = pair(83);
    let idb = net.nodes[1].endpoint.node_id();
    let (addr_b, stranger) = (net.addr(1), NodeId::from_bytes([7; 20]));
    net.with(0, |e, now| e.linger(&stranger, addr_b, now + LINGER));
    net.events(0);
    net.run_for(Duration::from_secs(181));
    assert!(net
        .events(0)
        .contains(&Event::Disconnected { peer: idb, reason: DisconnectReason::Idle }));
}

#[test]
fn a_message_sent_on_a_lingering_session_the_peer_dropped_reaches_it_on_a_fresh_one() {
    let (mut net, ida, idb) = lingering_pair(84);
    net.run_for(Duration::from_secs(300));
    // B let the session go meanwhile (it restarted, or its bound on lingering sessions
    // pushed this one out); A still holds it.
    net.with(1, |e, _| e.close(&ida));
    net.events(1);
    net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.with(0, |e, now| e.send(now, &idb, &app(2))).unwrap();
    net.run_for(SECOND);
    assert_eq!(net.nodes[1].endpoint.stats().stale_notices_sent, 2);
    assert_eq!(net.nodes[0].endpoint.stats().stale_redials, 1);
    assert_eq!(received(&net.events(1)), vec![app(1), app(2)], "delivered once each, in order");
}

#[test]
fn a_message_sent_within_the_idle_timeout_is_not_kept_for_a_fresh_session() {
    // The peer was heard lately: a notice now is no reason to send anything twice.
    let (mut net, ida, idb) = lingering_pair(85);
    net.with(1, |e, _| e.close(&ida));
    net.events(1);
    net.with(0, |e, now| e.send(now, &idb, &app(1))).unwrap();
    net.run_for(SECOND);
    assert_eq!(net.nodes[0].endpoint.stats().stale_redials, 1);
    assert!(received(&net.events(1)).is_empty());
}
