//! `fleetmesh simulate`: a simulated day of a large fleet on the deterministic simulator
//! (`fleetmesh::sim::day`), with the report as text or JSON.

use std::{
    io::{IsTerminal, Write},
    time::{Duration, Instant},
};

use clap::Args;
use fleetmesh::sim::{
    day::{self, DayConfig, DayReport},
    NatKind,
};

/// Flags of `fleetmesh simulate`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SimulateArgs {
    /// Nodes in the fleet.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Subnets they are spread over (round robin).
    #[arg(long, default_value_t = 20)]
    subnets: u16,
    /// Simulated hours (from midnight).
    #[arg(long, default_value_t = 24.0)]
    hours: f64,
    /// Seed: the same seed gives the same run (and the same trace_hash).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Fraction of nodes up all day (servers); the rest come up 07:30-08:00 and shut down
    /// 16:00-19:00.
    #[arg(long, default_value_t = 0.2)]
    always_on: f64,
    /// Fraction of running nodes that reboot per hour.
    #[arg(long, default_value_t = 0.01)]
    churn_per_hour: f64,
    /// LSN crashes per hour across the fleet (each timed as a failover).
    #[arg(long, default_value_t = 12.0)]
    lsn_crashes_per_hour: f64,
    /// Moves of a node to another subnet per hour across the fleet.
    #[arg(long, default_value_t = 0.0)]
    moves_per_hour: f64,
    /// Hour of day at which the master goes down (negative: never).
    #[arg(long, default_value_t = 13.0, allow_negative_numbers = true)]
    master_outage_at: f64,
    /// How long the master stays down, in seconds.
    #[arg(long, default_value_t = 120)]
    master_outage_secs: u64,
    /// Probability that a datagram is lost.
    #[arg(long, default_value_t = 0.001)]
    loss: f64,
    /// Base one-way WAN latency, ms.
    #[arg(long, default_value_t = 20)]
    wan_ms: u64,
    /// Each subnet's WAN latency differs from the base by up to this much, ms.
    #[arg(long, default_value_t = 10)]
    wan_spread_ms: u64,
    /// No inventories (by default every node reports one at each start).
    #[arg(long)]
    no_inventory: bool,
    /// Also run the same day without inventories, for the master's peak without them.
    #[arg(long)]
    inventory_baseline: bool,
    /// Each subnet's WAN uplink and downlink, Mbit/s (0: unlimited).
    #[arg(long, default_value_t = 10.0)]
    bandwidth_mbit: f64,
    /// NAT in front of the subnets: "mixed" (none 20 %, endpoint-independent 20 %,
    /// address-restricted 20 %, port-restricted 30 %, symmetric 10 %), or one kind for all:
    /// none, endpoint-independent, address-restricted, port-restricted, symmetric.
    #[arg(long, default_value = "mixed")]
    nat: String,
    /// Fraction of subnets whose firewall drops UDP to and from the WAN (their nodes reach the
    /// master over TCP; reported as tcp_fallback_ms).
    #[arg(long, default_value_t = 0.0)]
    udp_blocked_fraction: f64,
    /// Run without the DHT (nodes and master take no part; no records, no lookups).
    #[arg(long)]
    no_dht: bool,
    /// Records put into the DHT from 00:40 on, one after another over a minute (gets start at
    /// 00:42).
    #[arg(long, default_value_t = 100)]
    dht_records: usize,
    /// DHT gets of those records per hour across the fleet.
    #[arg(long, default_value_t = 600.0)]
    dht_lookups_per_hour: f64,
    /// Minutes between points of the time series in the report.
    #[arg(long, default_value_t = 5)]
    sample_minutes: u64,
    /// Threads the subnets run on (0: one per core). The report is the same for any number.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Times of day (HH:MM, comma-separated) at which the master sends a request to the whole
    /// fleet, or "none".
    #[arg(long, default_value = "09:00,13:01")]
    fleet_requests: String,
    /// No metric histories (by default every node samples its metrics every 10 s and keeps
    /// an hour of them).
    #[arg(long)]
    no_metrics: bool,
    /// Times of day (HH:MM, comma-separated) at which the master asks the whole fleet for
    /// its CPU over the last hour (combined by the LSNs), or "none".
    #[arg(long, default_value = "10:00,15:00")]
    history_queries: String,
    /// Instead of a day: for every pair of NAT kinds, whether a node behind one opens a
    /// session with a node behind the other, without and with introductions by the master
    /// (issue 16). Uses --seed; prints grids, or with --json a `nat_matrix` key.
    #[arg(long)]
    nat_matrix: bool,
    /// Trials per pair of NAT kinds for --nat-matrix.
    #[arg(long, default_value_t = 10)]
    nat_trials: u32,
    /// Datagram loss (0..1, each datagram independently) during the --nat-matrix trials'
    /// dials (the fleets form without it).
    #[arg(long, default_value_t = 0.0)]
    nat_loss: f64,
}

