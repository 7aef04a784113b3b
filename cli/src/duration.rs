//! Durations as operators write them: `30s`, `30m`, `12h`, `7d`.
//!
//! One number and one unit, nothing else: `1h30m` or `1.5h` are refused rather than guessed
//! at, so a typo in a token's lifetime never silently becomes another lifetime.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
    /// Nothing was given.
    #[error("empty duration; write a number and a unit, e.g. 30s, 30m, 12h or 7d")]
    Empty,
    /// The part before the unit is not a whole number.
    #[error("{0:?} is not a duration: write a whole number and a unit (s, m, h or d), e.g. 7d")]
    Number(String),
    /// The unit is missing or unknown.
    #[error("{0:?} has no known unit: use s, m, h or d (e.g. 30s, 30m, 12h, 7d)")]
    Unit(String),
    /// Zero: never a useful timeout or lifetime.
    #[error("a duration must be longer than zero")]
    Zero,
    /// More than a u64 of seconds.
    #[error("{0:?} is too long")]
    Overflow(String),
}

/// A duration parsed from, and shown as, `N` plus a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(DurationError::Unit(s.into()))?;
        let (number, unit) = s.split_at(split);
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ if number.is_empty() => return Err(DurationError::Number(s.into())),
            _ => return Err(DurationError::Unit(s.into())),
        };
        let n: u64 = match number.parse() {
            Ok(n) => n,
            Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                return Err(DurationError::Overflow(s.into()))
            }
            Err(_) => return Err(DurationError::Number(s.into())),
        };
        let secs = n.checked_mul(scale).ok_or_else(|| DurationError::Overflow(s.into()))?;
        if secs == 0 {
            return Err(DurationError::Zero);
        }
        Ok(HumanDuration(Duration::from_secs(secs)))
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that shows the value exactly (`90m`, not `1h30m` nor `5400s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (n, unit) = [(86_400, "d"), (3600, "h"), (60, "m")]
            .into_iter()
            .find(|(scale, _)| secs % scale == 0 && secs > 0)
            .map_or((secs, "s"), |(scale, unit)| (secs / scale, unit));
        write!(f, "{n}{unit}")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A period that may be switched off: `off` (or `0`) or a [`HumanDuration`] (`6h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Every(pub(crate) Option<HumanDuration>);

impl Every {
    /// The period, when on.
    pub(crate) fn period(self) -> Option<Duration> {
        self.0.map(|d| d.0)
    }
}

impl FromStr for Every {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        match s.trim() {
            "off" | "0" => Ok(Every(None)),
            other => other.parse().map(|d| Every(Some(d))),
        }
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => d.fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl Serialize for Every {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_off_or_a_duration() {
        assert_eq!("off".parse::<Every>(), Ok(Every(None)));
        assert_eq!(" 0 ".parse::<Every>(), Ok(Every(None)));
        let six: Every = "6h".parse().unwrap();
        assert_eq!(six.period(), Some(Duration::from_secs(6 * 3600)));
        assert_eq!((six.to_string(), Every(None).to_string()), ("6h".into(), "off".into()));
        assert_eq!("0s".parse::<Every>(), Err(DurationError::Zero));
        assert_eq!("soon".parse::<Every>(), Err(DurationError::Number("soon".into())));
    }

    #[test]
    fn units_parse_and_print_back() {
        for (text, secs) in [("45s", 45), ("30m", 1800), ("12h", 43_200), ("7d", 604_800)] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.0, Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(HumanDuration(Duration::from_secs(5400)).to_string(), "90m");
        assert_eq!(" 2h ".parse::<HumanDuration>().unwrap().0, Duration::from_secs(7200));
    }

    #[test]
    fn mistakes_get_the_error_that_names_them() {
        let cases = [
            ("", DurationError::Empty),
            ("7", DurationError::Unit("7".into())),
            ("7w", DurationError::Unit("7w".into())),
            ("1h30m", DurationError::Unit("1h30m".into())),
            ("d", DurationError::Number("d".into())),
            ("-1d", DurationError::Number("-1d".into())),
            ("0s", DurationError::Zero),
            ("99999999999999999999d", DurationError::Overflow("99999999999999999999d".into())),
            ("999999999999999999d", DurationError::Overflow("999999999999999999d".into())),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<HumanDuration>(), Err(want), "{text:?}");
        }
    }
}
