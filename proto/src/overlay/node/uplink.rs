//! The LSN's link to the master: registration (a Join), keepalives just frequent enough to
//! hold NAT mappings (`keepalive.rs`), and presence deltas with a digest of the child set,
//! retransmitted until acknowledged.

use std::{net::SocketAddr, time::Duration};

use super::{
    keepalive::{Due, KeepalivePlan},
    Node, NodeEvent, NodeState, Probe,
};
use crate::{
    overlay::child_digest,
    trust::Certificate,
    wire::{Join, Message, Ping, Pong, PresenceChange, PresenceKind, Update, WireAddr},
    NodeId, Timestamp,
};

/// Most changes in one Update (keeps it well inside one datagram).
const MAX_CHANGES: usize = 100;
/// Most certificates sent to the master in one go, and the gap before the next ones: after
/// the master restarted, an LSN re-reports every child, and all their certificates in one
/// second would make it the fleet's busiest host. (A child's certificate only lets the master
/// seal messages to it.)
const CERT_BATCH: usize = 10;
const CERT_GAP: Duration = Duration::from_secs(1);
/// At most this often does a Resync make us send every certificate again.
const CERTS_AGAIN: Duration = Duration::from_secs(60);
/// A Join goes this many times over the same session, half `join_timeout` apart and the last
/// one a whole `join_timeout`, before the master counts as unreachable (6 s by default). A
/// single Join cost a new LSN 4.5 s of absence at the master whenever it or its Ack was lost
/// (5 % loss, two LSN crashes in a row); three still failed together 4.7 % of the time at 20 %
/// loss each way, and dropping the session to start afresh then cost 5 s more. Five fail
/// together 0.6 % of the time. (A master that restarted and forgot the session answers the
/// first Join with a stale-session notice, `endpoint/stale.rs`, so waiting longer costs it
/// nothing.) Tries after the first go as two copies, and a master heard from since the first
/// try is given as many tries again before the session is dropped (`uplink_timers`).
const JOIN_TRIES: u32 = 5;
/// The wait before registering again after the master was lost the first time (it doubles
/// each time after, up to `max_backoff`).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

pub(crate) struct Uplink {
    registered: bool,
    join: Option<Probe>,
    /// When the Join went last (it is resent while unanswered: see [`JOIN_TRIES`]).
    join_sent: Timestamp,
    /// When this registration's first Join went.
    join_first: Timestamp,
    retry_at: Option<Timestamp>,
    backoff: Duration,
    /// Keepalives and liveness checks; `None` until registered.
    plan: Option<KeepalivePlan>,
    /// A liveness check (Ping) awaiting its Pong.
    keepalive: Option<Probe>,
    queue: Vec<PresenceChange>,
    certs: Vec<Certificate>,
    /// When the next batch of `certs` goes (more than [`CERT_BATCH`] were queued).
    certs_at: Option<Timestamp>,
    /// Not before this do the master's Resyncs queue every certificate again.
    certs_again_at: Timestamp,
    inflight: Option<(Probe, Update)>,
    batch_at: Option<Timestamp>,
    digest_at: Timestamp,
    /// The dead LSNs this one replaced (the one it succeeded and, in a cascade, the one that
    /// LSN had just replaced), reported lost with the first update.
    pub(super) replaced: Vec<NodeId>,
}

impl Uplink {
    pub(crate) fn new(now: Timestamp, replaced: Option<NodeId>) -> Self {
        Uplink {
            registered: false,
            join: None,
            join_sent: now,
            join_first: now,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            plan: None,
            keepalive: None,
            queue: Vec::new(),
            certs: Vec::new(),
            certs_at: None,
            certs_again_at: now,
            inflight: None,
            batch_at: None,
            digest_at: now,
            replaced: replaced.into_iter().collect(),
        }
    }

    pub(crate) fn registered(&self) -> bool {
        self.registered
    }
}

impl Node {
    fn uplink(&mut self) -> Option<&mut Uplink> {
        self.role.as_mut().map(|r| &mut r.uplink)
    }

    /// The master asked for our child list (`Resync`): it may lack a child's certificate,
    /// since they travel to it unacknowledged. Sends ours and every child's again, paced by
    /// [`CERT_BATCH`] per [`CERT_GAP`], at most once per [`CERTS_AGAIN`].
    pub(super) fn send_certificates_again(&mut self, now: Timestamp) {
        let Some(role) = self.role.as_ref() else { return };
        if now < role.uplink.certs_again_at {
            return;
        }
        let mut certs: Vec<Certificate> = self.ep.certificate().cloned().into_iter().collect();
        let children = role.children.keys().filter_map(|id| self.ep.peer_certificate(id));
        certs.extend(children.cloned());
        let Some(up) = self.uplink() else { return };
        up.certs_again_at = now + CERTS_AGAIN;
        up.certs.retain(|c| !certs.iter().any(|n| n.node_id() == c.node_id()));
        up.certs.extend(certs);
        up.certs_at = Some(now);
    }

