//! The registry's indexes against a full scan.

use super::*;
use crate::wire::WireAddr;

fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 20])
}

fn contact(n: u8) -> Contact {
    Contact { id: id(n), addr: WireAddr(addr(n)) }
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 4000))
}

fn subnet(n: u8) -> SubnetKey {
    SubnetKey::new([10, n, 0, 1].into(), 24, [192, 0, 2, n].into())
}

fn joined(n: u8) -> PresenceChange {
    PresenceChange { node: id(n), kind: PresenceKind::Joined, addr: WireAddr(addr(n)) }
}

/// LSNs 1 and 2 in subnet 1, 3 in subnet 2, registered at `t`.
fn three_lsns(t: Timestamp) -> Registry {
    let mut r = Registry::default();
    r.register_lsn(t, subnet(1), contact(1), addr(1));
    r.register_lsn(t, subnet(1), contact(2), addr(2));
    r.register_lsn(t, subnet(2), contact(3), addr(3));
    r
}

/// The indexed answers equal a pass over every record.
fn check(r: &Registry) {
    let lsns: BTreeSet<NodeId> =
        r.nodes.values().map(|rec| rec.lsn).chain(r.lsns.keys().copied()).collect();
    for lsn in &lsns {
        let scan: Vec<NodeId> = r
            .nodes
            .iter()
            .filter(|(id, rec)| rec.lsn == *lsn && *id != lsn && rec.pending.is_none())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(r.children_of(lsn), scan, "children of {lsn:?}");
    }
    let subnets: BTreeSet<SubnetKey> = r.lsns.values().map(|l| l.subnet).collect();
    for s in &subnets {
        let scan: Vec<Contact> =
            r.lsns.values().filter(|l| l.subnet == *s).map(|l| l.contact).collect();
        assert_eq!(r.subnet_lsns(s), scan);
    }
    assert_eq!(r.under.census(), (r.nodes.len(), false), "each record filed once");
    assert_eq!(r.lsns_by_subnet.census(), (r.lsns.len(), false), "each LSN filed once");
}

#[test]
fn the_indexes_follow_joins_moves_failovers_and_expiry() {
    let cfg = MasterConfig::default();
    let t = Timestamp::from_secs(1);
    let mut r = three_lsns(t);
    for n in 10..20 {
        r.apply(t, &id(1), &joined(n), &[id(1)], &cfg);
    }
    for n in 20..25 {
        r.apply(t, &id(3), &joined(n), &[id(3)], &cfg);
    }
    check(&r);
    assert_eq!(r.children_of(&id(1)).len(), 10);
    // Children change LSN: rerouted within the subnet, moved to another.
    r.apply(t, &id(2), &joined(10), &[id(2)], &cfg);
    r.apply(t, &id(3), &joined(11), &[id(3)], &cfg);
    check(&r);
    assert_eq!(r.children_of(&id(1)).len(), 8);
    assert_eq!(r.children_of(&id(2)), vec![id(10)]);
    // A standby reports its LSN gone: the children wait, then expire.
    assert_eq!(r.replaced_children(&id(2), &id(1)).map(|c| c.len()), Some(8));
    let gone = PresenceChange {
        node: id(1),
        kind: PresenceKind::Parted(PartReason::Lost),
        addr: WireAddr(addr(1)),
    };
    r.apply(t, &id(2), &gone, &[id(2)], &cfg);
    check(&r);
    assert!(r.children_of(&id(1)).is_empty(), "pending children are not listed");
    assert_eq!(r.subnet_lsns(&subnet(1)), vec![contact(2)]);
    // The new LSN reports some of them; the rest part when the grace ends.
    for n in 12..15 {
        r.apply(t, &id(2), &joined(n), &[id(2)], &cfg);
    }
    check(&r);
    r.expire(t + cfg.grace + Duration::from_secs(1), &cfg);
    check(&r);
    assert_eq!(r.children_of(&id(2)), vec![id(10), id(12), id(13), id(14)]);
    // An LSN re-registers for another subnet (it moved) and a resync trims a list.
    r.register_lsn(t, subnet(3), contact(3), addr(3));
    r.resync(t, &id(3), &[contact(20), contact(21)], &cfg);
    check(&r);
    assert_eq!(r.children_of(&id(3)), vec![id(20), id(21)]);
    assert_eq!(r.subnet_lsns(&subnet(3)), vec![contact(3)]);
    assert!(r.subnet_lsns(&subnet(2)).is_empty());
}

