//! Replay protection for end-to-end envelopes: which stamps of one sender a recipient accepted.
//!
//! Stamps are the sender's clock in microseconds, made unique ([`seal_envelope`]). A relay can
//! hold an envelope back and deliver it again later; the recipient accepts each stamp at most
//! once, and only while it is younger than [`EnvelopeWindow::MAX_AGE`] by the recipient's own
//! clock, so it need only remember the stamps of that long (bounded by
//! [`EnvelopeWindow::MAX_SEEN`]). Envelopes may arrive out of order within the window.
//!
//! The age check compares the sender's clock with ours: a recipient whose clock runs more than
//! `MAX_AGE` ahead of the master's refuses its envelopes (certificates already need roughly
//! right clocks). A recipient that restarts forgets its window, so an envelope younger than
//! `MAX_AGE` could be re-delivered once after a restart.
//!
//! [`seal_envelope`]: super::seal_envelope

use std::{collections::BTreeSet, time::Duration};

use super::EnvelopeError;
use crate::Timestamp;

/// The stamps of one sender accepted recently, and the refusals counted.
#[derive(Clone, Debug, Default)]
pub struct EnvelopeWindow {
    seen: BTreeSet<u64>,
    /// Stamps below this are refused: older than the window, or evicted from a full one.
    floor: u64,
    replayed: u64,
    too_old: u64,
}

impl EnvelopeWindow {
    /// How old (by the recipient's clock) an envelope may be: the master gives up on a
    /// delivery after 10 s by default; the rest is room for clock skew.
    pub const MAX_AGE: Duration = Duration::from_secs(600);
    /// The most stamps remembered. Beyond it the oldest is dropped and everything up to it
    /// refused, so a flood of fresh envelopes cannot reopen the window for old ones.
    pub const MAX_SEEN: usize = 1024;

    /// Accepts `stamp` at `now` if it is neither a repeat nor too old; refusals are counted.
    ///
    /// # Errors
    /// [`EnvelopeError::Replayed`] for a stamp accepted before, [`EnvelopeError::TooOld`] for
    /// one older than the window.
    pub fn accept(&mut self, now: Timestamp, stamp: u64) -> Result<(), EnvelopeError> {
        let oldest = now.as_micros().saturating_sub(Self::MAX_AGE.as_micros() as u64);
        self.floor = self.floor.max(oldest);
        // What the floor passed is refused by it from now on: no need to remember it.
        self.seen = self.seen.split_off(&self.floor);
        if stamp < self.floor {
            self.too_old += 1;
            return Err(EnvelopeError::TooOld(stamp));
        }
        if !self.seen.insert(stamp) {
            self.replayed += 1;
            return Err(EnvelopeError::Replayed(stamp));
        }
        while self.seen.len() > Self::MAX_SEEN {
            if let Some(first) = self.seen.pop_first() {
                self.floor = first + 1;
            }
        }
        Ok(())
    }

    /// Envelopes refused as re-deliveries.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    /// Envelopes refused as too old.
    pub fn too_old(&self) -> u64 {
        self.too_old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);
    const MS: u64 = 1_000;

    #[test]
    fn a_replay_is_refused_and_counted_fresh_and_reordered_stamps_pass() {
        let mut w = EnvelopeWindow::default();
        let t = NOW.as_micros();
        assert_eq!(w.accept(NOW, t), Ok(()));
        assert_eq!(w.accept(NOW, t), Err(EnvelopeError::Replayed(t)));
        // Out of order within the window: a later stamp first, then an earlier one.
        assert_eq!(w.accept(NOW, t + 5 * MS), Ok(()));
        assert_eq!(w.accept(NOW, t + 2 * MS), Ok(()));
        assert_eq!(w.accept(NOW, t + 2 * MS), Err(EnvelopeError::Replayed(t + 2 * MS)));
        assert_eq!((w.replayed(), w.too_old()), (2, 0));
    }

    #[test]
    fn an_envelope_older_than_the_window_is_refused_even_unseen() {
        let mut w = EnvelopeWindow::default();
        let t = NOW.as_micros();
        assert_eq!(w.accept(NOW, t), Ok(()));
        let later = NOW + EnvelopeWindow::MAX_AGE + Duration::from_secs(1);
        // Forgotten by now, yet still refused: the floor passed it.
        assert_eq!(w.accept(later, t), Err(EnvelopeError::TooOld(t)));
        let old = t - 1;
        assert_eq!(w.accept(later, old), Err(EnvelopeError::TooOld(old)));
        assert_eq!(w.accept(later, later.as_micros()), Ok(()));
        assert_eq!(w.too_old(), 2);
    }

    #[test]
    fn a_full_window_drops_its_oldest_and_refuses_below_it() {
        let mut w = EnvelopeWindow::default();
        let t = NOW.as_micros();
        for i in 0..=EnvelopeWindow::MAX_SEEN as u64 {
            assert_eq!(w.accept(NOW, t + i), Ok(()));
        }
        assert_eq!(w.seen.len(), EnvelopeWindow::MAX_SEEN);
        // The evicted stamp is refused, not accepted again.
        assert_eq!(w.accept(NOW, t), Err(EnvelopeError::TooOld(t)));
        assert_eq!(w.accept(NOW, t + 1), Err(EnvelopeError::Replayed(t + 1)));
    }
}
