//! The LSN's keepalive towards the master, stretched to what its NAT allows.
//!
//! A keepalive holds the NAT mapping that lets the master reach the subnet. Most of its cost
//! is fixed per subnet, so at night, when a few servers share it, it dominates the fleet's WAN
//! traffic. Keepalives are therefore one-way (the master does not answer them), a liveness
//! check the master answers goes out only every `master_check`, and the period starts at the
//! safe `master_keepalive` but grows to `max_keepalive` once the LSN has proven that its
//! mapping outlives that silence: it asks the master for an echo, stays silent, and sees
//! whether the echo gets in.

use std::time::Duration;

use crate::{overlay::OverlayConfig, wire::Keepalive, Timestamp};

/// How much longer than the period it wants the LSN stays silent in an echo test.
const ECHO_MARGIN: Duration = Duration::from_secs(5);

/// What is due towards the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// A one-way keepalive.
    Keepalive(Keepalive),
    /// A liveness check: a Ping the master answers.
    Check,
}

/// When to send keepalives and checks, and what the NAT has been shown to allow.
#[derive(Clone, Debug)]
pub(crate) struct KeepalivePlan {
    /// The keepalive period now in force.
    period: Duration,
    /// When the next keepalive is due (unless something else goes to the master first).
    next: Timestamp,
    /// When the next liveness check is due.
    check_at: Timestamp,
    /// An echo test under way: when it was asked for, and when to give up on it.
    echo: Option<(Timestamp, Timestamp)>,
    /// When the next echo test may start.
    test_at: Timestamp,
    /// When anything last went to the master.
    last_out: Timestamp,
}

impl KeepalivePlan {
    /// A plan for an LSN registered at `now`.
    pub(crate) fn new(now: Timestamp, cfg: &OverlayConfig) -> Self {
        KeepalivePlan {
            period: cfg.master_keepalive,
            next: now + cfg.master_keepalive,
            check_at: now + cfg.master_check,
            echo: None,
            // One ordinary period first: the registration's own traffic settles.
            test_at: now + cfg.master_keepalive,
            last_out: now,
        }
    }

    /// The keepalive period now in force.
    #[cfg(test)]
    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Something went to the master: it refreshed the mapping, so the keepalive can wait.
    pub(crate) fn sent(&mut self, now: Timestamp) {
        self.last_out = now;
        if self.echo.is_none() {
            self.next = now + self.period;
        }
    }

    /// When [`poll`](Self::poll) has something to do.
    pub(crate) fn deadline(&self) -> Timestamp {
        match self.echo {
            Some((_, give_up)) => give_up,
            None => self.next.min(self.check_at),
        }
    }

    /// What is due at `now`, if anything. The caller sends it and then calls
    /// [`sent`](Self::sent).
    pub(crate) fn poll(&mut self, now: Timestamp, cfg: &OverlayConfig) -> Option<Due> {
        if let Some((asked, give_up)) = self.echo {
            if now < give_up {
                return None;
            }
            // No echo: the mapping did not outlive the silence (or something else went out
            // meanwhile and the test proved nothing: try again after one period).
            self.echo = None;
            let tainted = self.last_out > asked;
            self.test_at = now + if tainted { self.period } else { cfg.keepalive_retest };
            self.next = now;
        }
        // A check is due on its own time: traffic that went to the master (and put the
        // keepalive off) proves nothing about the master answering. Gated behind the next
        // keepalive, a check waited up to a period longer for every message sent (a GSN's
        // directory put moved a lost master's detection from 130 s to 136 s after its last
        // word).
        if now >= self.check_at {
            self.check_at = now + cfg.master_check;
            return Some(Due::Check);
        }
        if now < self.next {
            return None;
        }
        let longer = cfg.max_keepalive;
        if self.period < longer && now >= self.test_at {
            let echo_after = longer + ECHO_MARGIN;
            let give_up = echo_after + cfg.probe_timeout * 2;
            self.echo = Some((now, now + give_up));
            return Some(Due::Keepalive(Keepalive {
                interval_secs: secs(give_up + Duration::from_secs(1)),
                echo_after_secs: secs(echo_after),
                digest: None,
            }));
        }
        let k = Keepalive { interval_secs: secs(self.period), echo_after_secs: 0, digest: None };
        Some(Due::Keepalive(k))
    }

    /// Something authentic came from the master: it is alive and holds our session, which is
    /// all a check would learn, so the next check waits a whole `master_check` from now.
    pub(crate) fn heard(&mut self, now: Timestamp, cfg: &OverlayConfig) {
        self.check_at = self.check_at.max(now + cfg.master_check);
    }

    /// The master's echo arrived. A keepalive falls due at once: inbound traffic need not
    /// refresh a NAT mapping.
    pub(crate) fn echoed(&mut self, now: Timestamp, cfg: &OverlayConfig) {
        let Some((asked, _)) = self.echo.take() else { return };
        if self.last_out <= asked {
            // Silent since the request, and the master still got through: the mapping
            // outlives `max_keepalive`.
            self.period = cfg.max_keepalive.max(self.period);
        } else {
            self.test_at = now + self.period;
        }
        // The echo proves the master alive too.
        self.check_at = now + cfg.master_check;
        self.next = now;
    }
}

