//! Who may send what: forged control messages are refused and change nothing
//! (`takeover.rs`, `relay.rs`, `find.rs`, `lsn.rs`; the table is in docs/AUTHORIZATION.md).

use super::{
    takeover::{TakeoverRefused, TakeoverVerdict},
    tests::{forge, still_leads, two_subnets, SEC},
};
use crate::{
    overlay::MasterEvent,
    overlay::NodeState,
    secure::seal_envelope,
    sim::Simulation,
    wire::{AppMessage, Contact, Forward, Message, Pong, Resync, Takeover, WireAddr},
};

fn contact(w: &Simulation, i: usize) -> Contact {
    Contact { id: w.id(i), addr: WireAddr(w.slots[i].addr) }
}

#[test]
fn a_takeover_from_another_subnet_is_refused() {
    // Before: any certified node naming our LSN as the old one took its children.
    let (mut w, lsn) = two_subnets(41, 3);
    let children = w.node(lsn).children();
    let victim = w.slot_of_id(&children[0]).expect("a child");
    let attacker = (0..w.slots.len()).find(|&i| w.slots[i].subnet() == 2).expect("subnet 2");
    let t = Takeover { old: w.id(lsn), lsn: contact(&w, attacker) };
    let from = w.slots[attacker].addr;
    assert_eq!(
        w.node(victim).takeover_verdict(&w.id(attacker), from, &t),
        Err(TakeoverRefused::OffSubnet)
    );
    forge(&mut w, attacker, victim, Message::Takeover(t));
    w.run_for(10 * SEC);
    assert!(still_leads(&w, lsn, &children), "a child followed a forged takeover");
}

