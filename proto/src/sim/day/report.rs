//! The day's report: the figures [`run`](super::run) returns, and their assembly from the
//! simulation's counters.

use super::*;
use crate::sim::WanKind;

/// Quantiles of a latency, in milliseconds (0 when nothing was measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Quantiles {
    /// How many were measured.
    pub count: usize,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Worst.
    pub max: u64,
}

impl Quantiles {
    pub(super) fn of(v: &[Duration]) -> Self {
        Quantiles {
            count: v.len(),
            p50: quantile_ms(v, 0.5),
            p99: quantile_ms(v, 0.99),
            max: quantile_ms(v, 1.0),
        }
    }
}

/// The master's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MasterLoad {
    /// Messages (datagrams sent plus received) per second over the run.
    pub msgs_per_sec_mean: f64,
    /// The busiest second.
    pub msgs_per_sec_peak: u32,
}

/// DHT lookups in the run (issue figures).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DhtReport {
    /// Gets that ran to an answer (gets cut short by their own node's crash, or still running
    /// at the end, are not counted).
    pub lookups: u64,
    /// Of those, the fraction that found the record.
    pub success_rate: f64,
    /// Hops of successful network lookups (answers from the node's own store excluded).
    pub hops_p50: u32,
    /// 99th percentile of the hops.
    pub hops_p99: u32,
    /// Latency of successful network lookups, median.
    pub latency_ms_p50: u64,
    /// 99th percentile of the latency.
    pub latency_ms_p99: u64,
    /// DHT upkeep per running node per hour, bytes on the wire (each message sealed, 29 bytes,
    /// plus a 28-byte IPv4/UDP header; session handshakes not counted): pings, bootstrap and
    /// refresh lookups, republishing, and answers to other nodes' requests (those include
    /// the answers to the measured gets).
    pub maintenance_bytes_per_node_hour: f64,
    /// Of the upkeep, what crossed the WAN (to another subnet or the master), bytes on the wire
    /// as above, per node-hour.
    pub upkeep_wan_bytes_per_node_hour: f64,
    /// Of the upkeep, what stayed in the sender's own subnet.
    pub upkeep_lan_bytes_per_node_hour: f64,
    /// The maintenance part of the upkeep by cause, requests and the answers they got, bytes on
    /// the wire per node-hour (see `dht::traffic`).
    pub upkeep_by_cause: UpkeepByCause,
    /// Sessions opened to send a DHT message (queries included), per node-hour: each is a
    /// Noise handshake, not counted in the upkeep bytes.
    pub dials_per_node_hour: f64,
    /// Of those, to another subnet.
    pub dials_wan_per_node_hour: f64,
    /// Republishes over the day that got as far as their stores, by every holder of every
    /// record.
    pub republishes: u64,
    /// Of those, by a holder that found k nodes closer to the key than itself.
    pub republishes_outside: u64,
    /// The median simulated WAN round trip, for comparing the latency with.
    pub wan_rtt_ms_p50: u64,
    /// The fewest nodes holding a record after its put.
    pub put_holders_min: usize,
    /// Failed gets by error (NotFound, TimedOut, NoPeers, ...; puts prefixed "put").
    pub failures: std::collections::BTreeMap<String, u64>,
    /// Gets by the NAT class of the asking node's subnet (`none`, `endpoint-independent`,
    /// ...): how many were answered and the fraction that found the record.
    pub by_nat: std::collections::BTreeMap<String, NatGets>,
}

/// DHT gets asked from behind one NAT class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct NatGets {
    /// Gets that ran to an answer.
    pub lookups: u64,
    /// Of those, the fraction that found the record.
    pub success_rate: f64,
}

/// DHT maintenance by cause, bytes on the wire per node-hour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct UpkeepByCause {
    /// Self-lookups of nodes that (re)started.
    pub bootstrap: f64,
    /// Lookups refreshing idle buckets.
    pub refresh: f64,
    /// Republishing held records (lookups and stores).
    pub republish: f64,
    /// Liveness pings.
    pub ping: f64,
    /// Join transfer: held records handed to nodes that (re)joined near their keys.
    pub transfer: f64,
}

/// WAN bytes per running node per hour (28-byte header per datagram) by what the datagrams
/// carried: they add up to [`DayReport::wan_bytes_per_node_hour`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct WanByKind {
    /// Handshake messages (message 1 is padded to 128 bytes, message 2 is 310; port
    /// prediction sends many copies of message 1).
    pub handshakes: f64,
    /// Sealed frames to or from the master.
    pub master: f64,
    /// Sealed frames between nodes of up to 45 bytes (keepalives, acks).
    pub peer_small: f64,
    /// Larger sealed frames between nodes.
    pub peer: f64,
    /// Probes, cookie replies and stale-session notices.
    pub other: f64,
}