fn secs(d: Duration) -> u16 {
    u16::try_from(d.as_secs()).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn cfg() -> OverlayConfig {
        let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        OverlayConfig::new(a, "10.0.0.2:4000".parse().unwrap())
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::ZERO + Duration::from_secs(s)
    }

    #[test]
    fn keepalives_wait_for_the_period_and_other_traffic_defers_them() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        assert_eq!(p.poll(at(10), &c), None);
        p.sent(at(20)); // an update went out
        assert_eq!(p.poll(at(25), &c), None);
        assert_eq!(p.deadline(), at(45));
    }

    #[test]
    fn a_check_falls_due_on_time_however_much_else_goes_to_the_master() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        // Something goes out every 20 s: no keepalive is ever needed.
        let check = c.master_check.as_secs();
        let mut t = 0;
        while t + 20 < check {
            t += 20;
            p.sent(at(t));
            assert_eq!(p.poll(at(t), &c), None, "at {t} s");
        }
        assert_eq!(p.deadline(), at(check), "the check's own time, not the keepalive's");
        assert_eq!(p.poll(at(check), &c), Some(Due::Check));
    }

    #[test]
    fn an_echo_that_gets_through_lengthens_the_period() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        let Some(Due::Keepalive(k)) = p.poll(at(25), &c) else { panic!("keepalive due") };
        assert_eq!(k.echo_after_secs, 50, "asks for an echo after max_keepalive + margin");
        assert!(u64::from(k.interval_secs) > 50, "the master must not time us out meanwhile");
        p.sent(at(25));
        assert_eq!(p.poll(at(70), &c), None, "silent while waiting for the echo");
        p.echoed(at(75), &c);
        assert_eq!(p.period(), c.max_keepalive);
        let Some(Due::Keepalive(k)) = p.poll(at(75), &c) else { panic!("refresh at once") };
        assert_eq!((k.interval_secs, k.echo_after_secs), (45, 0));
        p.sent(at(75));
        assert_eq!(p.deadline(), at(120));
    }

    #[test]
    fn a_lost_echo_keeps_the_short_period_and_retests_much_later() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        assert!(matches!(p.poll(at(25), &c), Some(Due::Keepalive(_))));
        p.sent(at(25));
        // Give-up time: 25 + 50 + 2 × probe_timeout (1 s).
        assert_eq!(p.deadline(), at(77));
        // Something goes out at once to reopen the mapping (here the overdue check).
        match p.poll(at(77), &c) {
            Some(Due::Check) => {}
            Some(Due::Keepalive(k)) => assert_eq!(k.echo_after_secs, 0),
            None => panic!("the mapping must be refreshed at once"),
        }
        assert_eq!(p.period(), c.master_keepalive);
        p.sent(at(77));
        let retest = 77 + c.keepalive_retest.as_secs();
        let mut t = 77;
        while t < retest - 25 {
            t = p.deadline().as_secs();
            match p.poll(at(t), &c) {
                Some(Due::Keepalive(k)) => {
                    assert_eq!(k.echo_after_secs, 0, "no test before {retest}")
                }
                Some(Due::Check) | None => {}
            }
            p.sent(at(t));
        }
    }

    #[test]
    fn other_traffic_during_the_test_proves_nothing() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        assert!(matches!(p.poll(at(25), &c), Some(Due::Keepalive(_))));
        p.sent(at(25));
        p.sent(at(40)); // an update refreshed the mapping
        p.echoed(at(90), &c);
        assert_eq!(p.period(), c.master_keepalive);
    }

    #[test]
    fn word_from_the_master_postpones_the_check() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        let check = c.master_check.as_secs();
        // An Ack just before the check was due: the check waits a whole period from it.
        p.heard(at(check - 10), &c);
        let mut t = 0;
        let mut first_check = None;
        while t < 3 * check && first_check.is_none() {
            t = p.deadline().as_secs();
            if let Some(Due::Check) = p.poll(at(t), &c) {
                first_check = Some(t);
            }
            p.sent(at(t));
        }
        let first = first_check.expect("a check within three periods");
        assert!(first >= 2 * check - 10, "checked at {first} s, heard at {} s", check - 10);
        // Word that came long ago does not pull the check closer.
        let mut q = KeepalivePlan::new(at(0), &c);
        q.heard(at(check + 60), &c);
        q.heard(at(5), &c);
        assert!(!matches!(q.poll(at(2 * check + 30), &c), Some(Due::Check)));
    }

    #[test]
    fn checks_come_every_master_check() {
        let c = cfg();
        let mut p = KeepalivePlan::new(at(0), &c);
        let mut checks = Vec::new();
        let mut t = 0;
        while t < 600 {
            t = p.deadline().as_secs();
            if let Some(Due::Check) = p.poll(at(t), &c) {
                checks.push(t);
            }
            p.sent(at(t));
        }
        assert!(checks.len() >= 4, "{checks:?}");
        assert!(
            checks
                .windows(2)
                .all(|w| w[1] - w[0] <= (c.master_check + c.master_keepalive).as_secs()),
            "{checks:?}"
        );
    }
}
