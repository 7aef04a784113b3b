//! Bulk transfers (`bulk/`): whole and once across loss, a narrow uplink, the relay and the
//! relay's upgrade to a direct path; refused beyond the receiver's bounds; answers from the
//! wrong peer ignored.

use std::time::Duration;

use super::{tests::forge, tests_gsn::relayed_pair, BulkError, NodeEvent};
use crate::{
    overlay::OverlayConfig,
    sim::{NatKind, Simulation},
    wire::{BulkAck, BulkChunk, Message},
    NodeId,
};

/// `len` bytes that differ everywhere, so a chunk out of place shows.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn received(w: &Simulation, i: usize) -> Vec<(NodeId, u64, &Vec<u8>)> {
    let events = w.slots[i].events.iter();
    events
        .filter_map(|(_, e)| match e {
            NodeEvent::BulkReceived { peer, id, data } => Some((*peer, *id, data)),
            _ => None,
        })
        .collect()
}

fn outcome(w: &Simulation, i: usize, transfer: u64) -> Option<Result<(), BulkError>> {
    w.slots[i].events.iter().find_map(|(_, e)| match e {
        NodeEvent::BulkSent { id, .. } if *id == transfer => Some(Ok(())),
        NodeEvent::BulkFailed { id, error, .. } if *id == transfer => Some(Err(error.clone())),
        _ => None,
    })
}

/// Two public nodes in two subnets (the DHT off): (world, a, b).
fn pair(seed: u64) -> (Simulation, usize, usize) {
    let mut w = Simulation::new(seed);
    w.tune = |c| OverlayConfig { dht: c.dht.enabled(false), ..c };
    w.master_cfg.dht = w.master_cfg.dht.clone().enabled(false);
    w.set_nat(1, NatKind::None);
    w.set_nat(2, NatKind::None);
    let (a, b) = (w.add(1), w.add(2));
    w.run_until(Duration::from_secs(30), |s| s.all_present());
    (w, a, b)
}

#[test]
fn a_bulk_transfer_fills_a_narrow_uplink_and_arrives_whole_and_once_through_loss() {
    let (mut w, a, b) = pair(71);
    w.net.subnet_bandwidth = Some(2_000_000);
    let (to, addr) = (w.id(b), w.slots[b].addr);
    let send = |w: &mut Simulation, seed| {
        let data = payload(4 << 20, seed);
        let start = w.now;
        let id = w.node_do(a, |n, now| n.send_bulk(now, to, addr, data.clone())).unwrap();
        w.run_until(Duration::from_secs(300), |s| outcome(s, a, id).is_some());
        assert_eq!(outcome(w, a, id), Some(Ok(())));
        let got = received(w, b);
        let got = got.iter().filter(|r| r.1 == id).collect::<Vec<_>>();
        assert_eq!(got.len(), 1, "delivered once");
        assert_eq!(got[0].0, w.id(a));
        assert!(*got[0].2 == data, "the payload arrived changed");
        w.now.saturating_since(start)
    };
    // 4 MiB over a 2 MB/s uplink takes 2.1 s at best; a window stuck at its first 16 chunks
    // (18 KB per 40 ms round trip) would take 9.5 s.
    let clean = send(&mut w, 1);
    eprintln!("4 MiB over 2 MB/s: {clean:?}, {:?}", w.node(a).bulk_stats());
    assert!(clean < Duration::from_secs(4), "{clean:?}: the window did not open");
    w.net.loss = 0.05;
    let lossy = send(&mut w, 2);
    let stats = w.node(a).bulk_stats();
    eprintln!("4 MiB over 2 MB/s at 5 % loss: {lossy:?}, {stats:?}");
    assert!(stats.chunks_resent > 0, "5 % loss and nothing sent again: {stats:?}");
    assert_eq!(w.node(b).bulk_stats().received, 2);
}

