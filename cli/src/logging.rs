//! The daemons' logs: `tracing` to stderr (journald keeps it under systemd), as text or one
//! JSON object per line, through a filter that SIGHUP can change without a restart.
//!
//! The filter is, first found: `--log-level`, then `RUST_LOG`, then the config file's
//! `log.level`. A reload re-reads only the file, so a flag or `RUST_LOG` given at start stays
//! in force. The format is fixed at start (changing it needs a restart).

use std::{fmt, io::IsTerminal, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tracing_subscriber::{
    filter::EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt, Layer, Registry,
};

use crate::config::LogConfig;

/// A log filter: a level (`info`) or `EnvFilter` directives (`warn,fleetmesh=debug`),
/// checked when parsed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LogLevel(String);

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel("info".into())
    }
}

impl LogLevel {
    fn filter(&self) -> EnvFilter {
        // Checked when parsed (FromStr), so this cannot fail; fall back to the default anyway.
        EnvFilter::try_new(&self.0).unwrap_or_else(|_| EnvFilter::new("info"))
    }
}

/// Why a string is not a log filter.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogLevelError {
    /// Nothing was given (which would silence every log).
    #[error("empty log level; write e.g. info, or warn,fleetmesh=debug")]
    Empty,
    /// A directive without `=` that is not a level. `EnvFilter` would read it as a target
    /// name and log only that target: a typo such as `infoo` would silence the daemon.
    #[error("{0:?} is not a level: use off, error, warn, info, debug or trace, or TARGET=LEVEL")]
    NotALevel(String),
    /// `EnvFilter` refused the directives.
    #[error("invalid log filter {text:?}: {source}")]
    Directive {
        /// The filter.
        text: String,
        /// Why.
        source: tracing_subscriber::filter::ParseError,
    },
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl FromStr for LogLevel {
    type Err = LogLevelError;

    fn from_str(s: &str) -> Result<Self, LogLevelError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(LogLevelError::Empty);
        }
        for directive in text.split(',').map(str::trim) {
            if !directive.contains('=')
                && !LEVELS.contains(&directive.to_ascii_lowercase().as_str())
            {
                return Err(LogLevelError::NotALevel(directive.to_owned()));
            }
        }
        EnvFilter::try_new(text)
            .map(|_| LogLevel(text.to_owned()))
            .map_err(|source| LogLevelError::Directive { text: text.to_owned(), source })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The logging flags both daemons take; each overrides the config file.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct LogArgs {
    /// Log filter: a level (error, warn, info, debug, trace) or directives such as
    /// `warn,fleetmesh=debug`. Overrides RUST_LOG and the file's log.level.
    #[arg(long, value_name = "FILTER")]
    pub(crate) log_level: Option<LogLevel>,
    /// Log format. Overrides the file's log.format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) log_format: Option<LogFormat>,
}

impl LogArgs {
    /// Applies the flags to a config's `[log]` table.
    pub(crate) fn apply(&self, log: &mut LogConfig) {
        if let Some(level) = &self.log_level {
            log.level = level.clone();
        }
        if let Some(format) = self.log_format {
            log.format = format;
        }
    }
}

/// The installed logger: lets a reload change the filter.
pub(crate) struct Logging {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `--log-level`: wins over everything, reloads included.
    flag: Option<LogLevel>,
    /// `RUST_LOG` at start, when valid: wins over the file.
    env: Option<LogLevel>,
    /// The format in use.
    format: LogFormat,
    /// Whether `--log-format` chose it (then the file's format does not matter).
    format_flag: bool,
}

impl Logging {
    /// Installs the global logger. `file` is the config's `[log]` table before flags.
    pub(crate) fn init(file: &LogConfig, args: &LogArgs) -> Logging {
        let env_text = std::env::var("RUST_LOG").ok().filter(|t| !t.trim().is_empty());
        // RUST_LOG keeps its usual `EnvFilter` meaning (a bare word is a target), unlike the
        // file and the flag, which are checked more strictly against typos.
        let env = env_text.map(|text| match EnvFilter::try_new(&text) {
            Ok(_) => Ok(LogLevel(text)),
            Err(source) => Err(LogLevelError::Directive { text, source }),
        });
        let flag = args.log_level.clone();
        let format = args.log_format.unwrap_or(file.format);
        let chosen = Self::choose(&flag, env.as_ref().and_then(|e| e.as_ref().ok()), &file.level);
        let (filter, handle) = reload::Layer::new(chosen.filter());
        let output = match format {
            // Colours only on a terminal: journald and log files get plain text.
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(std::io::stderr)
                .boxed(),
        };
        // Fails only when a logger is already installed, which `main` never does for a daemon.
        let _ = tracing_subscriber::registry().with(filter).with(output).try_init();
        if let Some(Err(error)) = &env {
            tracing::warn!(%error, "RUST_LOG ignored");
        }
        let format_flag = args.log_format.is_some();
        Logging { handle, flag, env: env.and_then(Result::ok), format, format_flag }
    }

    fn choose<'a>(
        flag: &'a Option<LogLevel>,
        env: Option<&'a LogLevel>,
        file: &'a LogLevel,
    ) -> &'a LogLevel {
        flag.as_ref().or(env).unwrap_or(file)
    }

    /// Applies a re-read config file's `[log]` table: the filter changes now (unless a flag
    /// or `RUST_LOG` chose it); a new format is reported as needing a restart.
    pub(crate) fn reload(&self, file: &LogConfig) {
        let chosen = Self::choose(&self.flag, self.env.as_ref(), &file.level).clone();
        if file.format != self.format && !self.format_flag {
            tracing::warn!(
                format = ?file.format,
                "log.format changed in the config file; it takes effect on restart"
            );
        }
        match self.handle.reload(chosen.filter()) {
            // At DEBUG on purpose: it shows only when the new filter lets debug through, which
            // is how an operator (and our test) sees that `level = "debug"` took effect.
            Ok(()) => tracing::debug!(filter = %chosen, "log filter applied"),
            Err(error) => tracing::error!(%error, "cannot change the log filter"),
        }
        if chosen != file.level {
            tracing::info!(filter = %chosen, "log.level in the file is overridden by --log-level or RUST_LOG");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_nonsense_does_not() {
        for ok in ["info", "debug", "warn,fleetmesh=debug", "fleetmesh::master=trace"] {
            assert_eq!(ok.parse::<LogLevel>().unwrap().to_string(), ok);
        }
        for bad in ["", "  ", "infoo", "info,,debug", "fleetmesh=loud", "x[=info"] {
            assert!(bad.parse::<LogLevel>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_flag_beats_the_environment_which_beats_the_file() {
        let (flag, env, file): (LogLevel, LogLevel, LogLevel) =
            ("trace".parse().unwrap(), "debug".parse().unwrap(), "warn".parse().unwrap());
        assert_eq!(Logging::choose(&Some(flag.clone()), Some(&env), &file), &flag);
        assert_eq!(Logging::choose(&None, Some(&env), &file), &env);
        assert_eq!(Logging::choose(&None, None, &file), &file);
    }
}
