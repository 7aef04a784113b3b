//! Floods of handshake messages 1: no amplification towards unvalidated addresses, cookies and
//! rate limits under load, and tables that shrink back afterwards.

use super::*;

/// Bytes sent back for each message 1 from an address nobody validated: at most QUIC's three
/// times what arrived.
#[test]
fn an_unvalidated_address_never_gets_more_than_three_times_the_bytes_it_sent() {
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
                let limit = crate::secure::AMPLIFICATION_LIMIT * datagram.len();
                assert!(t.payload.len() <= limit, "{} > {limit}", t.payload.len());
                sent_out += t.payload.len();
            }
        }
    }
    assert!(sent_out > 0, "padded messages 1 are answered");
    let limit = crate::secure::AMPLIFICATION_LIMIT * sent_in;
    assert!(sent_out <= limit, "amplified: {sent_out} bytes out for {sent_in} in");
    // Message 2 is the whole answer to each padded message 1, and more than it: the limit is
    // what bounds it, not the padding alone.
    assert!(sent_out > sent_in - 50 * 37, "{sent_out} for {sent_in}");
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
    assert!(bytes_out * 5 < bytes_in, "{bytes_out} bytes out for {bytes_in} in");

    net.with(a, |e, now| e.connect(now, addr_b, None));
    net.run_until(5 * SECOND, |n| connected(n, a, b));
    assert_eq!(net.nodes[b].endpoint.stats().cookies_sent, 999, "one more: the real one's");
}