    /// The child set's digest, when one is due (every `digest_interval` without an update
    /// that carried one) and the master holds what we sent: nothing queued or unacknowledged,
    /// so a mismatch means its view diverged, not that an update is on its way.
    fn digest_due(&mut self, now: Timestamp) -> Option<crate::wire::Digest> {
        let interval = self.cfg.digest_interval;
        let role = self.role.as_mut()?;
        let up = &mut role.uplink;
        let settled = up.inflight.is_none() && up.queue.is_empty() && up.batch_at.is_none();
        if now < up.digest_at || !settled {
            return None;
        }
        up.digest_at = now + interval;
        Some(child_digest(role.child_ids()))
    }

    pub(super) fn master_id(&self) -> NodeId {
        self.ep.trust().network().master_id()
    }

    /// Registers with the master as the subnet's LSN.
    pub(super) fn uplink_register(&mut self, now: Timestamp) {
        let seq = self.next_seq();
        let (master, id) = (self.cfg.master, self.master_id());
        let Some(up) = self.uplink() else { return };
        up.retry_at = None;
        up.join_first = now;
        self.ep.connect(now, master, Some(id));
        self.send_join(now, Probe { seq, deadline: now, tries: 0 });
    }

    /// Sends the Join of registration `probe` (again, when `tries` > 0), and sets when the
    /// next try is due: the master's handling of a Join is idempotent.
    fn send_join(&mut self, now: Timestamp, probe: Probe) {
        let tries = probe.tries + 1;
        let wait = self.cfg.join_timeout / if tries == JOIN_TRIES { 1 } else { 2 };
        let join = Join {
            seq: probe.seq,
            local: WireAddr(self.local_addr()),
            prefix_len: self.cfg.local.prefix_len,
            uptime_secs: self.uptime_secs(now),
        };
        let Some(up) = self.uplink() else { return };
        up.join = Some(Probe { deadline: now + wait, tries, ..probe });
        up.join_sent = now;
        // Still no session: the first Join waits in its queue, and the handshake is what was
        // lost, so its message goes again instead. Only on a first attempt (a new LSN, or the
        // first since the master answered): while the master is down, every try would send
        // 512 bytes (the standard day's outage: 8 WAN B/node-hour more).
        let fresh = up.backoff == FIRST_BACKOFF;
        if tries > 1 && fresh && self.ep.hasten(self.cfg.master) {
            return;
        }
        // After a try went unanswered the path is lossy: two copies (a Join is ~44 bytes, and
        // a new LSN's presence at the master waits on it).
        for _ in 0..if tries > 1 { 2 } else { 1 } {
            self.send(now, self.cfg.master, Message::Join(join));
        }
    }

    /// Queues a presence change (with the child's certificate when it joined).
    pub(super) fn queue_change(
        &mut self,
        now: Timestamp,
        change: PresenceChange,
        cert: Option<Certificate>,
    ) {
        let batch = self.cfg.update_batch;
        let Some(up) = self.uplink() else { return };
        // A newer change for the same node supersedes an unsent older one.
        up.queue.retain(|c| c.node != change.node);
        up.queue.push(change);
        up.certs.extend(cert);
        up.batch_at.get_or_insert(now + batch);
    }

