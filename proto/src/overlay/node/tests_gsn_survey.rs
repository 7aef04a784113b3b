//! The GSN directory (`gsn_survey.rs`, `master/gsn.rs`, `overlay/gsn_ticket.rs`): GSNs
//! publish their tickets, LSNs measure and choose the nearest, the master names it, and
//! forged records, probes and choices change nothing.

use std::time::Duration;

use super::super::{tests::forge, NodeState, PUBLISH_SPREAD, SURVEY_EVERY, SURVEY_MAX};
use crate::{
    overlay::{gsn_ticket, OverlayConfig},
    sim::{master_addr, NatKind, Simulation},
    wire::{GsnChoice, GsnProbeAck, Message, WireAddr},
};

/// Two subnets behind symmetric NATs (an LSN and a child each) and three public GSNs: one
/// near everybody (subnet 3, 12 ms one way to the others), two far (subnets 4 and 5, 50 ms).
/// Returns (world, near, a far one, [LSN, child] of subnet 1, [LSN, child] of subnet 2),
/// once subnet 1's LSN has chosen.
fn world(seed: u64) -> (Simulation, usize, usize, [usize; 2], [usize; 2]) {
    let mut w = Simulation::new(seed);
    w.keep_events = false;
    w.tune = |c| OverlayConfig { nat_check_as_child: true, ..c };
    w.tcp_fallback = Some(Duration::from_secs(3));
    w.set_nat(1, NatKind::Symmetric);
    w.set_nat(2, NatKind::Symmetric);
    w.set_nat(3, NatKind::None);
    w.set_nat(4, NatKind::None);
    w.set_nat(5, NatKind::None);
    w.set_wan_offset_us(3, -8_000);
    w.set_wan_offset_us(4, 30_000);
    w.set_wan_offset_us(5, 30_000);
    // The far ones first: by tenure alone they would win.
    let far = w.add(4);
    w.add(5);
    let near = w.add(3);
    w.run_until(Duration::from_secs(30), |s| s.all_present());
    let nodes: Vec<usize> = [1, 1, 2, 2].into_iter().map(|s| w.add(s)).collect();
    w.run_until(Duration::from_secs(60), |s| {
        s.all_present() && nodes.iter().all(|&i| s.node(i).nat_checked())
    });
    let pair = |w: &Simulation, p: &[usize]| {
        let lsn = p.iter().copied().find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
        let child = p.iter().copied().find(|&i| i != lsn).unwrap();
        [lsn, child]
    };
    let (a, b) = (pair(&w, &nodes[..2]), pair(&w, &nodes[2..]));
    w.run_until(Duration::from_secs(900), |s| s.node(a[0]).gsn_choice().is_some());
    // The choice on its way to the master.
    w.run_for(Duration::from_secs(1));
    (w, near, far, a, b)
}

#[test]
fn an_lsn_chooses_the_nearest_gsn_and_its_childrens_relays_run_through_it() {
    let (mut w, near, far, [lsn1, child1], [lsn2, child2]) = world(71);
    let near_id = w.id(near);
    assert_eq!(w.master().gsns().len(), 3, "the public nodes are GSNs");
    for g in [near, far] {
        assert!(w.node(g).survey_stats().published >= 1, "{:?}", w.node(g).survey_stats());
    }
    let (chosen, rtt) = w.node(lsn1).gsn_choice().expect("chosen");
    assert_eq!(chosen, near_id, "rtt {rtt:?}");
    // 2 × 12 ms one way, plus the LAN and the NAT: well under the far one's 100 ms.
    assert!(rtt < Duration::from_millis(40), "{rtt:?}");
    let stats = w.node(lsn1).survey_stats();
    assert!(stats.surveys >= 1 && stats.probes >= 4 && stats.choices == 1, "{stats:?}");
    assert_eq!(w.master().gsn_choice(&w.id(lsn1)).map(|(g, _)| g), Some(near_id));
    assert!(w.node(child1).gsn_choice().is_none(), "children do not survey");
    // Symmetric to symmetric: relayed, and through the near GSN each time, where the
    // master's turn-taking alone would name a far one two times in three.
    for (from, to) in [(child1, child2), (child1, lsn2), (lsn1, child2), (lsn1, lsn2)] {
        let (id, addr) = (w.id(to), w.node(to).observed_addr().expect("observed"));
        w.node_do(from, |n, now| n.reach(now, id, addr));
        w.run_for(Duration::from_secs(5));
        assert_eq!(w.node(from).relayed_via(&id), Some(near_id), "{from} → {to}");
    }
    for g in w.master().gsns().into_iter().filter(|g| *g != near_id) {
        let i = w.slot_of_id(&g).unwrap();
        assert_eq!(w.node(i).gsn_stats().forwarded, 0, "a far GSN relayed");
    }
    assert!(w.node(near).gsn_stats().forwarded > 0);
}

