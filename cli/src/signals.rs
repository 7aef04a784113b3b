//! The signals a daemon obeys: SIGINT and SIGTERM stop it cleanly, SIGHUP reloads its config.

use std::io;

/// What a signal asks of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Stop cleanly (the name of the signal, for the log).
    Stop(&'static str),
    /// Re-read the config file.
    Reload,
}

/// The daemon's signal handlers, installed before it starts its work so that no signal in
/// between falls to the default action (which would end the process without a Part).
pub(crate) struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. Call inside a tokio runtime.
    pub(crate) fn install() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal.
    pub(crate) async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            // `recv` yields None only once the runtime's signal driver is gone, when nothing
            // more can arrive; waiting forever is the honest answer then.
            tokio::select! {
                Some(()) = self.int.recv() => Signal::Stop("SIGINT"),
                Some(()) = self.term.recv() => Signal::Stop("SIGTERM"),
                Some(()) = self.hup.recv() => Signal::Reload,
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => Signal::Stop("Ctrl-C"),
                Err(_) => std::future::pending().await,
            }
        }
    }
}