    pub(super) fn uplink_ack(&mut self, now: Timestamp, peer: NodeId, seq: u32) -> bool {
        if peer != self.master_id() {
            return false;
        }
        let registration = self.uplink().filter(|up| up.join.is_some_and(|p| p.seq == seq));
        if let Some(sent) = registration.map(|up| up.join_sent) {
            self.master_answered(now, sent);
        }
        let Some(role) = self.role.as_mut() else { return false };
        let up = &mut role.uplink;
        if up.join.is_some_and(|p| p.seq == seq) {
            up.join = None;
            up.registered = true;
            up.backoff = FIRST_BACKOFF;
            up.plan = Some(KeepalivePlan::new(now, &self.cfg));
            // The master knows nothing of our children yet (first registration, or it
            // restarted): send the whole set, which the deltas then keep current.
            let mut full: Vec<PresenceChange> = role
                .children
                .values()
                .map(|c| PresenceChange {
                    node: c.id,
                    kind: PresenceKind::Joined,
                    addr: WireAddr(c.addr),
                })
                .collect();
            // The LSN we replaced goes after its children (ours now, adopted or joined): the
            // master moves them to us first, and only names in its Adopt those we missed.
            for old in std::mem::take(&mut up.replaced) {
                full.push(PresenceChange {
                    node: old,
                    kind: PresenceKind::Parted(crate::wire::PartReason::Lost),
                    addr: WireAddr(self.cfg.listen),
                });
            }
            // Adopted children were admitted through the LSN we replaced: the master has
            // their certificates.
            let joined =
                |id: &NodeId| role.children.get(id).is_some_and(|c| c.adopted_from.is_none());
            let certs: Vec<Certificate> = full
                .iter()
                .filter(|c| joined(&c.node))
                .filter_map(|c| self.ep.peer_certificate(&c.node).cloned())
                .collect();
            let up = &mut self.role.as_mut().expect("checked above").uplink;
            up.queue.retain(|q| !full.iter().any(|f| f.node == q.node));
            full.append(&mut up.queue);
            up.queue = full;
            up.certs = certs;
            up.certs_at = None;
            up.inflight = None;
            up.batch_at = Some(now);
            return true;
        }
        if up.inflight.as_ref().is_some_and(|(p, _)| p.seq == seq) {
            up.inflight = None;
            if !up.queue.is_empty() {
                up.batch_at = Some(now);
            }
            return true;
        }
        false
    }

    pub(super) fn uplink_pong(
        &mut self,
        _now: Timestamp,
        peer: NodeId,
        _addr: SocketAddr,
        pong: Pong,
    ) {
        if peer != self.master_id() {
            return;
        }
        if let Some(up) = self.uplink() {
            if up.keepalive.is_some_and(|p| p.seq == pong.seq) {
                up.keepalive = None;
            }
        }
    }

    /// The master's echo of a keepalive (see `keepalive.rs`).
    pub(super) fn uplink_echo(&mut self, now: Timestamp, peer: NodeId) {
        if peer != self.master_id() {
            return;
        }
        let cfg = self.cfg.clone();
        if let Some(plan) = self.uplink().and_then(|up| up.plan.as_mut()) {
            plan.echoed(now, &cfg);
        }
    }

    /// Notes that something came from the master (see [`KeepalivePlan::heard`]).
    pub(super) fn uplink_heard(&mut self, now: Timestamp) {
        let cfg = &self.cfg;
        if let Some(plan) = self.role.as_mut().and_then(|r| r.uplink.plan.as_mut()) {
            plan.heard(now, cfg);
        }
    }

    /// Notes that something went to the master (it refreshed the NAT mapping).
    pub(super) fn uplink_sent(&mut self, now: Timestamp) {
        if let Some(plan) = self.uplink().and_then(|up| up.plan.as_mut()) {
            plan.sent(now);
        }
    }

    /// The master could not be reached: keep the subnet running, retry with backoff.
    pub(super) fn uplink_unreachable(&mut self, now: Timestamp, addr: SocketAddr) {
        if addr != self.cfg.master || self.state != NodeState::IsLsn {
            return;
        }
        self.master_lost(now);
    }

    fn master_lost(&mut self, now: Timestamp) {
        let id = self.master_id();
        let max = self.cfg.max_backoff;
        let Some(up) = self.uplink() else { return };
        up.registered = false;
        up.join = None;
        up.keepalive = None;
        up.plan = None;
        up.inflight = None;
        up.retry_at = Some(now + up.backoff);
        up.backoff = (up.backoff * 2).min(max);
        // Its sessions are gone if it restarted; start afresh. Registered or not: a Join sent
        // just before the master died is retried over the same session otherwise, which the
        // new master drops unanswered until the session idles out (180 s), the subnet absent
        // all the while. (No session, when the master was unreachable: nothing to close.)
        self.ep.close(&id);
        self.events.push_back(NodeEvent::MasterUnreachable);
    }