#[test]
fn gsns_renew_their_tickets_and_lsns_survey_again() {
    let (mut w, near, _, [lsn1, _], _) = world(72);
    let before = w.node(near).survey_stats().published;
    // A report repeated for another reason brings the same ticket again: nothing to put.
    w.node_do(near, |n, now| n.nat_report_again(now));
    w.run_for(PUBLISH_SPREAD + Duration::from_secs(5));
    assert_eq!(w.node(near).survey_stats().published, before, "published again");
    let surveys = w.node(lsn1).survey_stats().surveys;
    // Past half a ticket's life (3 h): a fresh ticket, published again.
    w.run_for(gsn_ticket::TICKET_TTL / 2 + Duration::from_secs(120));
    assert!(w.node(near).survey_stats().published > before);
    // The choice stands: surveys 1 h after it, then 2 h after that (the next 4 h later).
    let more = w.node(lsn1).survey_stats().surveys - surveys;
    assert_eq!(more, 2, "surveys in 3 h");
    assert_eq!(w.node(lsn1).gsn_choice().map(|(g, _)| g), Some(w.id(near)), "unchanged");
    assert_eq!(w.node(lsn1).survey_stats().choices, 1, "the same choice is not sent again");
    // Then 4 h, and 8 h at most: surveys 1, 3, 7, 15 and 23 h after the choice.
    w.run_for(Duration::from_secs(21 * 3600));
    let day = w.node(lsn1).survey_stats().surveys - surveys;
    assert_eq!(day, 5, "surveys in a day ({SURVEY_MAX:?} at most apart)");
}

#[test]
fn forged_directory_records_probe_answers_and_choices_change_nothing() {
    let (mut w, near, far, [lsn1, child1], [_, child2]) = world(73);
    // A node signs its own ticket and publishes it in the directory.
    let forger = child2;
    w.node_do(forger, |n, now| {
        let id = n.node_id();
        let network = *n.endpoint().trust().network();
        let addr = WireAddr(n.observed_addr().expect("observed"));
        let ticket =
            gsn_ticket::sign_ticket(n.endpoint().identity(), &network, id, addr, (0, 99), 1 << 40);
        let value = gsn_ticket::directory_value(&ticket);
        let record = crate::wire::Record::sign(
            n.endpoint().identity(),
            gsn_ticket::directory_key(),
            value,
            now.as_micros(),
            now.as_secs() + 3600,
        );
        n.dht_put_record(now, record);
    });
    let refused = w.node(forger).refusals().gsn;
    let probes = w.node(lsn1).survey_stats().probes;
    w.run_for(SURVEY_EVERY + Duration::from_secs(30));
    assert!(w.node(lsn1).survey_stats().probes > probes, "surveyed again");
    assert_eq!(w.node(forger).refusals().gsn, refused, "the forger was never probed");
    // An answer to no probe (from the LAN: the LSN's NAT keeps the GSN out by now).
    let before = w.node(lsn1).refusals().gsn;
    forge(&mut w, child1, lsn1, Message::GsnProbeAck(GsnProbeAck { nonce: 7 }));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.node(lsn1).refusals().gsn, before + 1);
    // Choices from a child, and from an LSN naming a node that is no GSN.
    let master_before = w.master().refusals().gsn;
    let far_id = w.id(far);
    let child_choice = GsnChoice { gsn: Some(far_id), rtt_ms: 1 };
    w.node_do(child1, |n, now| n.send(now, master_addr(), Message::GsnChoice(child_choice)));
    let no_gsn = GsnChoice { gsn: Some(w.id(child1)), rtt_ms: 1 };
    w.node_do(lsn1, |n, now| n.send(now, master_addr(), Message::GsnChoice(no_gsn)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.master().refusals().gsn, master_before + 2);
    assert_eq!(w.master().gsn_choice(&w.id(child1)), None);
    assert_eq!(w.master().gsn_choice(&w.id(lsn1)).map(|(g, _)| g), Some(w.id(near)));
}

