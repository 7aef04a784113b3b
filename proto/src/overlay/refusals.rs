//! Control messages refused because their sender may not send them, counted by reason.
//!
//! A certified peer that sends what only the master, our LSN or the candidate we asked may
//! send is refused without effect (docs/AUTHORIZATION.md has the rules). Each refusal is
//! counted here, so an operator sees an attack as a number rather than as nothing (the
//! messages are logged at DEBUG only: a flood must not flood the log).

/// Refused control messages, by reason. Read from [`Node::refusals`](super::Node::refusals)
/// or [`Master::refusals`](super::Master::refusals).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusals {
    /// `Takeover`s refused (not naming the sender, off our network, or naming an LSN that
    /// is not ours).
    pub takeover: u64,
    /// `Takeover`s dropped because the LSN they called replaced still answered.
    pub takeover_disproved: u64,
    /// `Uptime` challenges refused (not a rival the master named, or off our network).
    pub uptime: u64,
    /// Requests to relay a message from anyone but the master.
    pub relay: u64,
    /// `Resync` requests from anyone but the master.
    pub resync: u64,
    /// Answers (`Ack`, `Error`, `NodeList`) from a peer other than the one asked.
    pub answer: u64,
    /// Introductions (and their check-ins) from anyone but the introducer, or for a node
    /// that is not ours to pass them to (`overlay/node/introduce.rs`).
    pub introduction: u64,
    /// Relay traffic refused (`overlay/node/gsn.rs`): `RelayData` to a node not serving as
    /// GSN, from a non-member, too large or over its circuit's rate; `Relayed` from a GSN
    /// the master did not name for that peer; `GsnGrant` from anyone but the master.
    pub gsn: u64,
}

impl Refusals {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(_, n)| n).sum()
    }

    /// Each reason's name and count.
    pub fn reasons(&self) -> [(&'static str, u64); 8] {
        [
            ("takeover", self.takeover),
            ("takeover_disproved", self.takeover_disproved),
            ("uptime", self.uptime),
            ("relay", self.relay),
            ("resync", self.resync),
            ("answer", self.answer),
            ("introduction", self.introduction),
            ("gsn", self.gsn),
        ]
    }

    /// What was counted after `earlier` (a snapshot of the same counters), reason by reason.
    pub fn since(&self, earlier: &Refusals) -> Refusals {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        Refusals {
            takeover: d(self.takeover, earlier.takeover),
            takeover_disproved: d(self.takeover_disproved, earlier.takeover_disproved),
            uptime: d(self.uptime, earlier.uptime),
            relay: d(self.relay, earlier.relay),
            resync: d(self.resync, earlier.resync),
            answer: d(self.answer, earlier.answer),
            introduction: d(self.introduction, earlier.introduction),
            gsn: d(self.gsn, earlier.gsn),
        }
    }
}