/// One point of the time series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Simulated seconds since the start.
    pub t: u64,
    /// Nodes present at the master (0 while it is down).
    pub present: usize,
    /// Nodes running.
    pub running: usize,
    /// The master's messages per second since the previous sample.
    pub master_msgs_per_sec: f64,
}

/// What a day produced. `wall_seconds` and `peak_rss_bytes` are left at 0 by [`run`] (the core
/// reads no clock); the caller fills them in.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DayReport {
    /// Nodes in the fleet.
    pub nodes: usize,
    /// Subnets.
    pub subnets: u16,
    /// The seed.
    pub seed: u64,
    /// Simulated seconds.
    pub simulated_seconds: u64,
    /// Wall-clock seconds (filled in by the caller).
    pub wall_seconds: f64,
    /// Datagrams delivered plus timers handled.
    pub events: u64,
    /// Running nodes present at the master at the end (the last [`SETTLE`] of the run brings
    /// no new starts or failures).
    pub present_at_end: usize,
    /// Nodes the master still counts present at the end although they are down (crashed
    /// within the loss-detection time).
    pub stale_at_end: usize,
    /// Nodes running at the end.
    pub expected_present_at_end: usize,
    /// Node start → present at the master (starts while the master was down, or still listed
    /// the node from before an unnoticed crash, are not timed).
    pub join_ms: Quantiles,
    /// LSN crash → all its children present under another LSN at the master. The new LSN
    /// vouches for the children on its standby list (and those the master names) at once;
    /// their paced rejoin then confirms them, or reports them lost (see `rejoin_ms`).
    pub recovery_ms: Quantiles,
    /// Failovers not complete within two minutes (or cut short by the master outage).
    pub recoveries_incomplete: u64,
    /// LSN crash → all its children actually joined to another LSN (or become one), from the
    /// children's own events: the takeover is announced one child at a time
    /// (`OverlayConfig::takeover_pace`), so this grows with the subnet (~12 s for 49).
    pub rejoin_ms: Quantiles,
    /// Failovers whose children had not all rejoined within two minutes (or cut short by the
    /// master outage).
    pub rejoins_incomplete: u64,
    /// Move → present under an LSN of the new subnet.
    pub move_ms: Quantiles,
    /// Start → present for nodes in subnets that block UDP (through TCP).
    pub tcp_fallback_ms: Quantiles,
    /// DHT lookups.
    pub dht: DhtReport,
    /// WAN bytes (28-byte header per datagram) per running node per hour.
    pub wan_bytes_per_node_hour: f64,
    /// LAN bytes per running node per hour.
    pub lan_bytes_per_node_hour: f64,
    /// The WAN bytes per node-hour by what they carried.
    pub wan_by_kind: WanByKind,
    /// Node-hours of uptime the byte figures are divided by.
    pub node_hours: f64,
    /// The master's load.
    pub master: MasterLoad,
    /// The busiest second of any host but the master.
    pub busiest_other_host_msgs_per_sec_peak: u32,
    /// Peak resident memory (filled in by the caller).
    pub peak_rss_bytes: u64,
    /// Hash of every delivery: equal seeds give equal hashes.
    pub trace_hash: String,
    /// Present and running nodes and the master's load over the day.
    pub series: Vec<Sample>,
    /// The fleet-wide requests.
    pub requests: Vec<FleetRequestReport>,
    /// Requests some node was handed twice (must be 0).
    pub requests_duplicated: u64,
    /// Inventories, when on.
    pub inventory: Option<InventoryReport>,
    /// How right the master's view of presence was, when checked.
    pub presence: Option<super::PresenceReport>,
    /// Metric histories and the fleet-wide queries over them, when on.
    pub histories: Option<super::HistoryReport>,
    /// The GSN directory: appointed GSNs, and the LSNs' choices against the nearest.
    pub gsn: super::GsnReport,
}

