//! Enrollment on the virtual-time harness: tokens, refusals, lost answers, and the rule that
//! a node without a certificate talks only to the master.

use std::time::Duration;

use super::*;
use crate::{
    endpoint::EndpointConfig,
    harness::{Fixture, Net, Verdict, T0},
    secure::HandshakeError,
    trust::{OpenEnrollment, TokenEnrollment},
    wire::ErrorCode,
};

const SECOND: Duration = Duration::from_secs(1);

fn master_net(
    policy: impl crate::trust::EnrollmentPolicy + 'static,
    seed: u64,
) -> (Net, Fixture, usize) {
    let fx = Fixture::new(seed);
    let mut net = Net::new();
    let config = EndpointConfig::master(fx.authority.clone(), policy, T0);
    let m = net.add(config, 100);
    (net, fx, m)
}

#[test]
fn a_new_node_enrolls_with_a_token_then_talks_to_certified_peers() {
    let mut tokens = TokenEnrollment::new();
    tokens.add_token("t-1");
    let (mut net, mut fx, m) = master_net(tokens, 20);
    let id = fx.identity();
    let node_id = id.node_id();
    let n = net.add(EndpointConfig::new(id, fx.authority.network_key()).enroll_token("t-1"), 1);
    let addr_m = net.addr(m);
    net.with(n, |e, now| e.connect(now, addr_m, None));
    net.run_for(2 * SECOND);
    let ev = net.events(n);
    let cert = ev
        .iter()
        .find_map(|e| match e {
            Event::Enrolled { certificate } => Some(certificate.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert_eq!(cert.node_id(), node_id);
    assert!(net
        .events(m)
        .iter()
        .any(|e| matches!(e, Event::PeerEnrolled { peer, .. } if *peer == node_id)));
    assert_eq!(net.nodes[n].endpoint.certificate(), Some(&*cert));

    // Now certified: a session with an ordinary node works.
    let p = net.add(fx.node(), 2);
    let addr_p = net.addr(p);
    net.with(n, |e, now| e.connect(now, addr_p, None));
    net.run_until(5 * SECOND, |net| connected(net, n, p));
}

#[test]
fn enrollment_with_a_wrong_token_fails_visibly_on_both_sides() {
    let mut tokens = TokenEnrollment::new();
    tokens.add_token("right");
    let (mut net, mut fx, m) = master_net(tokens, 21);
    let id = fx.identity();
    let n = net.add(EndpointConfig::new(id, fx.authority.network_key()).enroll_token("wrong"), 1);
    let addr_m = net.addr(m);
    net.with(n, |e, now| e.connect(now, addr_m, None));
    net.run_for(2 * SECOND);
    let ev = net.events(n);
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::EnrollmentFailed { error } if error.code == ErrorCode::REFUSED)
        ),
        "{ev:?}"
    );
    assert!(net.nodes[n].endpoint.certificate().is_none());
    let ev = net.events(m);
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::EnrollmentRefused { error: crate::trust::EnrollError::InvalidToken, .. }
        )),
        "{ev:?}"
    );
}

#[test]
fn enrollment_survives_a_lost_answer_without_spending_a_second_token() {
    let mut tokens = TokenEnrollment::new();
    tokens.add_token("once");
    let (mut net, mut fx, m) = master_net(tokens, 22);
    let id = fx.identity();
    let n = net.add(EndpointConfig::new(id, fx.authority.network_key()).enroll_token("once"), 1);
    let addr_m = net.addr(m);
    // Drop the master's first data packet carrying more than a confirmation (the certificate).
    let mut dropped = false;
    net.set_filter(move |src, _, bytes| {
        if src == addr_m && bytes[0] == 0x14 && bytes.len() > 100 && !dropped {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.with(n, |e, now| e.connect(now, addr_m, None));
    net.run_for(5 * SECOND);
    assert!(net.nodes[n].endpoint.certificate().is_some(), "{:?}", net.events(n));
}

#[test]
fn a_node_without_certificate_only_talks_to_the_master() {
    let (mut net, mut fx, _m) = master_net(OpenEnrollment::default(), 23);
    let p = net.add(fx.node(), 1);
    let id = fx.identity();
    let n = net.add(EndpointConfig::new(id, fx.authority.network_key()), 2);
    let addr_p = net.addr(p);
    net.with(n, |e, now| e.connect(now, addr_p, None));
    net.run_for(2 * SECOND);
    let ev = net.events(n);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ConnectFailed { error: HandshakeError::NotMaster, .. })),
        "{ev:?}"
    );
    // And an ordinary node refuses an enrollment handshake.
    let ev = net.events(p);
    assert!(!ev.iter().any(|e| matches!(e, Event::Connected { .. })), "{ev:?}");
}

#[test]
fn a_refused_enrollment_session_closes_after_the_handshake_timeout_not_the_idle_timeout() {
    let mut tokens = TokenEnrollment::new();
    tokens.add_token("right");
    let (mut net, mut fx, m) = master_net(tokens, 24);
    let addr_m = net.addr(m);
    // A refused one and one that enrolls: only the refused one's session goes early.
    let refused = net.add(
        EndpointConfig::new(fx.identity(), fx.authority.network_key()).enroll_token("wrong"),
        1,
    );
    let enrolled = net.add(
        EndpointConfig::new(fx.identity(), fx.authority.network_key()).enroll_token("right"),
        2,
    );
    net.with(refused, |e, now| e.connect(now, addr_m, None));
    net.with(enrolled, |e, now| e.connect(now, addr_m, None));
    net.run_for(2 * SECOND);
    assert!(net.nodes[enrolled].endpoint.certificate().is_some());
    assert_eq!(net.nodes[m].endpoint.peers().count(), 2, "both sessions up");
    // handshake_timeout (10 s) after the refused node last spoke, its session is gone.
    net.run_for(10 * SECOND);
    let refused_id = net.nodes[refused].endpoint.node_id();
    let enrolled_id = net.nodes[enrolled].endpoint.node_id();
    let peers: Vec<NodeId> = net.nodes[m].endpoint.peers().collect();
    assert_eq!(peers, vec![enrolled_id], "the refused {refused_id} is gone, the enrolled stays");
    // The certified one keeps the ordinary idle timeout (180 s).
    net.run_for(160 * SECOND);
    assert!(net.nodes[m].endpoint.is_connected(&enrolled_id));
}