/// A time of day, seconds since midnight, as HH:MM.
fn hhmm(secs: u64) -> String {
    format!("{:02}:{:02}", secs / 3600, secs / 60 % 60)
}

/// Parses `--fleet-requests` or `--history-queries` (`flag`): "none", or comma-separated
/// HH:MM times of day.
fn times_of_day(flag: &str, text: &str) -> Result<Vec<Duration>, String> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|t| {
            let t = t.trim();
            let bad = || format!("--{flag}: {t:?} is not HH:MM (or use \"none\")");
            let (h, m) = t.split_once(':').ok_or_else(bad)?;
            let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            Ok(Duration::from_secs(h * 3600 + m * 60))
        })
        .collect()
}

impl SimulateArgs {
    fn config(&self) -> Result<DayConfig, String> {
        let fraction = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("--{name} must be between 0 and 1, not {v}"))
            }
        };
        if self.nodes == 0 || self.subnets == 0 {
            return Err("--nodes and --subnets must be at least 1".into());
        }
        if !(self.hours > 0.0 && self.hours <= 24.0 * 30.0) {
            return Err(format!("--hours must be above 0 and at most 720, not {}", self.hours));
        }
        if self.sample_minutes == 0 {
            return Err("--sample-minutes must be at least 1".into());
        }
        let mut cfg = DayConfig {
            nodes: self.nodes,
            subnets: self.subnets,
            hours: self.hours,
            seed: self.seed,
            always_on: fraction("always-on", self.always_on)?,
            churn_per_hour: fraction("churn-per-hour", self.churn_per_hour)?,
            lsn_crashes_per_hour: self.lsn_crashes_per_hour.max(0.0),
            moves_per_hour: self.moves_per_hour.max(0.0),
            master_outage: (self.master_outage_at >= 0.0).then(|| {
                (
                    Duration::from_secs_f64(self.master_outage_at * 3600.0),
                    Duration::from_secs(self.master_outage_secs),
                )
            }),
            sample_every: Duration::from_secs(self.sample_minutes * 60),
            fleet_requests: times_of_day("fleet-requests", &self.fleet_requests)?,
            history_queries: times_of_day("history-queries", &self.history_queries)?,
            ..DayConfig::default()
        };
        cfg.net.loss = fraction("loss", self.loss)?;
        cfg.udp_blocked_fraction = fraction("udp-blocked-fraction", self.udp_blocked_fraction)?;
        cfg.dht = !self.no_dht;
        if self.no_inventory {
            cfg.inventory = None;
        }
        if self.no_metrics {
            cfg.metrics = None;
        }
        cfg.dht_records = self.dht_records;
        cfg.dht_lookups_per_hour = self.dht_lookups_per_hour.max(0.0);
        if self.threads > 0 {
            cfg.threads = self.threads;
        }
        if self.nat != "mixed" {
            let kind = NatKind::ALL
                .into_iter()
                .find(|k| k.name() == self.nat)
                .ok_or_else(|| format!("--nat: unknown kind {:?}", self.nat))?;
            cfg.nat_mix = vec![(kind, 1.0)];
        }
        cfg.net.wan = Duration::from_millis(self.wan_ms);
        cfg.net.wan_spread = Duration::from_millis(self.wan_spread_ms.min(self.wan_ms / 2));
        cfg.net.subnet_bandwidth = (self.bandwidth_mbit > 0.0)
            .then(|| (self.bandwidth_mbit * 1_000_000.0 / 8.0).max(1.0) as u64);
        Ok(cfg)
    }
}

/// Runs the simulation and prints the report.
pub(crate) fn run(args: SimulateArgs) -> Result<(), String> {
    if args.nat_matrix {
        return nat_matrix(&args);
    }
    let cfg = args.config()?;
    let bar = !args.json && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_drawn = Instant::now();
    let mut report = day::run(&cfg, |done| {
        if bar && (last_drawn.elapsed() >= Duration::from_millis(200) || done >= 1.0) {
            last_drawn = Instant::now();
            draw_bar(done, started.elapsed());
        }
    });
    if bar {
        eprintln!();
    }
    report.wall_seconds = started.elapsed().as_secs_f64();
    report.peak_rss_bytes = peak_rss_bytes().unwrap_or(0);
    if let (true, Some(inv)) = (args.inventory_baseline, report.inventory.as_mut()) {
        let without = day::run(&DayConfig { inventory: None, ..cfg.clone() }, |_| {});
        inv.master_peak_msgs_per_sec_without = Some(without.master.msgs_per_sec_peak);
    }
    if args.json {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", summary(&report));
    }
    Ok(())
}

