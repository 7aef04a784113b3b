//! The master's side of LSN keepalives (`overlay/node/keepalive.rs`): each keepalive
//! restarts the LSN's silence timer with the period it announces, and an echo asked for goes
//! back after the silence the LSN wants to test.

use std::{net::SocketAddr, time::Duration};

use super::Master;
use crate::{
    wire::{ErrorCode, ErrorMessage, Keepalive, Message},
    NodeId, Timestamp,
};

/// Longest keepalive period an LSN may announce. Its silence timeout grows with the period,
/// so an unbounded claim (`u32::MAX` seconds) would keep a dead LSN and its children present
/// for ever. Ten times the default longest period (60 s).
const MAX_KEEPALIVE_PERIOD: Duration = Duration::from_secs(600);

/// The longest echo delay an LSN may ask for (its keepalive test needs about a minute).
const MAX_ECHO_SECS: u16 = 600;

impl Master {
    /// Only LSNs keep a link to the master alive; one that is not registered (a standby
    /// reported it dead, or we restarted) is told so, and registers again.
    pub(super) fn refuse_unregistered(&mut self, now: Timestamp, addr: SocketAddr, seq: u32) {
        let detail = "not a registered LSN".to_owned();
        let error = ErrorMessage { seq, code: ErrorCode::NOT_ADMITTED, detail };
        self.send(now, addr, Message::Error(error));
    }

    /// An LSN's one-way keepalive: note its period, schedule the echo it asks for.
    pub(super) fn on_keepalive(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        addr: SocketAddr,
        k: Keepalive,
    ) {
        if !self.reg.is_lsn(&peer) {
            return self.refuse_unregistered(now, addr, 0);
        }
        let period = Duration::from_secs(u64::from(k.interval_secs)).min(MAX_KEEPALIVE_PERIOD);
        self.reg.set_keepalive(now, &peer, period, &self.cfg);
        self.overdue_period(now, peer, period);
        if let Some(digest) = k.digest {
            self.check_digest(now, peer, digest);
        }
        if k.echo_after_secs > 0 {
            // Bounded, so a confused LSN cannot park echoes for hours.
            let after = Duration::from_secs(u64::from(k.echo_after_secs.min(MAX_ECHO_SECS)));
            self.echoes.retain(|(_, id)| *id != peer);
            self.echoes.insert((now + after, peer));
        }
    }

    /// Sends the echoes that are due, to where each LSN's session is now.
    pub(super) fn send_echoes(&mut self, now: Timestamp) {
        while let Some(&(at, lsn)) = self.echoes.first() {
            if now < at {
                break;
            }
            self.echoes.pop_first();
            if let Some(addr) = self.reg.lsn_addr(&lsn) {
                let echo = Keepalive { interval_secs: 0, echo_after_secs: 0, digest: None };
                self.send(now, addr, Message::Keepalive(echo));
            }
        }
    }
}