#[test]
fn a_takeover_naming_someone_else_or_another_lsn_is_refused() {
    let (mut w, lsn) = Simulation::settled_subnet(42, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let attacker = w.slot_of_id(&children[2]).expect("a child");
    let victim = w.slot_of_id(&children[1]).expect("a child");
    let (me, from) = (w.id(attacker), w.slots[attacker].addr);
    let not_self = Takeover { old: w.id(lsn), lsn: contact(&w, victim) };
    assert_eq!(
        w.node(victim).takeover_verdict(&me, from, &not_self),
        Err(TakeoverRefused::NotSelf)
    );
    let other_lsn = Takeover { old: w.id(attacker), lsn: contact(&w, attacker) };
    assert_eq!(
        w.node(victim).takeover_verdict(&me, from, &other_lsn),
        Err(TakeoverRefused::NotOurLsn)
    );
    forge(&mut w, attacker, victim, Message::Takeover(not_self));
    forge(&mut w, attacker, victim, Message::Takeover(other_lsn));
    w.run_for(10 * SEC);
    assert!(still_leads(&w, lsn, &children));
}

#[test]
fn a_takeover_from_a_sibling_is_checked_against_the_live_lsn_and_dropped() {
    // A child of the same subnet, not the standby, claims our LSN is replaced. The claim is
    // only a reason to probe: the LSN answers, and nobody moves.
    let (mut w, lsn) = Simulation::settled_subnet(43, 5, 3 * SEC);
    let children = w.node(lsn).children();
    let attacker = w.slot_of_id(&children[3]).expect("a child");
    let victim = w.slot_of_id(&children[2]).expect("a child");
    let t = Takeover { old: w.id(lsn), lsn: contact(&w, attacker) };
    let from = w.slots[attacker].addr;
    assert_eq!(
        w.node(victim).takeover_verdict(&w.id(attacker), from, &t),
        Ok(TakeoverVerdict::Verify)
    );
    forge(&mut w, attacker, victim, Message::Takeover(t));
    w.run_for(15 * SEC);
    assert!(still_leads(&w, lsn, &children), "a child left its live LSN");
    assert!(w.node(victim).lsn.as_ref().is_some_and(|l| l.claimant.is_none()));
}

#[test]
fn a_claim_to_replace_the_standby_is_checked_against_the_live_lsn_too() {
    // Naming our LSN's first standby as the one replaced (as a second standby does when the
    // first died during its takeover) is no shortcut: from a child that is not a hot standby
    // it is only a reason to probe the LSN, which answers.
    let (mut w, lsn) = Simulation::settled_subnet(46, 6, 3 * SEC);
    let children = w.node(lsn).children();
    let attacker = w.slot_of_id(&children[4]).expect("a child");
    let victim = w.slot_of_id(&children[3]).expect("a child");
    let t = Takeover { old: children[0], lsn: contact(&w, attacker) };
    let from = w.slots[attacker].addr;
    assert_eq!(
        w.node(victim).takeover_verdict(&w.id(attacker), from, &t),
        Ok(TakeoverVerdict::Verify)
    );
    // From the second hot standby, the same claim is followed at once.
    let second = w.slot_of_id(&children[1]).expect("a child");
    let t2 = Takeover { old: children[0], lsn: contact(&w, second) };
    assert_eq!(
        w.node(victim).takeover_verdict(&children[1], w.slots[second].addr, &t2),
        Ok(TakeoverVerdict::Follow)
    );
    forge(&mut w, attacker, victim, Message::Takeover(t));
    w.run_for(15 * SEC);
    assert!(still_leads(&w, lsn, &children), "a child left its live LSN");
}

#[test]
fn a_takeover_from_a_sibling_is_followed_once_the_lsn_is_dead() {
    // The same claim when the LSN really is gone: the probe fails and the child follows the
    // claimant (as it must for an LSN the master told to adopt children its list missed).
    let (mut w, lsn) = Simulation::settled_subnet(44, 5, 3 * SEC);
    let children = w.node(lsn).children();
    let claimant = w.slot_of_id(&children[3]).expect("a child");
    let victim = w.slot_of_id(&children[2]).expect("a child");
    let old = w.id(lsn);
    w.crash(lsn);
    let t = Takeover { old, lsn: contact(&w, claimant) };
    forge(&mut w, claimant, victim, Message::Takeover(t));
    let took = w.run_until(30 * SEC, |w| w.node(victim).lsn().is_some_and(|l| l != old));
    // Probed for `probe_retries` + 1 timeouts, well inside the 90 s silence timer.
    assert!(took <= 10 * SEC, "took {took:?}");
}

#[test]
fn only_the_master_may_make_an_lsn_relay() {
    let (mut w, lsn) = Simulation::settled_subnet(45, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let (attacker, target) = (
        w.slot_of_id(&children[0]).expect("a child"),
        w.slot_of_id(&children[1]).expect("a child"),
    );
    // A well-formed envelope (the attacker seals it itself; it could replay a captured one).
    let network = *w.node(target).endpoint().trust().network();
    let x25519 = w.node(target).endpoint().identity().x25519_public();
    let mut frame = Vec::new();
    let app = Message::App(AppMessage { id: 5, data: b"x".to_vec() });
    crate::wire::encode(&app, &mut frame).expect("encodes");
    let identity = w.node(attacker).endpoint().identity().clone();
    let mut rng = crate::harness::rng(3);
    let envelope = seal_envelope(&identity, &network, w.id(target), &x25519, 1, &frame, &mut rng)
        .expect("seals");
    let f = Forward { seq: 1, to: w.id(target), envelope };
    forge(&mut w, attacker, lsn, Message::Forward(Box::new(f)));
    w.run_for(SEC);
    assert_eq!(w.node(lsn).refusals().relay, 1, "the LSN relayed for a child");
    assert_eq!(w.node(lsn).relays_pending(), 0);
    assert!(still_leads(&w, lsn, &children));
}

#[test]
fn only_the_master_may_ask_an_lsn_for_its_children() {
    let (mut w, lsn) = Simulation::settled_subnet(46, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let attacker = w.slot_of_id(&children[2]).expect("a child");
    forge(&mut w, attacker, lsn, Message::Resync(Resync { seq: 1 }));
    w.run_for(SEC);
    assert_eq!(w.node(lsn).refusals().resync, 1);
    assert!(still_leads(&w, lsn, &children));
}

#[test]
fn a_forged_ack_does_not_settle_the_masters_delivery() {
    // Sequence numbers are small and guessable: a certified node acknowledging them all used
    // to make the master report messages delivered that never arrived.
    let (mut w, lsn) = Simulation::settled_subnet(47, 4, 3 * SEC);
    let children = w.node(lsn).children();
    let (attacker, target) = (
        w.slot_of_id(&children[0]).expect("a child"),
        w.slot_of_id(&children[1]).expect("a child"),
    );
    let node = w.id(target);
    // The target dies silently; the master still counts it present for a while.
    w.crash(target);
    w.master_do(|m, now| m.send_message(now, node, 77, b"reboot")).expect("sent");
    let master = crate::sim::master_addr();
    w.node_do(attacker, |n, now| {
        for seq in 0..4096 {
            n.send(now, master, Message::Ack(crate::wire::Ack { seq }));
        }
    });
    w.run_for(2 * SEC);
    let delivered = w
        .master_events
        .iter()
        .any(|(_, e)| matches!(e, MasterEvent::Delivered { id: 77, node: n, .. } if *n == node));
    assert!(!delivered, "a forged Ack settled the delivery");
    assert!(w.master().refusals().answer >= 1);
}

#[test]
fn an_introduction_from_anyone_but_the_introducer_is_refused() {
    // A certified node telling another to dial a third would make it a reflector.
    let (mut w, lsn) = two_subnets(47, 3);
    let victim = w.node(lsn).children()[0];
    let victim = w.slot_of_id(&victim).expect("a child");
    let attacker = (0..w.slots.len()).find(|&i| w.slots[i].subnet() == 2).expect("subnet 2");
    let target = (0..w.slots.len()).find(|&i| w.slots[i].subnet() == 2 && i != attacker).unwrap();
    let intro = crate::wire::Introduction {
        nonce: 1,
        to: w.id(victim),
        peer: w.id(target),
        addrs: vec![WireAddr(w.slots[target].addr)],
        answer: false,
        relay: None,
        predict: 0,
    };
    let before = w.node(victim).refusals().introduction;
    // The master's own introductions (the DHT's, while a child's NAT class is unknown) count
    // as introduced; the forged one must not.
    let introduced = w.node(victim).intro_stats().introduced;
    forge(&mut w, attacker, victim, Message::Introduction(Box::new(intro.clone())));
    w.run_for(SEC);
    assert_eq!(w.node(victim).refusals().introduction, before + 1);
    assert_eq!(w.node(victim).intro_stats().introduced, introduced);
    // Nor may a node ask another subnet's LSN to relay one.
    let lsn_before = w.node(lsn).refusals().introduction;
    let relayed = w.node(lsn).intro_stats().relayed;
    forge(&mut w, attacker, lsn, Message::Introduction(Box::new(intro)));
    w.run_for(SEC);
    assert_eq!(w.node(lsn).refusals().introduction, lsn_before + 1);
    assert_eq!(w.node(lsn).intro_stats().relayed, relayed);
}

fn join_from(w: &Simulation, i: usize) -> Message {
    let local = WireAddr(w.slots[i].addr);
    Message::Join(crate::wire::Join { seq: 1, local, prefix_len: 24, uptime_secs: 0 })
}

#[test]
fn a_join_from_a_sibling_makes_a_child_check_its_lsn_and_nothing_more() {
    // A sibling sends us a Join when it takes our LSN for dead and us for its successor
    // (`child.rs`, `sibling_joined`): we probe the LSN at once instead of at our silence
    // timer. A live LSN answers, and nobody moves.
    let (mut w, lsn) = Simulation::settled_subnet(44, 5, 3 * SEC);
    let children = w.node(lsn).children();
    let sibling = w.slot_of_id(&children[3]).expect("a child");
    let victim = w.slot_of_id(&children[2]).expect("a child");
    let probing = |w: &Simulation| w.node(victim).lsn.as_ref().is_some_and(|l| l.probe.is_some());
    assert!(!probing(&w));
    let join = join_from(&w, sibling);
    forge(&mut w, sibling, victim, join);
    // The Join may first need a handshake; the probe lasts a LAN round trip.
    let mut probed = false;
    for _ in 0..500 {
        w.run_for(std::time::Duration::from_millis(1));
        probed |= probing(&w);
    }
    assert!(probed, "no probe of the LSN after a sibling's Join");
    w.run_for(10 * SEC);
    assert!(!probing(&w), "the live LSN's answer ends the probe");
    assert!(still_leads(&w, lsn, &children), "a child left its live LSN");
}

#[test]
fn a_join_from_another_subnet_makes_no_child_probe() {
    let (mut w, lsn) = two_subnets(48, 3);
    let children = w.node(lsn).children();
    let victim = w.slot_of_id(&children[0]).expect("a child");
    let attacker = (0..w.slots.len()).find(|&i| w.slots[i].subnet() == 2).expect("subnet 2");
    let join = join_from(&w, attacker);
    forge(&mut w, attacker, victim, join);
    for _ in 0..500 {
        w.run_for(std::time::Duration::from_millis(1));
        assert!(w.node(victim).lsn.as_ref().is_some_and(|l| l.probe.is_none()));
    }
    w.run_for(5 * SEC);
    assert!(still_leads(&w, lsn, &children));
}

#[test]
fn only_a_childless_lsn_is_filed_under_the_lsn_its_pong_names() {
    // A node whose late registration re-filed it as an LSN after it had yielded answers the
    // master's ping as its rival's child: the master files it so (`demoted_by_pong`). An LSN
    // with children must Part to hand them over; a Pong naming another LSN changes nothing.
    let mut w = Simulation::new(47);
    for s in 1..=3 {
        for _ in 0..if s == 3 { 1 } else { 3 } {
            w.add(s);
        }
    }
    w.run_until(30 * SEC, |w| w.all_present());
    w.run_for(3 * SEC);
    let lsn_of = |w: &Simulation, s: u16| {
        (0..w.slots.len())
            .find(|&i| w.slots[i].subnet() == s && w.node(i).state() == NodeState::IsLsn)
            .expect("an LSN")
    };
    let (one, two, alone) = (lsn_of(&w, 1), lsn_of(&w, 2), lsn_of(&w, 3));
    let filed = |w: &Simulation, i: usize| w.master().topology().lsn_of(&w.id(i));
    let pong =
        |w: &Simulation, to: usize| Message::Pong(Pong { seq: 1, lsn: Some(contact(w, to)) });
    let master = crate::sim::master_addr();
    // With children: ignored.
    let p = pong(&w, two);
    w.node_do(one, |n, now| n.send(now, master, p));
    w.run_for(SEC);
    assert_eq!(filed(&w, one), Some(w.id(one)));
    // Without: filed under the LSN it names.
    let p = pong(&w, one);
    w.node_do(alone, |n, now| n.send(now, master, p));
    w.run_for(SEC);
    assert_ne!(filed(&w, alone), Some(w.id(alone)), "still filed as an LSN");
}
