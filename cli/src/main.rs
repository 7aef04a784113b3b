//! The `fleetmesh` command.

mod admin;
mod client;
mod config;
mod daemon;
mod demo;
mod duration;
mod handlers;
mod history;
mod inventory;
mod logging;
mod master;
mod memory;
mod node;
mod signals;
mod simulate;
mod token;
mod transfer;

use clap::{Parser, Subcommand};

/// fleetmesh: a secure, self-organising overlay for device management.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a master and a fleet of nodes in this process over real UDP sockets on loopback:
    /// watch the overlay form, crash an LSN, and measure the recovery.
    ///
    /// The master listens on 127.0.0.1; node i of subnet N on 127.0.N.i (subnet N is the
    /// address group 127.0.N.0/24). Every node finds or becomes its subnet's LSN; the master's
    /// presence events are printed as they come, then the topology once everyone is present.
    /// Then subnet 1's LSN crashes (its task is aborted: no goodbye is sent), its hot standby
    /// takes over, and the demo measures how long until the master shows every former child
    /// of the crashed LSN present under a new LSN. Finally the master sends one of them a
    /// message, sealed end to end, through the new LSN.
    ///
    /// The text report ends with exactly one line
    ///
    ///     demo: nodes=N present=P lsns=L recovery_ms=R
    ///
    /// N: nodes started (the master not counted). P: nodes the master reports present at the
    /// end, LSNs and their children; the crashed LSN is not among them (its successor reports
    /// it lost), so a healthy run shows N-1. L: LSNs at the end (one per subnet). R: the
    /// recovery, in milliseconds. --json prints one object instead, with these fields and
    /// subnets, join_ms (start until all present), the crashed LSN, the message's round trip
    /// and the final topology.
    ///
    /// Each step gives up after --timeout seconds with an error naming it (exit status 1).
    Demo(demo::DemoArgs),
    /// Simulate a day of a large fleet on the deterministic simulator: the real node and master
    /// state machines, wire encoding and encryption, over a modelled network (LAN and WAN
    /// latency, bandwidth, loss, NAT per subnet) with the diurnal rhythm of an office fleet
    /// (servers up all day, workstations from the morning to the evening), random reboots, LSN
    /// crashes, moves and a master outage.
    ///
    /// Prints a readable summary (with a progress bar on a terminal), or with --json one
    /// object: nodes, subnets, simulated_seconds, wall_seconds, events, present_at_end,
    /// expected_present_at_end, join_ms / recovery_ms / rejoin_ms / move_ms {count, p50, p99,
    /// max} (recovery_ms: LSN crash until the master counts all its children present again,
    /// vouched for by the new LSN; rejoin_ms: until they all actually joined it),
    /// wan_bytes_per_node_hour and lan_bytes_per_node_hour (28-byte IPv4/UDP header per
    /// datagram counted), master {msgs_per_sec_mean, msgs_per_sec_peak},
    /// busiest_other_host_msgs_per_sec_peak, peak_rss_bytes, trace_hash (equal for equal
    /// seeds), series (present, running and master load every --sample-minutes) and gsn
    /// {appointed, tickets_published, lsns, lsns_with_choice, chose_nearest, chosen_rtt_ms,
    /// nearest_rtt_ms, surveys, probes}.
    ///
    /// Build with --release for large fleets: `cargo run --release -p fleetmesh-cli --
    /// simulate --nodes 30000 --subnets 600 --hours 24 --seed 1 --json`.
    Simulate(simulate::SimulateArgs),
    /// Run the master: the management server's daemon (see deploy/master.toml and
    /// deploy/fleetmesh-master.service).
    ///
    /// Configured by a TOML file (--config) with flags on top; without a file every field has
    /// its default (data dir /var/lib/fleetmesh/master, listen [::]:7946). Logs presence
    /// changes at INFO. SIGINT/SIGTERM stop it; SIGHUP re-reads the config file and applies
    /// log.level (other fields need a restart).
    Master(master::MasterArgs),
    /// Run a node: a managed device's daemon (see deploy/node.toml and
    /// deploy/fleetmesh-node.service).
    ///
    /// The first start needs an enrollment link (--join LINK, from `fleetmesh token create`);
    /// afterwards `fleetmesh node` alone restarts it from its data directory (default
    /// /var/lib/fleetmesh/node) with the same id. Logs state changes at INFO. SIGINT/SIGTERM
    /// announce a Part and exit 0; SIGHUP re-reads the config file and applies log.level.
    Node(node::NodeArgs),
    /// Enrollment tokens: `fleetmesh token create` prints a link for new devices.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Config files: `fleetmesh config check FILE` validates one.
    #[command(subcommand)]
    Config(config::check::ConfigCommand),
    /// The operator's commands (status, nodes, ping, send, revoke, web): clients of the
    /// master's admin API.
    #[command(flatten)]
    Admin(client::AdminCommand),
}

/// The logger of the commands that are not daemons (the daemons install their own, from
/// their config).
fn plain_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => {
            plain_logging();
            match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(demo::run(args)).map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot start the runtime: {e}")),
            }
        }
        // Plain single-threaded code: no runtime.
        Command::Simulate(args) => {
            plain_logging();
            simulate::run(args)
        }
        Command::Master(args) => master::run(args).map_err(|e| e.to_string()),
        Command::Node(args) => node::run(args).map_err(|e| e.to_string()),
        Command::Token(command) => {
            plain_logging();
            token::run(command).map_err(|e| e.to_string())
        }
        Command::Admin(command) => {
            plain_logging();
            match client::run(command) {
                // A remote command's own exit status, passed on (like ssh does).
                Err(client::ClientError::Exit(code)) => return std::process::ExitCode::from(code),
                other => other.map_err(|e| e.to_string()),
            }
        }
        Command::Config(command) => match config::check::run(command) {
            Ok(effective) => {
                print!("{effective}");
                Ok(())
            }
            Err(e) => {
                // `FILE:LINE:COL: message` first on its line, unprefixed, the form editors and
                // CI jump to.
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetmesh: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap checks names, conflicts and flattened arguments only when asked.
        super::Cli::command().debug_assert();
    }
}
