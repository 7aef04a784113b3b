//! The DHT over real UDP: 50 nodes (5 subnets of 10) and the master, each under the real
//! driver inside turmoil. A record put on one node is read on every other; provider records
//! of two providers are found; a forged record is refused with the typed error. Nothing is
//! configured for the DHT: nodes fill their routing tables from the overlay's sessions.

use std::time::Duration;

use fleetmesh::{
    dht::{DhtCommand, DhtError, DhtEvent, KeyKind, RecordError},
    overlay::{NodeCommand, NodeEvent},
    wire::Record,
    NodeId,
};
use fleetmesh_testkit::OverlayFleet;

const SEC: Duration = Duration::from_secs(1);

/// Every DHT result `host` reported for `key`, in order.
fn results_for(fleet: &OverlayFleet, host: &str, key: NodeId) -> Vec<DhtEvent> {
    let events = fleet.node_events(host).into_iter();
    events
        .filter_map(|e| match e {
            NodeEvent::Dht(d @ (DhtEvent::Put { key: k, .. } | DhtEvent::Got { key: k, .. }))
                if k == key =>
            {
                Some(d)
            }
            _ => None,
        })
        .collect()
}

/// Sends each host its command (all at once), runs until each reported a new result for
/// `key`, and returns those results in the order of `hosts`.
fn ask(
    fleet: &mut OverlayFleet,
    hosts: &[String],
    key: NodeId,
    command: impl Fn(&str) -> DhtCommand,
    max: Duration,
) -> Vec<DhtEvent> {
    let before: Vec<usize> = hosts.iter().map(|h| results_for(fleet, h, key).len()).collect();
    for host in hosts {
        fleet.command(host, NodeCommand::Dht(command(host))).unwrap();
    }
    let start = fleet.elapsed();
    loop {
        let now: Vec<Vec<DhtEvent>> = hosts.iter().map(|h| results_for(fleet, h, key)).collect();
        if now.iter().zip(&before).all(|(r, b)| r.len() > *b) {
            return now.into_iter().zip(before).map(|(r, b)| r[b].clone()).collect();
        }
        assert!(fleet.elapsed() - start < max, "not every host answered within {max:?}");
        fleet.run_for(SEC / 4).unwrap();
    }
}

fn one(host: &str) -> Vec<String> {
    vec![host.to_owned()]
}

#[test]
fn fifty_nodes_share_records_find_providers_and_refuse_forgeries() {
    let wall = std::time::Instant::now();
    let mut fleet = OverlayFleet::builder(50).duration(600 * SEC).build();
    for subnet in 1..=5 {
        fleet.add_subnet(subnet, 10);
    }
    fleet.run_until(60 * SEC, |f| f.all_present()).unwrap_or_else(|e| panic!("{e}"));
    // No NAT here: every node serves the DHT once it knows that, children from their LSN's
    // ping (within a child ping interval).
    let serving = |f: &OverlayFleet| {
        f.hosts().iter().all(|h| f.node(h).is_some_and(|n| !n.lock().unwrap().dht_client()))
    };
    fleet.run_until(120 * SEC, serving).unwrap_or_else(|e| panic!("{e}"));
    // Bootstrap lookups settle.
    fleet.run_for(5 * SEC).unwrap();
    let hosts = fleet.hosts();
    assert_eq!(hosts.len(), 50);

    // Put on one node, read on every other.
    let writer = hosts[7].clone();
    let key = KeyKind::Contact.key(fleet.node_id(&writer).as_bytes());
    let value = b"where I am".to_vec();
    let put = ask(
        &mut fleet,
        &one(&writer),
        key,
        |_| DhtCommand::Put { key, value: value.clone() },
        20 * SEC,
    );
    let put = put[0].clone();
    assert!(matches!(put, DhtEvent::Put { result: Ok(n), .. } if n >= 10), "{put:?}");
    let readers: Vec<String> = hosts.iter().filter(|h| **h != writer).cloned().collect();
    let results = ask(&mut fleet, &readers, key, |_| DhtCommand::Get { key }, 30 * SEC);
    let mut hops = Vec::new();
    for (reader, got) in readers.iter().zip(results) {
        let DhtEvent::Got { result: Ok(records), stats, .. } = got else {
            panic!("{reader}: {got:?}")
        };
        assert_eq!(records.len(), 1, "{reader}");
        assert_eq!(records[0].value, b"where I am");
        assert_eq!(records[0].publisher, fleet.node_id(&writer));
        hops.push(stats.hops);
    }
    hops.sort_unstable();
    assert!(hops[hops.len() / 2] <= 3, "hops {hops:?}");

    // Two providers; a third node finds both.
    let content = b"firmware-4.2.bin".to_vec();
    let pkey = KeyKind::Provider.key(&content);
    let providers = [hosts[3].clone(), hosts[28].clone()];
    let provide =
        |p: &str| DhtCommand::Provide { content: content.clone(), offer: p.as_bytes().to_vec() };
    for put in ask(&mut fleet, &providers, pkey, provide, 20 * SEC) {
        assert!(matches!(put, DhtEvent::Put { result: Ok(_), .. }), "{put:?}");
    }
    let seeker = hosts[45].clone();
    let find = |_: &str| DhtCommand::FindProviders { content: content.clone() };
    let got = ask(&mut fleet, &one(&seeker), pkey, find, 20 * SEC).remove(0);
    let DhtEvent::Got { result: Ok(records), .. } = got else { panic!("{got:?}") };
    let mut found: Vec<NodeId> = records.iter().map(|r| r.publisher).collect();
    found.sort();
    let mut expected: Vec<NodeId> = providers.iter().map(|p| fleet.node_id(p)).collect();
    expected.sort();
    assert_eq!(found, expected);

    // A forged record: the writer's record with its value changed after signing.
    let forger = hosts[20].clone();
    let mut forged: Record = match results_for(&fleet, &readers[0], key).pop() {
        Some(DhtEvent::Got { result: Ok(records), .. }) => records[0].clone(),
        other => panic!("{other:?}"),
    };
    forged.value = b"somewhere else".to_vec();
    forged.version += 1;
    let put = |_: &str| DhtCommand::PutRecord(Box::new(forged.clone()));
    let refused = ask(&mut fleet, &one(&forger), key, put, 10 * SEC).remove(0);
    assert!(
        matches!(
            refused,
            DhtEvent::Put { result: Err(DhtError::Refused(RecordError::BadSignature)), .. }
        ),
        "{refused:?}"
    );
    // The network still serves the genuine record.
    let checker = hosts[33].clone();
    let got = ask(&mut fleet, &one(&checker), key, |_| DhtCommand::Get { key }, 10 * SEC).remove(0);
    assert!(
        matches!(&got, DhtEvent::Got { result: Ok(r), .. } if r[0].value == b"where I am"),
        "{got:?}"
    );
    eprintln!("wall time {:?}", wall.elapsed());
}