pub(super) fn report(
    cfg: &DayConfig,
    sim: &Simulation,
    node_seconds: f64,
    series: Vec<Sample>,
) -> DayReport {
    let st = &sim.stats;
    let node_hours = node_seconds / HOUR;
    let per_node_hour = |b: u64| if node_hours > 0.0 { b as f64 / node_hours } else { 0.0 };
    let simulated = Duration::from_secs_f64(cfg.hours.max(0.0) * HOUR);
    DayReport {
        nodes: cfg.nodes,
        subnets: cfg.subnets,
        seed: cfg.seed,
        simulated_seconds: simulated.as_secs(),
        wall_seconds: 0.0,
        events: sim.events,
        present_at_end: sim
            .slots
            .iter()
            .filter(|s| s.node.is_some())
            .filter(|s| sim.master.as_ref().is_some_and(|m| m.is_present(&s.id())))
            .count(),
        stale_at_end: sim.master.as_ref().map_or(0, |m| {
            sim.slots.iter().filter(|s| s.node.is_none() && m.is_present(&s.id())).count()
        }),
        expected_present_at_end: sim.running(),
        join_ms: Quantiles::of(&st.joins),
        recovery_ms: Quantiles::of(&st.recoveries),
        recoveries_incomplete: st.recoveries_incomplete + st.failovers_open() as u64,
        rejoin_ms: Quantiles::of(&st.rejoins),
        rejoins_incomplete: st.rejoins_incomplete + st.rejoins_open() as u64,
        move_ms: Quantiles::of(&st.moves),
        tcp_fallback_ms: Quantiles::of(&st.tcp_fallback),
        dht: dht_report(sim, node_hours),
        wan_bytes_per_node_hour: per_node_hour(st.wan.bytes),
        lan_bytes_per_node_hour: per_node_hour(st.lan.bytes),
        wan_by_kind: {
            let k = |kind: WanKind| per_node_hour(st.wan_by_kind[kind as usize].bytes);
            WanByKind {
                handshakes: k(WanKind::Handshake),
                master: k(WanKind::Master),
                peer_small: k(WanKind::PeerSmall),
                peer: k(WanKind::Peer),
                other: k(WanKind::Other),
            }
        },
        node_hours,
        master: MasterLoad {
            msgs_per_sec_mean: st.master_rate.total as f64 / simulated.as_secs_f64().max(1.0),
            msgs_per_sec_peak: st.master_rate.peak,
        },
        busiest_other_host_msgs_per_sec_peak: st
            .node_rate
            .iter()
            .map(|m| m.peak)
            .max()
            .unwrap_or(0),
        peak_rss_bytes: 0,
        trace_hash: format!("{:016x}", st.trace),
        series,
        requests: Vec::new(),
        requests_duplicated: 0,
        inventory: None,
        presence: None,
        histories: None,
        gsn: super::gsn::report(sim),
    }
}

fn dht_report(sim: &Simulation, node_hours: f64) -> DhtReport {
    let t = sim.dht_traffic();
    let per_msg = (crate::secure::DATA_OVERHEAD as u64) + crate::sim::HEADER_BYTES;
    let upkeep =
        t.maintenance_bytes + t.answer_bytes + (t.maintenance_msgs + t.answer_msgs) * per_msg;
    let lan = t.maintenance_lan.bytes
        + t.answer_lan.bytes
        + (t.maintenance_lan.msgs + t.answer_lan.msgs) * per_msg;
    let per_hour = |x: f64| if node_hours > 0.0 { x / node_hours } else { 0.0 };
    let wire = |c: crate::dht::Tally| per_hour((c.bytes + c.msgs * per_msg) as f64);
    let d = &sim.stats.dht;
    let answered = d.lookups.saturating_sub(crate::sim::DhtStats::pending(&sim.stats) as u64);
    let hops: Vec<Duration> = d.hops.iter().map(|&h| Duration::from_millis(h.into())).collect();
    DhtReport {
        lookups: answered,
        success_rate: if answered > 0 { d.succeeded as f64 / answered as f64 } else { 0.0 },
        hops_p50: quantile_ms(&hops, 0.5) as u32,
        hops_p99: quantile_ms(&hops, 0.99) as u32,
        latency_ms_p50: quantile_ms(&d.latency, 0.5),
        latency_ms_p99: quantile_ms(&d.latency, 0.99),
        maintenance_bytes_per_node_hour: per_hour(upkeep as f64),
        upkeep_wan_bytes_per_node_hour: per_hour(upkeep.saturating_sub(lan) as f64),
        upkeep_lan_bytes_per_node_hour: per_hour(lan as f64),
        upkeep_by_cause: UpkeepByCause {
            bootstrap: wire(t.causes.bootstrap),
            refresh: wire(t.causes.refresh),
            republish: wire(t.causes.republish),
            ping: wire(t.causes.ping),
            transfer: wire(t.causes.transfer),
        },
        dials_per_node_hour: per_hour(t.dials as f64),
        dials_wan_per_node_hour: per_hour(t.dials.saturating_sub(t.dials_lan) as f64),
        republishes: t.republishes,
        republishes_outside: t.republishes_outside,
        wan_rtt_ms_p50: 2 * sim.net.wan.as_millis() as u64,
        failures: d.failures.clone(),
        put_holders_min: d.put_holders.iter().copied().min().unwrap_or(0),
        by_nat: (d.by_nat.iter())
            .map(|(class, &(lookups, found))| {
                let success_rate = if lookups > 0 { found as f64 / lookups as f64 } else { 0.0 };
                (class.to_string(), NatGets { lookups, success_rate })
            })
            .collect(),
    }
}