/// `--nat-matrix`: the reach matrix before (plain dials) and after (introductions).
fn nat_matrix(args: &SimulateArgs) -> Result<(), String> {
    use fleetmesh::sim::reach;
    if !(0.0..1.0).contains(&args.nat_loss) {
        return Err(format!("--nat-loss must be in 0..1, not {}", args.nat_loss));
    }
    let options = reach::TrialOptions { loss: args.nat_loss, ..Default::default() };
    let plain = reach::TrialOptions { introductions: false, ..options };
    let before = reach::nat_matrix(args.seed, args.nat_trials, plain);
    let after = reach::nat_matrix(args.seed, args.nat_trials, options);
    if args.json {
        let value = serde_json::json!({ "nat_matrix": { "without_introductions": before, "with_introductions": after } });
        let json = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        println!("{json}");
        return Ok(());
    }
    println!(
        "sessions per pair (direct %, +relayed through a GSN \"r\"), {} trials per pair, seed {}, \
         loss {} %",
        args.nat_trials,
        args.seed,
        args.nat_loss * 100.0
    );
    println!("\nwithout introductions (a plain dial to the address the master observed):");
    print!("{}", before.grid());
    println!("\nwith introductions by the master (hole punching, connection reversal, GSN relay):");
    print!("{}", after.grid());
    println!("\ntime to session with introductions (direct or relayed), p50 / p99 (ms):");
    for p in after.pairs.iter().filter(|p| p.direct + p.relayed > 0.0) {
        let how = match (p.direct > 0.0, p.relayed > 0.0) {
            (true, true) => {
                format!("{:.0} % direct, {:.0} % relayed", p.direct * 100.0, p.relayed * 100.0)
            }
            (false, _) => "relayed".to_string(),
            (true, false) => "direct".to_string(),
        };
        println!(
            "  {:>22} -> {:<22} {:>5} / {:>5}  {how}",
            p.from, p.to, p.time_ms_p50, p.time_ms_p99
        );
    }
    let failing: Vec<String> = after
        .pairs
        .iter()
        .filter(|p| p.unreachable > 0.0)
        .map(|p| format!("{} -> {} ({:.0} % unreachable)", p.from, p.to, p.unreachable * 100.0))
        .collect();
    println!("\npairs without a session in some trial: {}", failing.len());
    for f in failing {
        println!("  {f}");
    }
    Ok(())
}

fn draw_bar(done: f64, elapsed: Duration) {
    let width = 40;
    let filled = ((done.clamp(0.0, 1.0)) * width as f64) as usize;
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {:5.1}%  {:.0} s",
        "#".repeat(filled),
        "-".repeat(width - filled),
        done * 100.0,
        elapsed.as_secs_f64()
    );
    let _ = err.flush();
}

