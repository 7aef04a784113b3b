//! Reach over NAT under the real driver and the real UDP transport, in turmoil: the testkit's
//! [`Nat`](fleetmesh_testkit::Nat) translates each NATed host's ports (turmoil has no NAT of
//! its own). A public node becomes the GSN; two hosts behind port-restricted NATs punch
//! through to each other, two behind symmetric NATs talk through the GSN; a bulk transfer
//! arrives whole either way.

use std::time::Duration;

use fleetmesh::{
    overlay::{NodeCommand, NodeEvent, OverlayConfig},
    wire::Mapping,
};
use fleetmesh_testkit::{NatKind, OverlayFleet};

/// Subnets 1, 2: symmetric; 3: public (the GSN); 4, 5: port-restricted; one node each.
/// Returns the fleet and the hosts of subnets 1 to 5, once every node is present and knows
/// its NAT.
fn fleet(seed: u64) -> (OverlayFleet<'static>, Vec<String>) {
    let mut fleet = OverlayFleet::builder(seed)
        .overlay_config(|c| OverlayConfig { dht: c.dht.enabled(false), ..c })
        .master_config({
            let mut m = fleetmesh::overlay::MasterConfig::default();
            m.dht = m.dht.enabled(false);
            m
        })
        .build();
    // The public node first: it becomes the GSN, and the helper the others' NAT checks use.
    let public = fleet.add_node(3);
    fleet
        .run_until(Duration::from_secs(60), |f| f.with_master(|m| m.gsns().len()) == Some(1))
        .expect("a GSN");
    let kinds =
        [NatKind::Symmetric, NatKind::Symmetric, NatKind::PortRestricted, NatKind::PortRestricted];
    let mut hosts = Vec::new();
    for (subnet, kind) in [1, 2, 4, 5].into_iter().zip(kinds) {
        fleet.set_nat(subnet, Some(kind));
        hosts.push(fleet.add_node(subnet));
    }
    hosts.insert(2, public);
    let all = hosts.clone();
    fleet
        .run_until(Duration::from_secs(120), move |f| {
            let known = |h: &String| {
                f.with_node(h, |n| {
                    let class = n.nat_class();
                    // The first public node has no helper to test its inbound with.
                    class.mapping == Mapping::Public
                        || class.inbound.is_some() && class.mapping != Mapping::Unknown
                })
            };
            f.all_present() && all.iter().all(|h| known(h) == Some(true))
        })
        .expect("present, NATs known");
    (fleet, hosts)
}

/// `len` bytes that differ everywhere.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// Has `from` send `data` to `to` (at the address the master observed for it) and waits
/// for the outcome; returns whether `to` got it whole, once.
fn transfer(fleet: &mut OverlayFleet, from: &str, to: &str, id: u64, data: &[u8]) {
    let peer = fleet.node_id(to);
    let addr = fleet.with_node(to, |n| n.observed_addr()).flatten().expect("observed");
    let command = NodeCommand::SendBulk { id, peer, addr, data: data.to_vec() };
    fleet.command(from, command).expect("command");
    let from_host = from.to_owned();
    fleet
        .run_until(Duration::from_secs(60), move |f| {
            f.node_events(&from_host).iter().any(|e| {
                matches!(e, NodeEvent::BulkSent { id: i, .. } | NodeEvent::BulkFailed { id: i, .. } if *i == id)
            })
        })
        .expect("an outcome");
    let sent = fleet.node_events(from);
    assert!(
        sent.iter().any(|e| matches!(e, NodeEvent::BulkSent { id: i, .. } if *i == id)),
        "{:?}",
        sent.iter().find(|e| matches!(e, NodeEvent::BulkFailed { .. }))
    );
    let got: Vec<Vec<u8>> = fleet
        .node_events(to)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::BulkReceived { id: i, data, .. } if i == id => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 1, "delivered once");
    assert!(got[0] == data, "the payload arrived changed");
}

#[test]
fn symmetric_nats_relay_through_the_gsn_and_port_restricted_ones_punch_through() {
    let (mut fleet, hosts) = fleet(11);
    let gsn = fleet.node_id(&hosts[2]);
    assert!(fleet.with_node(&hosts[2], |n| n.is_gsn()).unwrap(), "the public node serves");
    let forwarded = |f: &OverlayFleet| f.with_node(&hosts[2], |n| n.gsn_stats().forwarded);
    let data = payload(1 << 20);

    // Port-restricted to port-restricted: the introduction's punch opens a direct path.
    let before = forwarded(&fleet).unwrap();
    transfer(&mut fleet, &hosts[3], &hosts[4], 1, &data);
    let peer = fleet.node_id(&hosts[4]);
    let via = fleet.with_node(&hosts[3], |n| n.relayed_via(&peer)).unwrap();
    assert_eq!(via, None, "port-restricted pair relayed");
    assert_eq!(forwarded(&fleet).unwrap(), before, "the GSN carried some of it");

    // Symmetric to symmetric: no punch gets through; the session runs through the GSN.
    let before = forwarded(&fleet).unwrap();
    transfer(&mut fleet, &hosts[0], &hosts[1], 2, &data);
    let peer = fleet.node_id(&hosts[1]);
    let via = fleet.with_node(&hosts[0], |n| n.relayed_via(&peer)).unwrap();
    assert_eq!(via, Some(gsn), "symmetric pair not relayed");
    let chunks = (data.len() as u64).div_ceil(1_100);
    assert!(forwarded(&fleet).unwrap() >= before + chunks, "the chunks did not pass the GSN");
}
