//! [`Refused`]: what a machine dropped from the wire, by reason, in one snapshot the driver
//! can read through [`Machine::refused`](crate::Machine::refused) and summarise.

use std::fmt;

use crate::{endpoint::Rejections, overlay::Refusals};

/// Counters of what a machine refused since it started: datagrams and handshakes its link
/// layer rejected, and control messages its overlay refused as unauthorized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refused {
    /// Rejected datagrams and refused handshakes ([`Stats::rejected`](crate::endpoint::Stats)).
    pub link: Rejections,
    /// Control messages refused by the authorization rules (docs/AUTHORIZATION.md).
    pub control: Refusals,
}

impl Refused {
    /// A snapshot of both counters.
    pub fn new(link: Rejections, control: Refusals) -> Self {
        Refused { link, control }
    }

    /// All of them.
    pub fn total(&self) -> u64 {
        self.link.total() + self.control.total()
    }

    /// What was counted after `earlier` (a snapshot of the same machine's counters).
    pub fn since(&self, earlier: &Refused) -> Refused {
        Refused {
            link: self.link.since(&earlier.link),
            control: self.control.since(&earlier.control),
        }
    }
}

/// `12000 decrypt, 345 rate_limited, 2 control:uptime`: the reasons that occurred, or `none`.
/// Control refusals are prefixed so `answer` or `relay` cannot be mistaken for datagrams.
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let link = self.link.reasons().into_iter().map(|(name, n)| ("", name, n));
        let control = self.control.reasons().into_iter().map(|(name, n)| ("control:", name, n));
        let mut first = true;
        for (prefix, name, n) in link.chain(control).filter(|(_, _, n)| *n > 0) {
            write!(f, "{}{n} {prefix}{name}", if first { "" } else { ", " })?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_names_each_reason_that_occurred() {
        let link = Rejections { decrypt: 12_000, rate_limited: 345, ..Default::default() };
        let control = Refusals { uptime: 2, ..Default::default() };
        let now = Refused::new(link, control);
        assert_eq!(now.total(), 12_347);
        assert_eq!(now.to_string(), "12000 decrypt, 345 rate_limited, 2 control:uptime");
        let earlier = Refused::new(Rejections { decrypt: 11_000, ..link }, Refusals::default());
        assert_eq!(now.since(&earlier).to_string(), "1000 decrypt, 2 control:uptime");
        assert_eq!(Refused::default().to_string(), "none");
    }
}