#[test]
fn a_bulk_transfer_arrives_whole_across_the_relay_and_its_upgrade_to_a_direct_path() {
    let (mut w, helper, child1, child2) = relayed_pair(66);
    w.keep_events = true;
    let (id1, id2) = (w.id(child1), w.id(child2));
    let addr = w.node(child2).observed_addr().expect("observed");
    // Subnet 1's NAT starts mapping endpoint-independently: the try at a direct path, 35 s
    // after the relay began, succeeds in the middle of the transfer.
    w.set_nat(1, NatKind::EndpointIndependent);
    w.net.loss = 0.01;
    w.run_for(Duration::from_secs(25));
    // 16 MiB at the circuit's 1 MiB/s: still running when the session moves.
    let data = payload(16 << 20, 2);
    let id = w.node_do(child1, |n, now| n.send_bulk(now, id2, addr, data.clone())).unwrap();
    w.run_until(Duration::from_secs(120), |s| outcome(s, child1, id).is_some());
    assert_eq!(outcome(&w, child1, id), Some(Ok(())));
    assert_eq!(w.node(child1).relayed_via(&id2), None, "the session moved to a direct path");
    assert_eq!(w.node(child1).gsn_stats().upgraded, 1);
    let got = received(&w, child2);
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!((got[0].0, got[0].1), (id1, id));
    assert!(*got[0].2 == data, "the payload arrived changed");
    let relayed = w.node(helper).gsn_stats().forwarded_bytes;
    eprintln!("{relayed} bytes through the GSN, {:?}", w.node(child1).bulk_stats());
    assert!(relayed > 512 << 10, "the transfer began on the relay: {relayed}");
    assert!(relayed < 15 << 20, "and ended on the direct path: {relayed}");
}

#[test]
fn transfers_beyond_the_receivers_bounds_are_refused_and_strangers_answers_ignored() {
    let mut w = Simulation::new(72);
    w.tune = |c| OverlayConfig { dht: c.dht.enabled(false), ..c };
    w.master_cfg.dht = w.master_cfg.dht.clone().enabled(false);
    w.set_nat(1, NatKind::None);
    let nodes: Vec<usize> = (0..3).map(|_| w.add(1)).collect();
    w.run_until(Duration::from_secs(30), |s| s.all_present());
    let [a, b, c] = [nodes[0], nodes[1], nodes[2]];
    let (to, addr) = (w.id(b), w.slots[b].addr);
    assert_eq!(w.node_do(a, |n, now| n.send_bulk(now, to, addr, vec![])), Err(BulkError::Empty));
    w.node_do(b, |n, _| n.cfg.bulk_max = 1_000);
    let big = w.node_do(a, |n, now| n.send_bulk(now, to, addr, vec![1; 5_000])).unwrap();
    w.run_for(Duration::from_secs(1));
    match outcome(&w, a, big) {
        Some(Err(BulkError::Refused(reason))) => assert!(reason.contains("1000"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.node(b).bulk_stats().refused, 1);
    w.node_do(b, |n, _| n.cfg.bulk_max = 1 << 20);
    // Malformed first chunks (a length that does not fit, no chunk size) hold no place: as
    // many as a peer's bound allows, and one more, then a real transfer still starts.
    for id in 0..=super::MAX_BULK_INCOMING_PER_PEER as u64 {
        let bad = BulkChunk {
            id,
            index: 0,
            total: 5_000,
            chunk: (id as u32 % 2) * 1_100,
            bytes: vec![0; 7],
        };
        forge(&mut w, a, b, Message::BulkChunk(Box::new(bad)));
    }
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.node(b).bulk_stats().ignored, super::MAX_BULK_INCOMING_PER_PEER as u64 + 1);
    // While a's datagrams to b are cut, an acknowledgement of the whole transfer from a
    // third node: ignored. Once the cut heals, the retransmissions complete it.
    w.cut.insert((w.slots[a].addr, addr));
    let live = w.node_do(a, |n, now| n.send_bulk(now, to, addr, vec![2; 500])).unwrap();
    let fake = BulkAck { id: live, next: 1, ranges: vec![] };
    forge(&mut w, c, a, Message::BulkAck(Box::new(fake)));
    w.run_for(Duration::from_millis(300));
    assert_eq!(w.node(a).bulk_stats().ignored, 1);
    assert_eq!(outcome(&w, a, live), None, "a stranger completed the transfer");
    w.cut.clear();
    w.run_for(Duration::from_secs(3));
    assert_eq!(outcome(&w, a, live), Some(Ok(())));
    assert_eq!(received(&w, b).len(), 1);
}

#[test]
fn a_transfer_survives_its_session_closing_midway() {
    let (mut w, a, b) = pair(73);
    let (to, addr) = (w.id(b), w.slots[b].addr);
    let data = payload(200_000, 3);
    let id = w.node_do(a, |n, now| n.send_bulk(now, to, addr, data.clone())).unwrap();
    w.run_until(Duration::from_secs(5), |s| s.node(a).bulk_stats().chunks_sent >= 48);
    // Mid-transfer, the sender's session with the peer goes (closed, as one idled out would).
    w.node_do(a, |n, _| n.ep.close(&to));
    assert!(!w.node(a).endpoint().is_connected(&to));
    w.run_until(Duration::from_secs(20), |s| outcome(s, a, id).is_some());
    assert_eq!(outcome(&w, a, id), Some(Ok(())));
    let got = received(&w, b);
    assert_eq!(got.len(), 1);
    assert!(*got[0].2 == data, "the payload arrived changed");
}
