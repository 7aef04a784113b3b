//! `fleetmesh demo`: the overlay over real UDP sockets on loopback, in one process.
//!
//! A master listens on 127.0.0.1 and `subnets × nodes-per-subnet` nodes on 127.0.N.i, one
//! address group 127.0.N.0/24 per subnet (all of 127.0.0.0/8 is local on Linux). Then:
//!
//! 1. **startup**: each node looks for its subnet's LSN (LAN discovery first, here the
//!    in-process [`lan::LoopbackLan`]; then the master), joins it or becomes it. The master's
//!    presence events are printed as they come, until every node is present under one LSN per
//!    subnet. The demo then waits a little longer, so that each LSN's ranking of its children
//!    has reached its hot standby.
//! 2. **crash**: subnet 1's LSN crashes: its driver task is aborted, no Part is sent.
//! 3. **recovery**: measured from the crash until the master shows every one of that LSN's
//!    former children present under a new LSN, then the fleet is left to settle.
//! 4. **message**: the master sends a former child an application message, sealed end to end
//!    and forwarded by the new LSN, and waits for the acknowledgement.
//! 5. the report: text ending in one summary line, or one JSON object.
//!
//! Layout: `fleet` starts and crashes nodes, `lan` is the loopback LAN discovery, `watch`
//! follows the master, `report` renders the topology.

mod fleet;
mod lan;
mod report;
mod watch;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use clap::value_parser;
use fleetmesh::{
    driver::Clock,
    overlay::{MasterCommand, Topology},
    NodeId, TransportError,
};
use serde_json::json;

use self::{
    fleet::{Fleet, Names, Plan},
    watch::{Progress, Watch},
};

/// After the topology is complete, how long it must stay so before the crash. An LSN pushes
/// its full ranking to its hot standby at most once a second (`neighbour_batch`), so by then
/// the standby knows every child it must tell about a takeover.
const SETTLE: Duration = Duration::from_millis(1500);

/// The message the master sends after the recovery.
const MESSAGE: &[u8] = b"run inventory";

/// Options of `fleetmesh demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Number of subnets: 127.0.1.0/24, 127.0.2.0/24, …
    #[arg(long, default_value_t = 3, value_parser = value_parser!(u8).range(1..=250))]
    subnets: u8,
    /// Nodes in each subnet, at 127.0.N.1, 127.0.N.2, … (at least 2, so the crashed LSN has a
    /// child to take over).
    #[arg(long, default_value_t = 8, value_parser = value_parser!(u8).range(2..=250))]
    nodes_per_subnet: u8,
    /// Start nodes without certificates: they enroll with the master on first contact (open
    /// enrollment) instead of being issued one up front.
    #[arg(long)]
    enroll: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on any step after this many seconds.
    #[arg(long, default_value_t = 20, value_parser = value_parser!(u64).range(1..))]
    timeout: u64,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// A socket could not be bound.
    #[error(
        "could not bind a UDP socket on {addr}: {source} (the demo needs all of 127.0.0.0/8 on \
         the loopback interface, as Linux has it)"
    )]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: TransportError,
    },
    /// A step did not finish in time.
    #[error("{step}: timed out after {} s; {progress}", limit.as_secs())]
    Timeout {
        /// The step.
        step: &'static str,
        /// Its time limit.
        limit: Duration,
        /// How far it got.
        progress: String,
    },
    /// A step failed.
    #[error("{step}: {detail}")]
    Failed {
        /// The step.
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// What a run measured.
struct Report {
    subnets: u8,
    nodes_per_subnet: u8,
    /// Nodes started, the master not counted.
    nodes: usize,
    /// Nodes the master reports present at the end (LSNs and their children).
    present: usize,
    /// LSNs at the end.
    lsns: usize,
    /// From starting the nodes until the master first showed all of them present.
    join: Duration,
    crashed: NodeId,
    /// The crashed LSN's children, now under `new_lsns`.
    orphans: usize,
    new_lsns: BTreeSet<NodeId>,
    /// From the crash until the master showed every former child under a new LSN.
    recovery: Duration,
    message_to: NodeId,
    message_rtt: Duration,
    presence_events: usize,
    topology: Topology,
}

impl Report {
    fn summary(&self) -> String {
        format!(
            "demo: nodes={} present={} lsns={} recovery_ms={}",
            self.nodes,
            self.present,
            self.lsns,
            self.recovery.as_millis()
        )
    }

    fn json(&self, names: &Names) -> serde_json::Value {
        let names_of =
            |ids: &BTreeSet<NodeId>| ids.iter().map(|id| names.name(id)).collect::<Vec<_>>();
        json!({
            "nodes": self.nodes,
            "present": self.present,
            "lsns": self.lsns,
            "recovery_ms": self.recovery.as_millis() as u64,
            "subnets": self.subnets,
            "nodes_per_subnet": self.nodes_per_subnet,
            "join_ms": self.join.as_millis() as u64,
            "crashed": { "name": names.name(&self.crashed), "id": self.crashed.to_string(), "children": self.orphans },
            "new_lsns": names_of(&self.new_lsns),
            "message": { "to": names.name(&self.message_to), "rtt_us": self.message_rtt.as_micros() as u64 },
            "presence_events": self.presence_events,
            "topology": report::topology_json(&self.topology, names),
        })
    }
}

/// Runs the demo and prints its report.
pub(crate) async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let plan = Plan {
        subnets: args.subnets,
        nodes_per_subnet: args.nodes_per_subnet,
        enroll: args.enroll,
    };
    let started = Instant::now();
    let (mut fleet, feeds) = Fleet::start(plan, Clock::system()).await?;
    let names = fleet.names.clone();
    let mut watch = Watch::new(fleet.master.clone(), feeds, names.clone(), args.json, started);
    let result = scenario(&args, &mut fleet, &mut watch, started).await;
    fleet.shutdown();
    let report = result?;
    if args.json {
        println!("{}", report.json(&names));
    } else {
        println!("\ntopology after the recovery");
        print!("{}", report::render(&report.topology, &names));
        println!("\n{}", report.summary());
    }
    Ok(())
}

