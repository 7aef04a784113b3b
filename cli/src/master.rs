//! `fleetmesh master`: the management server's daemon.
//!
//! It runs a [`fleetmesh::MasterHandle`] from the config's data directory, logs every presence
//! change at INFO, and obeys signals: SIGINT/SIGTERM stop it, SIGHUP re-reads the config file
//! and applies the log level (everything else needs a restart, and the log says so).

use std::{net::SocketAddr, path::PathBuf};

use fleetmesh::{
    endpoint::Event,
    overlay::{MasterEvent, PresenceEvent},
    MasterBuilder, MasterHandle,
};
use tracing::Instrument;

use crate::{
    admin::AdminServer,
    config::{self, MasterConfig},
    daemon::{self, DaemonError},
    logging::{LogArgs, Logging},
    signals::{Signal, Signals},
};

/// `fleetmesh master`'s flags; each overrides its field in the config file.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct MasterArgs {
    /// Config file (TOML, see deploy/master.toml). Without one, every field has its default.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory: key, tokens, state. Default /var/lib/fleetmesh/master.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address to listen on, UDP and TCP. Default [::]:7946 (IPv4 and IPv6).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Address nodes reach the master at, written into enrollment links (repeat for several).
    /// Default: the listen address when specific, else this host's interface addresses.
    #[arg(long = "public-addr", value_name = "ADDR")]
    pub(crate) public_addrs: Vec<SocketAddr>,
    /// Address of the admin API (HTTP/JSON). Default 127.0.0.1:7947.
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

impl MasterArgs {
    /// Puts the flags given over the config file's values.
    fn apply(&self, config: &mut MasterConfig) {
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if !self.public_addrs.is_empty() {
            config.public_addrs = self.public_addrs.clone();
        }
        if let Some(admin) = self.admin_listen {
            config.admin_listen = admin;
        }
        self.log.apply(&mut config.log);
    }
}

/// Runs the master until a signal stops it.
pub(crate) fn run(args: MasterArgs) -> Result<(), DaemonError> {
    let file = daemon::load_config(args.config.as_deref(), |_: &mut MasterConfig| {})?;
    let logging = Logging::init(&file.log, &args.log);
    // Before the runtime's threads allocate (see memory.rs): a flood's memory goes back.
    if !crate::memory::fix_thresholds() {
        tracing::warn!("malloc thresholds not set; memory freed after a flood may stay");
    }
    let mut config = file;
    args.apply(&mut config);
    daemon::runtime(true)?.block_on(serve(args, config, logging))
}

async fn serve(
    args: MasterArgs,
    config: MasterConfig,
    logging: Logging,
) -> Result<(), DaemonError> {
    let mut signals = Signals::install().map_err(DaemonError::Signals)?;
    // The master is what floods and storms inflate; a node's heap stays small.
    crate::memory::spawn_trimmer();
    tracing::info!(
        config = %daemon::shown(args.config.as_ref()),
        data_dir = %config.data_dir.display(),
        listen = %config.listen,
        "master starting"
    );
    let mut master = MasterBuilder::new(&config.data_dir)
        .listen(config.listen)
        .public_addrs(config.public_addrs.clone())
        .start()
        .await?;
    // Fleet-wide history aggregates (`POST /api/queries`): the nodes combine the same way.
    master.control().set_combiner("history", crate::history::combiner());
    let admin =
        match AdminServer::start(config.admin_listen, &config.data_dir, master.control()).await {
            Ok(admin) => admin,
            Err(e) => {
                master.shutdown().await;
                return Err(DaemonError::Admin(e));
            }
        };
    let span = tracing::info_span!("master", id = %master.id());
    let stop = run_loop(&args, &config, &logging, &mut master, &mut signals, &admin)
        .instrument(span)
        .await;
    tracing::info!(present = master.present_count(), "master stopping");
    // The admin API holds a handle on the master: stop it first.
    admin.shutdown().await;
    master.shutdown().await;
    match stop {
        Ok(signal) => {
            tracing::info!(signal, "master stopped");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn run_loop(
    args: &MasterArgs,
    config: &MasterConfig,
    logging: &Logging,
    master: &mut MasterHandle,
    signals: &mut Signals,
    admin: &AdminServer,
) -> Result<&'static str, DaemonError> {
    let link = master.link();
    tracing::info!(
        master = %master.id(),
        port = master.port(),
        masters = ?link.masters,
        network = %link,
        admin = %admin.addr,
        "master running"
    );
    loop {
        tokio::select! {
            event = master.next_event() => match event {
                Some(event) => {
                    admin.publish(&event);
                    log_event(master, event)
                }
                None => return Err(DaemonError::Stopped("master")),
            },
            signal = signals.next() => match signal {
                Signal::Stop(name) => return Ok(name),
                Signal::Reload => reload(args, config, logging),
            },
        }
    }
}

/// SIGHUP: re-reads the file; the log level changes now, the rest on restart.
fn reload(args: &MasterArgs, running: &MasterConfig, logging: &Logging) {
    let Some(path) = &args.config else {
        tracing::info!("SIGHUP: no config file to re-read (started without --config)");
        return;
    };
    let file: MasterConfig = match config::load(path) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: config not reloaded; still running the old one");
            return;
        }
    };
    logging.reload(&file.log);
    let mut next = file;
    args.apply(&mut next);
    daemon::needs_restart(&[
        ("data_dir", next.data_dir != running.data_dir),
        ("listen", next.listen != running.listen),
        ("public_addrs", next.public_addrs != running.public_addrs),
        ("admin_listen", next.admin_listen != running.admin_listen),
    ]);
    tracing::info!(config = %path.display(), "config reloaded");
}

fn log_event(master: &MasterHandle, event: MasterEvent) {
    match event {
        MasterEvent::Presence(presence) => {
            let present = master.present_count();
            match presence {
                PresenceEvent::Joined { node, lsn } => {
                    tracing::info!(%node, %lsn, is_lsn = node == lsn, present, "node present")
                }
                PresenceEvent::Parted { node, reason } => {
                    tracing::info!(%node, ?reason, present, "node parted")
                }
                PresenceEvent::Moved { node, from, to } => {
                    tracing::info!(%node, %from, %to, present, "node moved to another subnet")
                }
                PresenceEvent::Rerouted { node, from, to } => {
                    tracing::info!(%node, %from, %to, present, "node rerouted to another LSN")
                }
                other => tracing::info!(event = ?other, present, "presence changed"),
            }
        }
        MasterEvent::Delivered { id, node, rtt } => {
            tracing::debug!(?id, %node, ?rtt, "message delivered")
        }
        MasterEvent::DeliveryFailed { id, node, error } => {
            tracing::info!(?id, %node, %error, "message not delivered")
        }
        MasterEvent::Link(Event::PeerEnrolled { peer, .. }) => {
            tracing::info!(node = %peer, "node enrolled")
        }
        MasterEvent::Link(Event::EnrollmentRefused { peer, error }) => {
            tracing::warn!(node = %peer, %error, "enrollment refused")
        }
        other => tracing::debug!(event = ?other, "master event"),
    }
}
