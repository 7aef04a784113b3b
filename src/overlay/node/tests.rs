//! Node behaviour that needs a look inside the state machine.

use std::time::Duration;

use crate::{
    overlay::{NodeEvent, NodeState},
    secure::seal_envelope,
    sim::Simulation,
    wire::{AppMessage, Contact, Forward, Message, WireAddr},
};

const SEC: Duration = Duration::from_secs(1);

#[test]
fn a_standby_whose_ranking_push_was_lost_still_takes_over_at_once() {
    // The push that names the standby goes out once, unacknowledged. Lost, the LSN heartbeats
    // a child that does not know it is the standby, and nobody watches the LSN closely: a
    // crash was then noticed only by the children's silence timer (90 s and more).
    let (mut w, old) = Simulation::settled_subnet(31, 8, 3 * SEC);
    let ranked = w.node(old).children();
    let standby = w.slot_of_id(&ranked[0]).expect("the standby's slot");
    // The list it holds instead names the next child first, as one from before a re-ranking.
    let stale: Vec<Contact> = ranked[1..]
        .iter()
        .filter_map(|id| {
            w.slot_of_id(id).map(|j| Contact { id: *id, addr: WireAddr(w.slots[j].addr) })
        })
        .collect();
    w.slots[standby].node.as_mut().expect("running").lose_standby_list(stale);
    // Heartbeats keep coming (the LSN believes the push arrived).
    w.run_for(3 * SEC);
    let old_id = w.id(old);
    w.crash(old);
    let took = w.run_until(120 * SEC, |w| {
        let m = w.master();
        let topo = m.topology();
        (0..8)
            .filter(|&i| i != old)
            .all(|i| m.is_present(&w.id(i)) && topo.lsn_of(&w.id(i)).is_some_and(|l| l != old_id))
    });
    assert!(took <= 2 * SEC, "recovery took {took:?}");
    assert_eq!(w.node(standby).state(), NodeState::IsLsn);
}

/// The master's identity in a simulation seeded with `seed_n` (the simulator derives it so).
fn master_identity(seed_n: u64) -> crate::Identity {
    use rand_core::SeedableRng;
    crate::Identity::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed_n))
}

/// How many times node `i` reported the master's message `id` to its application.
fn reported(w: &Simulation, i: usize, id: u64) -> usize {
    let is = |e: &NodeEvent| matches!(e, NodeEvent::Message { id: m, .. } if *m == id);
    w.slots[i].events.iter().filter(|(_, e)| is(e)).count()
}

#[test]
fn an_envelope_relayed_twice_is_refused_the_second_time() {
    // A relaying LSN holds a sealed message back and delivers it again: the node must not act
    // on it twice. Fresh envelopes, also out of order, still pass.
    let (mut w, lsn) = Simulation::settled_subnet(33, 3, SEC);
    let child = (0..3).find(|&i| i != lsn).expect("a child");
    let master = master_identity(33);
    let (to, lsn_addr) = (w.id(child), w.slots[lsn].addr);
    let network = *w.node(child).endpoint().trust().network();
    let x25519 = w.node(child).endpoint().identity().x25519_public();
    let mut rng = crate::harness::rng(7);
    let mut forward = |stamp: u64, id: u64| {
        let mut frame = Vec::new();
        let app = Message::App(AppMessage { id, data: b"reboot".to_vec() });
        crate::wire::encode(&app, &mut frame).expect("encodes");
        let envelope =
            seal_envelope(&master, &network, to, &x25519, stamp, &frame, &mut rng).expect("seals");
        Forward { seq: 9, to, envelope }
    };
    let t = w.now.as_micros();
    let first = forward(t, 1);
    for _ in 0..2 {
        let f = first.clone();
        w.node_do(child, |n, now| n.deliver(now, lsn_addr, f));
    }
    assert_eq!(reported(&w, child, 1), 1, "the replay was delivered again");
    assert_eq!(w.node(child).envelope_window().replayed(), 1);
    // A later envelope, then one sealed between the two: both pass.
    let (later, between) = (forward(t + 2_000, 2), forward(t + 1_000, 3));
    w.node_do(child, |n, now| n.deliver(now, lsn_addr, later));
    w.node_do(child, |n, now| n.deliver(now, lsn_addr, between));
    assert_eq!((reported(&w, child, 2), reported(&w, child, 3)), (1, 1));
    assert_eq!(w.node(child).envelope_window().replayed(), 1);
}