async fn scenario(
    args: &DemoArgs,
    fleet: &mut Fleet,
    watch: &mut Watch,
    started: Instant,
) -> Result<Report, DemoError> {
    let limit = Duration::from_secs(args.timeout);
    let text = !args.json;
    let (nodes, subnets) = (fleet.len(), usize::from(args.subnets));
    let names = fleet.names.clone();
    if text {
        println!(
            "fleetmesh demo: a master and {nodes} nodes in {subnets} subnets, over real UDP sockets on loopback"
        );
        println!("  master {} on {}", fleet::short(&fleet.master_id), fleet.master_addr);
        println!(
            "  nodes N.i on 127.0.N.i for N = 1..={subnets}, i = 1..={}; {}",
            args.nodes_per_subnet,
            if args.enroll {
                "they enroll with the master on first contact"
            } else {
                "certificates issued up front by the master's authority"
            }
        );
        println!("  LAN discovery: an in-process table of each subnet's LSNs (loopback has no broadcast)");
        println!("\nstartup");
    }

    // 1. Startup: everyone present, one LSN per subnet, stable for SETTLE.
    let mut complete: Option<Instant> = None;
    let mut join = None;
    watch
        .until("startup", limit, |topology, _| {
            let (present, lsns) = (topology.present(), topology.lsn_count());
            let whole = present == nodes
                && lsns == subnets
                && topology.subnets.len() == subnets
                && topology.pending.is_empty();
            if !whole {
                complete = None;
                return Progress::Waiting(format!(
                    "the master shows {present} of {nodes} nodes present, {lsns} LSNs for {subnets} subnets"
                ));
            }
            let since = *complete.get_or_insert_with(Instant::now);
            join.get_or_insert_with(|| started.elapsed());
            if since.elapsed() >= SETTLE {
                Progress::Done(())
            } else {
                Progress::Waiting("all present; letting the LSNs' rankings reach their standbys".into())
            }
        })
        .await?;
    let join = join.unwrap_or_default();
    let topology = watch.topology();
    if text {
        println!(
            "all {nodes} nodes present after {:.3} s, one LSN per subnet ({} presence events)",
            join.as_secs_f64(),
            watch.seen.presence_events
        );
        println!("\ntopology");
        print!("{}", report::render(&topology, &names));
        println!("\ncrash");
    }

    // 2. Crash subnet 1's LSN.
    let lsn = topology
        .subnets
        .iter()
        .flat_map(|s| &s.lsns)
        .find(|l| names.subnet(&l.id) == Some(1))
        .ok_or_else(|| DemoError::Failed { step: "crash", detail: "subnet 1 has no LSN".into() })?;
    let crashed = lsn.id;
    let orphans: Vec<NodeId> = lsn.children.iter().map(|c| c.id).collect();
    watch.say(format!(
        "crashing LSN {} of subnet 1 ({}): its driver is aborted, no Part is sent",
        names.both(&crashed),
        children(orphans.len())
    ));
    let crash = Instant::now();
    fleet.crash(&crashed, limit).await?;

    // 3. Recovery: every former child present under another LSN.
    let (recovery, new_lsns) = watch
        .until("recovery", limit, |topology, _| {
            let placed: Vec<Option<NodeId>> =
                orphans.iter().map(|c| topology.lsn_of(c).filter(|l| *l != crashed)).collect();
            let done = placed.iter().filter(|p| p.is_some()).count();
            if done == orphans.len() {
                Progress::Done((
                    crash.elapsed(),
                    placed.into_iter().flatten().collect::<BTreeSet<_>>(),
                ))
            } else {
                Progress::Waiting(format!(
                    "{done} of {} former children of {} present under a new LSN",
                    orphans.len(),
                    names.name(&crashed)
                ))
            }
        })
        .await?;
    let new_names: Vec<String> = new_lsns.iter().map(|id| names.name(id)).collect();
    watch.say(format!(
        "recovered in {} ms: the master shows every former child of {} ({}) present under LSN {}",
        recovery.as_millis(),
        names.name(&crashed),
        orphans.len(),
        new_names.join(", ")
    ));
    let topology = watch
        .until("after the recovery", limit, |topology, _| {
            let (present, lsns) = (topology.present(), topology.lsn_count());
            let gone = topology.lsn_of(&crashed).is_none();
            if present == nodes - 1 && lsns == subnets && topology.pending.is_empty() && gone {
                Progress::Done(topology.clone())
            } else {
                Progress::Waiting(format!(
                    "the master shows {present} nodes present (want {}), {lsns} LSNs, {} pending, {} {}",
                    nodes - 1,
                    topology.pending.len(),
                    names.name(&crashed),
                    if gone { "gone" } else { "still present" }
                ))
            }
        })
        .await?;

    // 4. A message from the master to a former child, through its new LSN.
    let to =
        *orphans.iter().find(|c| !new_lsns.contains(c)).or(orphans.first()).ok_or_else(|| {
            DemoError::Failed {
                step: "message",
                detail: format!("{} had no children to send to", names.name(&crashed)),
            }
        })?;
    if text {
        println!("\nmessage");
    }
    let command = MasterCommand::Send { node: to, id: 1, data: MESSAGE.to_vec() };
    fleet.master_commands.send(command).await.map_err(|_| DemoError::Failed {
        step: "message",
        detail: "the master's driver stopped".into(),
    })?;
    let rtt = watch
        .until("message", limit, |_, seen| {
            if let Some((_, _, error)) = seen.failed.iter().find(|(id, ..)| *id == 1) {
                return Progress::Failed(format!("not delivered: {error}"));
            }
            let acked = seen.delivered.iter().find(|(id, ..)| *id == 1).map(|(_, _, rtt)| *rtt);
            let opened =
                seen.received.iter().any(|(n, id, data)| *n == to && *id == 1 && data == MESSAGE);
            match acked {
                Some(rtt) if opened => Progress::Done(rtt),
                _ => Progress::Waiting(format!(
                    "acknowledged: {}, opened by {}: {opened}",
                    acked.is_some(),
                    names.name(&to)
                )),
            }
        })
        .await?;
    let via = topology.lsn_of(&to).map_or_else(|| "?".to_owned(), |l| names.name(&l));
    let to_name = names.name(&to);
    watch.say(format!(
        "master -> {to_name} via LSN {via}: {:?}, sealed to {to_name} (the LSN forwards it unread); opened and acknowledged in {:.1} ms",
        String::from_utf8_lossy(MESSAGE),
        rtt.as_secs_f64() * 1e3,
    ));

    // The numbers reported are the master's, read now.
    let topology = watch.topology();
    Ok(Report {
        subnets: args.subnets,
        nodes_per_subnet: args.nodes_per_subnet,
        nodes,
        present: topology.present(),
        lsns: topology.lsn_count(),
        join,
        crashed,
        orphans: orphans.len(),
        new_lsns,
        recovery,
        message_to: to,
        message_rtt: rtt,
        presence_events: watch.seen.presence_events,
        topology,
    })
}

/// "1 child", "7 children".
fn children(n: usize) -> String {
    if n == 1 {
        "1 child".to_owned()
    } else {
        format!("{n} children")
    }
}