/// The process's peak resident set, from `/proc/self/status` (Linux; `None` elsewhere).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The readable report.
fn summary(r: &DayReport) -> String {
    let q = |q: &day::Quantiles| {
        format!("p50 {} ms, p99 {} ms, max {} ms ({} measured)", q.p50, q.p99, q.max, q.count)
    };
    let mut s = String::new();
    s += &format!(
        "simulated {} nodes in {} subnets for {:.1} h (seed {}) in {:.1} s wall, {} events\n",
        r.nodes,
        r.subnets,
        r.simulated_seconds as f64 / 3600.0,
        r.seed,
        r.wall_seconds,
        r.events
    );
    s += &format!(
        "present at the end   {} of {} running\n",
        r.present_at_end, r.expected_present_at_end
    );
    s += &format!("join                 {}\n", q(&r.join_ms));
    s += &format!(
        "LSN failover         {}; {} incomplete\n",
        q(&r.recovery_ms),
        r.recoveries_incomplete
    );
    s +=
        &format!("children rejoined    {}; {} incomplete\n", q(&r.rejoin_ms), r.rejoins_incomplete);
    if r.move_ms.count > 0 {
        s += &format!("move                 {}\n", q(&r.move_ms));
    }
    if r.tcp_fallback_ms.count > 0 {
        s += &format!("present through TCP  {}\n", q(&r.tcp_fallback_ms));
    }
    if let Some(p) = &r.presence {
        s += &format!(
            "presence accuracy    {:.5} of {:.0} node-seconds right (running or shown present, checked every {} s while the master ran); present but unreachable {:.0} node-s ({:.0} of them down), absent but reachable {:.0} node-s; longest wrong {:.0} s (present but unreachable {:.0} s)\n",
            p.accuracy,
            p.node_seconds,
            p.check_every_s,
            p.stale_node_seconds,
            p.stale_down_node_seconds,
            p.late_node_seconds,
            p.longest_wrong_s,
            p.longest_stale_s
        );
    }
    let d = &r.dht;
    s += &format!(
        "DHT gets             {} answered, success {:.4}, hops p50 {} p99 {}, latency p50 {} ms p99 {} ms (WAN RTT {} ms); upkeep {:.0} B/node-hour\n",
        d.lookups,
        d.success_rate,
        d.hops_p50,
        d.hops_p99,
        d.latency_ms_p50,
        d.latency_ms_p99,
        d.wan_rtt_ms_p50,
        d.maintenance_bytes_per_node_hour
    );
    if !d.by_nat.is_empty() {
        let classes: Vec<String> = (d.by_nat.iter())
            .map(|(class, g)| format!("{class} {:.4} of {}", g.success_rate, g.lookups))
            .collect();
        s += &format!("DHT gets by NAT      {} (the asking node's NAT)\n", classes.join(", "));
    }
    let c = &d.upkeep_by_cause;
    s += &format!(
        "DHT upkeep           WAN {:.0} B, LAN {:.0} B per node-hour; maintenance by cause (requests and their answers): bootstrap {:.0}, refresh {:.0}, republish {:.0}, ping {:.0}, transfer {:.0} B/node-hour; sessions opened for the DHT {:.2}/node-hour ({:.2} over the WAN); {} republishes, {} of them by holders outside the k closest\n",
        d.upkeep_wan_bytes_per_node_hour,
        d.upkeep_lan_bytes_per_node_hour,
        c.bootstrap,
        c.refresh,
        c.republish,
        c.ping,
        c.transfer,
        d.dials_per_node_hour,
        d.dials_wan_per_node_hour,
        d.republishes,
        d.republishes_outside
    );
    s += &format!(
        "traffic per node-hour  WAN {:.0} B, LAN {:.0} B ({:.0} node-hours)\n",
        r.wan_bytes_per_node_hour, r.lan_bytes_per_node_hour, r.node_hours
    );
    let w = &r.wan_by_kind;
    s += &format!(
        "  WAN by kind          handshakes {:.0} B, with the master {:.0} B, between nodes {:.0} B \
         (+ {:.0} B keepalives and acks), other {:.0} B\n",
        w.handshakes, w.master, w.peer, w.peer_small, w.other
    );
    s += &format!(
        "master               {:.1} msg/s mean, {} msg/s peak\n",
        r.master.msgs_per_sec_mean, r.master.msgs_per_sec_peak
    );
    s += &format!("busiest other host   {} msg/s peak\n", r.busiest_other_host_msgs_per_sec_peak);
    let g = &r.gsn;
    s += &format!(
        "GSN directory        {} GSNs appointed, {} tickets published; {} of {} LSNs chose one, {:.2} of them the nearest (chosen RTT {}, nearest {}); {} surveys, {} probes\n",
        g.appointed,
        g.tickets_published,
        g.lsns_with_choice,
        g.lsns,
        g.chose_nearest,
        q(&g.chosen_rtt_ms),
        q(&g.nearest_rtt_ms),
        g.surveys,
        g.probes
    );
    for f in &r.requests {
        s += &format!(
            "fleet request {}  {:.2} % of {} running nodes took it within 5 s ({}), {} lost, {} after their return; master egress {} B in the next minute ({} B the minute before; target {} B for {} LSNs)\n",
            hhmm(f.at_s),
            f.took_within_5s_pct,
            f.running_at_send,
            q(&f.took_ms),
            f.lost,
            f.took_after_return,
            f.master_egress_bytes,
            f.master_egress_baseline_bytes,
            f.master_egress_target_bytes,
            f.lsns_at_send
        );
    }
    if !r.requests.is_empty() {
        s += &format!("requests duplicated  {}\n", r.requests_duplicated);
    }
    if let Some(i) = &r.inventory {
        let without = i
            .master_peak_msgs_per_sec_without
            .map_or("not run (--inventory-baseline)".into(), |p| format!("{p} msg/s"));
        s += &format!(
            "inventory            {} starts, {} held at the master, {} B per document; {} B in {} batches reached the master against {} B of whole uploads: {:.1}x less ({} B after the day's change); a week: {} B against {} B, {:.1}x less; zstd on {} hosts' documents {:.2}x; master peak {} msg/s, without inventories {}\n",
            i.starts,
            i.nodes_held,
            i.document_bytes_mean,
            i.bytes_at_master,
            i.batches,
            i.full_upload_bytes,
            i.reduction,
            i.change_bytes_at_master,
            i.week_bytes_at_master,
            i.week_full_upload_bytes,
            i.week_reduction,
            day::SAMPLE_HOSTS,
            i.sample_zstd_ratio,
            i.master_peak_msgs_per_sec,
            without
        );
    }
    if let Some(h) = &r.histories {
        s += &format!(
            "metric histories     {} samples, {:.2} B each (synthetic hosts), {:.0} B held per node (an hour)\n",
            h.samples, h.bytes_per_sample, h.stored_bytes_per_node
        );
        for x in &h.queries {
            s += &format!(
                "history query {}  {} of {} present hosts ({:.2} %; {} of them down a minute later) via {} LSNs ({} silent), {} failed, {} missing, in {} ms; fleet CPU {:.2} % (from every history directly: {:.2} %); master egress {} B in the next minute ({} B the minute before)\n",
                hhmm(x.at_s),
                x.hosts,
                x.present_at_send,
                x.hosts_pct,
                x.present_but_down,
                x.lsns,
                x.lsns_silent,
                x.failed,
                x.missing,
                x.took_ms,
                x.cpu_mean_pct,
                x.cpu_mean_truth_pct,
                x.master_egress_bytes,
                x.master_egress_baseline_bytes
            );
        }
    }
    s += &format!("peak memory          {:.0} MiB\n", r.peak_rss_bytes as f64 / 1048576.0);
    s += &format!("trace hash           {}\n", r.trace_hash);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(extra: &[&str]) -> Result<DayConfig, String> {
        let mut argv = vec!["simulate"];
        argv.extend_from_slice(extra);
        Wrap::try_parse_from(argv).map_err(|e| e.to_string())?.args.config()
    }

    #[test]
    fn flags_become_the_day() {
        let cfg = parse(&["--nodes", "30000", "--subnets", "600", "--hours", "24", "--seed", "7"])
            .unwrap();
        assert_eq!((cfg.nodes, cfg.subnets, cfg.seed), (30000, 600, 7));
        assert_eq!(cfg.master_outage.unwrap().0, Duration::from_secs(13 * 3600));
        let none = parse(&["--master-outage-at", "-1", "--bandwidth-mbit", "0"]).unwrap();
        assert!(none.master_outage.is_none() && none.net.subnet_bandwidth.is_none());
        assert_eq!(cfg.fleet_requests, DayConfig::default().fleet_requests);
        let two = parse(&["--fleet-requests", "08:30, 17:05"]).unwrap().fleet_requests;
        assert_eq!(
            two,
            [Duration::from_secs(8 * 3600 + 1800), Duration::from_secs(17 * 3600 + 300)]
        );
        assert!(parse(&["--fleet-requests", "none"]).unwrap().fleet_requests.is_empty());
        assert_eq!(cfg.history_queries, DayConfig::default().history_queries);
        let off = parse(&["--no-metrics", "--history-queries", "none"]).unwrap();
        assert!(off.metrics.is_none() && off.history_queries.is_empty());
        let bad = parse(&["--history-queries", "25:00"]).unwrap_err();
        assert!(bad.contains("--history-queries"), "{bad}");
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        assert!(parse(&["--loss", "1.5"]).unwrap_err().contains("--loss"));
        assert!(parse(&["--nodes", "0"]).unwrap_err().contains("--nodes"));
        assert!(parse(&["--hours", "0"]).unwrap_err().contains("--hours"));
        for bad in ["9", "25:00", "09:60", "nine:00"] {
            assert!(parse(&["--fleet-requests", bad]).unwrap_err().contains("--fleet-requests"));
        }
        assert!(parse(&["--nodes", "x"]).is_err());
        assert!(parse(&["--nat", "carrier-grade"]).unwrap_err().contains("--nat"));
        assert!(parse(&["--udp-blocked-fraction", "2"]).unwrap_err().contains("udp-blocked"));
        let sym = parse(&["--nat", "symmetric"]).unwrap();
        assert_eq!(sym.nat_mix, vec![(NatKind::Symmetric, 1.0)]);
    }
}