#[test]
fn a_gsn_that_parts_is_named_no_more_until_it_reports_again() {
    let (mut w, near, _, [lsn1, _], _) = world(74);
    let near_id = w.id(near);
    // Alone in its subnet, it is an LSN: the master notices its crash itself.
    w.crash(near);
    w.run_until(Duration::from_secs(600), |s| !s.master().gsns().contains(&near_id));
    assert!(!w.master().is_present(&near_id));
    assert_eq!(w.master().gsn_choice(&w.id(lsn1)), None, "the choice naming it went with it");
    // Restarted, it classifies its NAT again, reports, and is appointed again.
    w.start(near);
    w.run_until(Duration::from_secs(300), |s| s.master().gsns().contains(&near_id));
    w.run_for(Duration::from_secs(1));
    assert!(w.node(near).is_gsn());
}

#[test]
fn a_gsn_that_stops_answering_is_not_kept_on_an_old_round_trip() {
    let (mut w, near, _, [lsn1, _], _) = world(75);
    assert_eq!(w.node(lsn1).gsn_choice().map(|(g, _)| g), Some(w.id(near)));
    // Its ticket stays in the directory for hours; it answers no probe.
    w.crash(near);
    w.run_for(SURVEY_EVERY + Duration::from_secs(30));
    let (chosen, rtt) = w.node(lsn1).gsn_choice().expect("a choice");
    assert_ne!(chosen, w.id(near), "kept on its old round trip");
    assert!(w.master().gsns().contains(&chosen), "{chosen:?}");
    assert!(rtt >= Duration::from_millis(90), "a far one: {rtt:?}");
}

#[test]
fn without_gsns_surveys_back_off() {
    // Behind NATs only: nobody takes unsolicited inbound, the master appoints no GSN.
    let mut w = Simulation::new(76);
    w.keep_events = false;
    w.set_nat(1, NatKind::PortRestricted);
    let nodes: Vec<usize> = (0..3).map(|_| w.add(1)).collect();
    w.run_until(Duration::from_secs(60), |s| s.all_present());
    let lsn = nodes.iter().copied().find(|&i| w.node(i).state() == NodeState::IsLsn).unwrap();
    w.run_for(Duration::from_secs(2 * 3600));
    assert!(w.master().gsns().is_empty());
    // 1 min after it became LSN, then 5, 10, 20 and 40 min apart (the next 80 min later).
    let stats = w.node(lsn).survey_stats();
    assert_eq!((stats.surveys, stats.probes, stats.choices), (5, 0, 0), "{stats:?}");
    // Moved to a subnet of its own, it leads there: its surveys start over (1, 6, 16 min).
    w.set_nat(2, NatKind::PortRestricted);
    w.move_node(lsn, 2);
    w.run_until(Duration::from_secs(60), |s| s.node(lsn).state() == NodeState::IsLsn);
    w.run_for(Duration::from_secs(20 * 60));
    let after = w.node(lsn).survey_stats().surveys - stats.surveys;
    assert_eq!(after, 3, "surveys in the 20 minutes after the move");
}
