//! `fleetmesh node`: a managed device's daemon.
//!
//! The first start needs an enrollment link (`--join LINK`, or `join` in the config file); the
//! node keeps its key, certificate and network in its data directory and restarts from them
//! alone. It logs its state changes at INFO (joined an LSN, became the LSN, lost it, path
//! changes, master unreachable). SIGINT/SIGTERM announce a Part to the LSN, then exit 0;
//! SIGHUP re-reads the config file and applies the log level.

use std::{net::SocketAddr, path::PathBuf};

use fleetmesh::{endpoint::Event, overlay::NodeEvent, NodeBuilder, NodeHandle};
use tracing::Instrument;

use crate::{
    config::{self, Link, NodeConfig},
    daemon::{self, DaemonError},
    duration::{Every, HumanDuration},
    logging::{LogArgs, Logging},
    signals::{Signal, Signals},
};

/// `fleetmesh node`'s flags; each overrides its field in the config file.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct NodeArgs {
    /// Config file (TOML, see deploy/node.toml). Without one, every field has its default.
    #[arg(long, short, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Enrollment link from `fleetmesh token create`; needed on the first start only.
    #[arg(long, value_name = "LINK", value_parser = parse_link)]
    pub(crate) join: Option<Link>,
    /// Data directory: key, certificate, network, state. Default /var/lib/fleetmesh/node.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Address to listen on, UDP and TCP. Default [::]:0 (IPv4 and IPv6, a free port).
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Look for the subnet's LSN on the LAN (UDP port 7947): true or false. Default true.
    #[arg(long, value_name = "BOOL")]
    pub(crate) lan_discovery: Option<bool>,
    /// How long a first enrollment may take (30s, 5m, …). Default 30s.
    #[arg(long, value_name = "DURATION")]
    pub(crate) enroll_timeout: Option<HumanDuration>,
    /// How often to collect this host's inventory for the master (6h, 30m, …, or off).
    /// Default 6h.
    #[arg(long, value_name = "DURATION")]
    pub(crate) inventory_interval: Option<Every>,
    /// Serve the DHT (auto: when no NAT stands in the way), or only use it. Default auto.
    #[arg(long, value_name = "MODE")]
    pub(crate) dht_mode: Option<config::DhtMode>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

fn parse_link(text: &str) -> Result<Link, fleetmesh::LinkError> {
    text.parse().map(Link)
}

impl NodeArgs {
    /// Puts the flags given over the config file's values.
    fn apply(&self, config: &mut NodeConfig) {
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(on) = self.lan_discovery {
            config.lan_discovery = on;
        }
        if let Some(timeout) = self.enroll_timeout {
            config.enroll_timeout = timeout;
        }
        if let Some(every) = self.inventory_interval {
            config.inventory_interval = every;
        }
        if let Some(link) = &self.join {
            config.join = Some(link.clone());
        }
        if let Some(mode) = self.dht_mode {
            config.dht_mode = mode;
        }
        self.log.apply(&mut config.log);
    }
}

/// Runs the node until a signal stops it.
pub(crate) fn run(args: NodeArgs) -> Result<(), DaemonError> {
    let file = daemon::load_config(args.config.as_deref(), |_: &mut NodeConfig| {})?;
    let logging = Logging::init(&file.log, &args.log);
    let mut config = file;
    args.apply(&mut config);
    daemon::runtime(false)?.block_on(serve(args, config, logging))
}