    pub(super) fn uplink_timers(&mut self, now: Timestamp) {
        let cfg = self.cfg.clone();
        let master = cfg.master;
        let heard = self.ep.last_heard(&self.master_id());
        let Some(role) = self.role.as_mut() else { return };
        let up = &mut role.uplink;
        if up.retry_at.is_some_and(|t| now >= t) {
            return self.uplink_register(now);
        }
        if let Some(p) = up.join.filter(|p| now >= p.deadline) {
            if p.tries >= JOIN_TRIES {
                // Something came from the master over this session since the first try: it
                // is there and our Joins or its Acks were lost, so keep the session and go on
                // trying (as many times again). Dropping it to start afresh cost a new LSN
                // 2 s more of absence at 20 % loss (two-crash sweep, seed 2).
                let heard = heard.is_some_and(|t| t > up.join_first);
                if !heard || p.tries >= 2 * JOIN_TRIES {
                    return self.master_lost(now);
                }
            }
            return self.send_join(now, p);
        }
        if !up.registered {
            return;
        }
        // A liveness check whose Pong is missing is retried quickly.
        if let Some(p) = up.keepalive.filter(|p| now >= p.deadline) {
            if p.tries > cfg.probe_retries {
                return self.master_lost(now);
            }
            up.keepalive =
                Some(Probe { deadline: now + cfg.probe_timeout * 2, tries: p.tries + 1, ..p });
            self.send(now, master, Message::Ping(Ping { seq: p.seq }));
        }
        let up = &mut self.role.as_mut().expect("checked above").uplink;
        match up.plan.as_mut().and_then(|plan| plan.poll(now, &cfg)) {
            Some(Due::Keepalive(mut k)) => {
                k.digest = self.digest_due(now);
                self.send(now, master, Message::Keepalive(k))
            }
            Some(Due::Check) if up.keepalive.is_none() => {
                let seq = self.next_seq();
                if let Some(up) = self.uplink() {
                    up.keepalive =
                        Some(Probe { seq, deadline: now + cfg.probe_timeout * 2, tries: 1 });
                }
                self.send(now, master, Message::Ping(Ping { seq }));
            }
            Some(Due::Check) => self.uplink_sent(now),
            None => {}
        }
        let up = &mut self.role.as_mut().expect("checked above").uplink;
        if up.certs_at.is_some_and(|t| now >= t) {
            let certs = next_certs(now, up);
            for cert in certs {
                self.send(now, master, Message::Certificate(Box::new(cert)));
            }
        }
        let up = &mut self.role.as_mut().expect("checked above").uplink;
        if let Some((p, update)) = &mut up.inflight {
            if now >= p.deadline {
                let factor = if p.tries < 3 { 1 } else { 1 << (p.tries - 2).min(3) };
                p.deadline = now + cfg.update_retransmit * factor;
                p.tries += 1;
                let update = update.clone();
                self.send(now, master, Message::Update(update));
            }
            return;
        }
        // A due batch goes out even when empty: after a registration it reports the whole
        // child set, which may be none (and an empty batch left due would never clear).
        // The periodic digest rides on a keepalive (`digest_due`); an update carries one
        // whenever it empties the queue.
        if up.batch_at.is_none_or(|t| now < t) {
            return;
        }
        up.batch_at = None;
        up.digest_at = now + cfg.digest_interval;
        let n = up.queue.len().min(MAX_CHANGES);
        let changes: Vec<PresenceChange> = up.queue.drain(..n).collect();
        let certs = if up.certs_at.is_none() { next_certs(now, up) } else { Vec::new() };
        // The digest describes the child set after this update; with changes still queued it
        // would not match what the master will hold, so it waits for the last batch. (Only
        // then is it computed: this runs at every timer of an LSN.)
        let last = up.queue.is_empty();
        if !last {
            up.batch_at = Some(now);
        }
        let digest = self.role.as_ref().filter(|_| last).map(|r| child_digest(r.child_ids()));
        let seq = self.next_seq();
        let me = self.node_id();
        let update = Update { seq, changes, route: vec![me], digest };
        if let Some(up) = self.uplink() {
            up.inflight = Some((
                Probe { seq, deadline: now + cfg.update_retransmit, tries: 1 },
                update.clone(),
            ));
        }
        // Certificates first, so the master can seal messages to the new children at once.
        for cert in certs {
            self.send(now, master, Message::Certificate(Box::new(cert)));
        }
        self.send(now, master, Message::Update(update));
    }

    pub(super) fn uplink_deadline(&self) -> Option<Timestamp> {
        let up = &self.role.as_ref()?.uplink;
        let mut t = [up.retry_at, up.join.map(|p| p.deadline)];
        if up.registered {
            let next = [
                up.keepalive.map(|p| p.deadline),
                up.plan.as_ref().map(KeepalivePlan::deadline),
                up.inflight.as_ref().map(|(p, _)| p.deadline),
                up.inflight.is_none().then_some(up.batch_at).flatten(),
                up.certs_at,
            ];
            return t.into_iter().chain(next).flatten().min();
        }
        t.sort();
        t.into_iter().flatten().min()
    }
}

/// The next batch of queued certificates; schedules the one after.
fn next_certs(now: Timestamp, up: &mut Uplink) -> Vec<Certificate> {
    let n = up.certs.len().min(CERT_BATCH);
    let certs: Vec<Certificate> = up.certs.drain(..n).collect();
    up.certs_at = (!up.certs.is_empty()).then_some(now + CERT_GAP);
    certs
}
