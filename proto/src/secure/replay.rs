//! Sliding-window replay protection for datagram counters (as in RFC 6479 / IPsec).

/// Bits in the window: counters this far behind the highest seen are still accepted once.
const WINDOW_BITS: u64 = 2048;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// This counter was already accepted.
    #[error("duplicate packet counter {0}")]
    Duplicate(u64),
    /// The counter is older than the window.
    #[error("packet counter {0} is too old")]
    TooOld(u64),
}

/// Remembers which counters were accepted among the last [`ReplayWindow::SIZE`].
///
/// Datagrams are lost and reordered, so the receiver cannot insist on the next counter; it
/// accepts each counter at most once, and only within a window behind the highest one seen.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// One more than the highest counter accepted; 0 when none was.
    next: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { next: 0, bits: [0; WORDS] }
    }
}

impl ReplayWindow {
    /// How far behind the highest counter a late packet is still accepted.
    pub const SIZE: u64 = WINDOW_BITS;

    /// A window that has accepted nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `counter` would be accepted. Check before decrypting (cheap), but only
    /// [`mark`](Self::mark) after the packet authenticated, so forgeries cannot move the window.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        if counter >= self.next {
            return Ok(());
        }
        if self.next - counter > WINDOW_BITS {
            return Err(ReplayError::TooOld(counter));
        }
        let (word, bit) = Self::slot(counter);
        if self.bits[word] & (1 << bit) != 0 {
            return Err(ReplayError::Duplicate(counter));
        }
        Ok(())
    }

    /// Records `counter` as accepted. Call only after [`check`](Self::check) passed and the
    /// packet authenticated.
    pub fn mark(&mut self, counter: u64) {
        if counter >= self.next {
            // Clear the slots the window slides over (at most the whole window).
            let advance = counter + 1 - self.next;
            if advance >= WINDOW_BITS {
                self.bits = [0; WORDS];
            } else {
                for c in self.next..=counter {
                    let (word, bit) = Self::slot(c);
                    self.bits[word] &= !(1 << bit);
                }
            }
            self.next = counter + 1;
        }
        let (word, bit) = Self::slot(counter);
        self.bits[word] |= 1 << bit;
    }

    fn slot(counter: u64) -> (usize, u64) {
        let i = counter % WINDOW_BITS;
        ((i / 64) as usize, i % 64)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn accept(w: &mut ReplayWindow, c: u64) -> Result<(), ReplayError> {
        w.check(c)?;
        w.mark(c);
        Ok(())
    }

    #[test]
    fn duplicates_and_stale_counters_are_refused() {
        let mut w = ReplayWindow::new();
        accept(&mut w, 0).unwrap();
        accept(&mut w, 5).unwrap();
        accept(&mut w, 3).unwrap(); // reordered, within the window
        assert_eq!(accept(&mut w, 3), Err(ReplayError::Duplicate(3)));
        assert_eq!(accept(&mut w, 5), Err(ReplayError::Duplicate(5)));
        accept(&mut w, 5 + WINDOW_BITS).unwrap();
        assert_eq!(accept(&mut w, 4), Err(ReplayError::TooOld(4)));
        accept(&mut w, 6).unwrap(); // exactly at the window's edge
        accept(&mut w, 1_000_000).unwrap();
        assert_eq!(accept(&mut w, 1_000_000), Err(ReplayError::Duplicate(1_000_000)));
    }

    proptest! {
        /// Against a model that remembers every counter: the window accepts a counter iff it
        /// was never accepted and is within the window of the highest.
        #[test]
        fn matches_a_set_model(counters in proptest::collection::vec(0u64..6000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut max: Option<u64> = None;
            for c in counters {
                let fresh = !seen.contains(&c);
                let in_window = max.is_none_or(|m| c + WINDOW_BITS > m);
                let expect_ok = fresh && in_window;
                let got = accept(&mut w, c);
                prop_assert_eq!(got.is_ok(), expect_ok, "counter {} max {:?}", c, max);
                if got.is_ok() {
                    seen.insert(c);
                    max = Some(max.map_or(c, |m| m.max(c)));
                }
            }
        }
    }
}