async fn serve(args: NodeArgs, config: NodeConfig, logging: Logging) -> Result<(), DaemonError> {
    let mut signals = Signals::install().map_err(DaemonError::Signals)?;
    tracing::info!(
        config = %daemon::shown(args.config.as_ref()),
        data_dir = %config.data_dir.display(),
        listen = %config.listen,
        lan_discovery = config.lan_discovery,
        commands = config.commands.len(),
        "node starting"
    );
    let (gsn, dht_mode) = (config.gsn, config.dht_mode);
    let builder = NodeBuilder::new(&config.data_dir)
        .listen(config.listen)
        .lan_discovery(config.lan_discovery)
        .enroll_timeout(config.enroll_timeout())
        .configure(move |overlay| {
            overlay.gsn = gsn.serve;
            overlay.relay_limits = gsn.limits();
            overlay.dht = overlay.dht.clone().mode(dht_mode.into());
        });
    // The history opens once the node made its data directory; its handler waits for it.
    let history_slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let slot = config.history.then(|| history_slot.clone());
    let transfers = crate::transfer::TransferSlot::default();
    let mut builder = crate::handlers::with_builtins(builder, &config, slot, transfers.clone());
    if let Some(link) = &config.join {
        builder = builder.join(link.0.clone());
    }
    // A signal during a first enrollment (up to enroll_timeout) stops the wait too.
    let mut node = tokio::select! {
        started = builder.start() => started?,
        signal = wait_stop(&mut signals) => {
            tracing::info!(signal, "node stopped before it started");
            return Ok(());
        }
    };
    let history = if config.history {
        match crate::history::History::start(&config.data_dir) {
            Ok(history) => {
                let _ = history_slot.set(history.store());
                Some(history)
            }
            Err(error) => {
                tracing::warn!(%error, "metric history unavailable; the node runs without");
                None
            }
        }
    } else {
        None
    };
    let span = tracing::info_span!("node", id = %node.id());
    let (jobs, job_rx) = tokio::sync::mpsc::channel(4);
    let _ = transfers.set(jobs);
    let stop =
        run_loop(&args, &config, &logging, &mut node, &mut signals, job_rx).instrument(span).await;
    if let Ok(signal) = stop {
        tracing::info!(signal, "node leaving (announced part)");
    }
    node.shutdown().await;
    if let Some(history) = history {
        history.stop();
    }
    stop.map(|_| tracing::info!("node stopped"))
}

async fn wait_stop(signals: &mut Signals) -> &'static str {
    loop {
        if let Signal::Stop(name) = signals.next().await {
            return name;
        }
    }
}

async fn run_loop(
    args: &NodeArgs,
    config: &NodeConfig,
    logging: &Logging,
    node: &mut NodeHandle,
    signals: &mut Signals,
    mut jobs: tokio::sync::mpsc::Receiver<crate::transfer::Job>,
) -> Result<&'static str, DaemonError> {
    let mut transfers = crate::transfer::Transfers::default();
    tracing::info!(node = %node.id(), port = node.port(), state = ?node.state(), "node running");
    // The first tick is at once: the inventory goes out at start, then every period.
    let mut inventory = config.inventory_interval.period().map(|period| {
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        timer
    });
    loop {
        tokio::select! {
            Some(_) = tick(inventory.as_mut()) => set_inventory(node, config).await?,
            Some(job) = jobs.recv() => transfers.start(node, job).await,
            event = node.next_event() => match event {
                Some(event) => {
                    transfers.on_event(node, &event);
                    log_event(node, event);
                }
                None => return Err(DaemonError::Stopped("node")),
            },
            signal = signals.next() => match signal {
                Signal::Stop(name) => return Ok(name),
                Signal::Reload => reload(args, config, logging),
            },
        }
    }
}

/// The next tick of `timer`; never without one.
async fn tick(timer: Option<&mut tokio::time::Interval>) -> Option<()> {
    match timer {
        Some(timer) => {
            timer.tick().await;
            Some(())
        }
        None => std::future::pending().await,
    }
}

/// Collects the host's inventory, adds the daemon's own facts (`fleetmesh/version`, and
/// `fleetmesh/commands`: the names the master may run), and hands it to the node (which
/// sends what changed).
async fn set_inventory(node: &NodeHandle, config: &NodeConfig) -> Result<(), DaemonError> {
    let mut document = match tokio::task::spawn_blocking(crate::inventory::collect).await {
        Ok(document) => document,
        Err(error) => {
            tracing::warn!(%error, "inventory not collected");
            return Ok(());
        }
    };
    document.insert("fleetmesh/version".into(), env!("CARGO_PKG_VERSION").into());
    let commands: Vec<&str> = config.commands.keys().map(String::as_str).collect();
    if !commands.is_empty() {
        document.insert("fleetmesh/commands".into(), commands.join(","));
    }
    tracing::debug!(entries = document.len(), "inventory collected");
    node.set_inventory(document).await.map_err(|_| DaemonError::Stopped("node"))
}