/// A dead LSN that its successor took over as a child (a cascade) and then reports lost is an
/// ordinary lost child, not another takeover claim: the claim path does not apply the loss,
/// so the dead node stayed present for good (two LSN crashes at 20 % loss, seed 41).
#[test]
fn a_former_lsn_reported_lost_by_the_lsn_it_is_filed_under_is_an_ordinary_loss() {
    let cfg = MasterConfig::default();
    let mut r = Registry::default();
    let t = Timestamp::from_secs(1);
    r.register_lsn(t, subnet(1), contact(1), addr(1));
    r.register_lsn(t, subnet(1), contact(2), addr(2));
    let lost = |n| PresenceChange {
        node: id(n),
        kind: PresenceKind::Parted(PartReason::Lost),
        addr: WireAddr(addr(n)),
    };
    // 2 replaces 1, and within the grace it files 1 as its child.
    assert!(r.replaced_children(&id(2), &id(1)).is_some());
    r.apply(t, &id(2), &lost(1), &[id(2)], &cfg);
    r.apply(t, &id(2), &joined(1), &[id(2)], &cfg);
    assert!(r.is_present(&id(1)));
    assert_eq!(r.children_of(&id(2)), vec![id(1)]);
    // Its loss, reported by 2 before the grace ends (1 is still among the gone LSNs), is
    // applied as a child's.
    assert_eq!(r.replaced_children(&id(2), &id(1)), None);
    r.apply(t, &id(2), &lost(1), &[id(2)], &cfg);
    assert!(!r.is_present(&id(1)));
    check(&r);
}

#[test]
fn an_lsn_that_yields_to_its_rival_is_filed_under_it_at_once_on_its_word() {
    let cfg = MasterConfig::default();
    let t = Timestamp::from_secs(1);
    let mut r = three_lsns(t);
    r.apply(t, &id(1), &joined(10), &[id(1)], &cfg);
    // A rival of another subnet, or itself, is no place to file it: an ordinary part.
    assert!(r.yielded(t, &id(1), &id(3), &cfg).is_none());
    assert!(r.yielded(t, &id(1), &id(1), &cfg).is_none());
    assert!(r.is_lsn(&id(1)));
    let events = r.yielded(t, &id(1), &id(2), &cfg).expect("same subnet");
    assert!(
        matches!(events[..], [PresenceEvent::Rerouted { node, from, to }]
            if node == id(1) && from == id(1) && to == id(2)),
        "{events:?}"
    );
    check(&r);
    assert!(r.is_present(&id(1)) && !r.is_lsn(&id(1)));
    assert_eq!(r.next_hop(&id(1)), Some((id(2), addr(2))));
    assert!(!r.is_present(&id(10)), "its children wait for whoever reports them");
    // The rival's list, sent before the yielder's Join reached it: pending, not parted.
    let soon = t + Duration::from_secs(1);
    assert!(r.resync(soon, &id(2), &[], &cfg).is_empty());
    assert!(!r.is_present(&id(1)));
    // Listed at last: present again.
    let listed = r.resync(soon, &id(2), &[contact(1), contact(10)], &cfg);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(r.is_present(&id(1)) && r.is_present(&id(10)));
    check(&r);
    // Past the grace period its word no longer counts: a list without it parts it.
    let late = t + cfg.grace + Duration::from_secs(1);
    let parted = r.resync(late, &id(2), &[contact(10)], &cfg);
    assert!(
        matches!(parted[..], [PresenceEvent::Parted { node, reason: PartReason::Lost }] if node == id(1)),
        "{parted:?}"
    );
    check(&r);
}