/// SIGHUP: re-reads the file; the log level changes now, the rest on restart.
fn reload(args: &NodeArgs, running: &NodeConfig, logging: &Logging) {
    let Some(path) = &args.config else {
        tracing::info!("SIGHUP: no config file to re-read (started without --config)");
        return;
    };
    let file: NodeConfig = match config::load(path) {
        Ok(file) => file,
        Err(error) => {
            tracing::error!(%error, "SIGHUP: config not reloaded; still running the old one");
            return;
        }
    };
    logging.reload(&file.log);
    let mut next = file;
    args.apply(&mut next);
    // `join` and `enroll_timeout` matter on a first start only: no restart to ask for.
    daemon::needs_restart(&[
        ("data_dir", next.data_dir != running.data_dir),
        ("listen", next.listen != running.listen),
        ("lan_discovery", next.lan_discovery != running.lan_discovery),
        ("commands", next.commands != running.commands),
        ("command_timeout", next.command_timeout != running.command_timeout),
        ("history", next.history != running.history),
        ("inventory_interval", next.inventory_interval != running.inventory_interval),
        ("gsn", next.gsn != running.gsn),
        ("dht_mode", next.dht_mode != running.dht_mode),
    ]);
    tracing::info!(config = %path.display(), "config reloaded");
}

fn log_event(node: &NodeHandle, event: NodeEvent) {
    match event {
        NodeEvent::State { from, to } => {
            tracing::info!(?from, ?to, "state changed")
        }
        NodeEvent::JoinedLsn { lsn } => {
            let status = node.status();
            let path = status.lsn_path.map(|p| p.to_string());
            let rtt_ms = status.lsn_rtt.map(|r| r.as_secs_f64() * 1e3);
            tracing::info!(%lsn, ?path, ?rtt_ms, "joined LSN")
        }
        NodeEvent::BecameLsn { takeover_from: Some(dead) } => {
            tracing::info!(replaced = %dead, "became the subnet's LSN (took over)")
        }
        NodeEvent::BecameLsn { takeover_from: None } => {
            let rtt_ms = node.status().master_rtt.map(|r| r.as_secs_f64() * 1e3);
            tracing::info!(?rtt_ms, "became the subnet's LSN")
        }
        NodeEvent::LsnLost { lsn } => tracing::info!(%lsn, "LSN lost; looking for another"),
        NodeEvent::MasterUnreachable => {
            tracing::info!(state = ?node.state(), "master unreachable; retrying")
        }
        NodeEvent::ChildJoined { node: child } => tracing::info!(%child, "child joined"),
        NodeEvent::ChildParted { node: child, reason } => {
            tracing::info!(%child, ?reason, "child parted")
        }
        NodeEvent::JoinRefused { peer, detail } => {
            tracing::info!(%peer, %detail, "LSN candidate refused us")
        }
        NodeEvent::Message { id, data } => {
            tracing::info!(id, bytes = data.len(), "message from the master")
        }
        NodeEvent::Link(Event::PathChanged { peer, addr, path }) => {
            tracing::info!(%peer, %addr, %path, "path changed")
        }
        NodeEvent::PeerPath { peer, via: Some(gsn) } => {
            tracing::info!(%peer, %gsn, "session relayed through a GSN (hole punching failed)")
        }
        NodeEvent::PeerPath { peer, via: None } => {
            tracing::info!(%peer, "relayed session moved to a direct path")
        }
        NodeEvent::Link(Event::Enrolled { .. }) => tracing::info!("certificate received"),
        NodeEvent::Link(Event::Connected { peer, addr, initiator, .. }) => {
            tracing::debug!(%peer, %addr, initiator, "session opened")
        }
        // Not the payload: it can be 64 MiB.
        NodeEvent::BulkReceived { peer, id, data } => {
            tracing::info!(%peer, id, bytes = data.len(), "bulk transfer received")
        }
        NodeEvent::BulkSent { peer, id } => tracing::info!(%peer, id, "bulk transfer delivered"),
        NodeEvent::BulkFailed { peer, id, error } => {
            tracing::warn!(%peer, id, %error, "bulk transfer failed")
        }
        other => tracing::debug!(event = ?other, "node event"),
    }
}
