//! Prints the S15 figures: bytes per sample on the recorded host data, 30 days × 12 series on
//! disk, and the local cost of a 24-hour downsampled query of one host.
//!
//! `cargo run --release -p fleetmesh-history --example figures [recording.csv]`

use std::time::Instant;

use fleetmesh_history::sampler::BUILTIN;
use fleetmesh_history::{Encoding, Metrics, Point, Query, Sampler, Store, StoreConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/recording.csv").into());
    let rows = load(&path);
    let span = rows.last().map_or(0, |r| r.0) - rows.first().map_or(0, |r| r.0);
    println!(
        "recording: {path}: {} snapshots over {} s ({:.1} min)",
        rows.len(),
        span,
        span as f64 / 60.0
    );

    let dir = tempfile::tempdir().expect("temp dir");
    for (label, declare) in [("declared precision", true), ("lossless XOR", false)] {
        let file = dir.path().join(format!("rec-{declare}.log"));
        let mut store = Store::open(&file, StoreConfig::default()).expect("open");
        if declare {
            Sampler::declare(&mut store).expect("declare");
        }
        let mut sampler = Sampler::new();
        for (t, m) in &rows {
            sampler.sample(&mut store, *t, m).expect("sample");
        }
        store.flush().expect("flush");
        let samples = rows.len() * 5 - 2;
        println!(
            "recorded host, {label}: {} B for {samples} samples = {:.3} B/sample (file, headers included)",
            store.file_bytes(),
            store.file_bytes() as f64 / samples as f64
        );
    }

    // 30 days × 12 series at 10 s: each series replays runs of 30 consecutive recorded values
    // (5 minutes) from seeded random offsets of the recording, so its noise and autocorrelation
    // are the machine's own.
    let file = dir.path().join("month.log");
    let mut store = Store::open(&file, StoreConfig::default()).expect("open");
    let series = model(&rows);
    for (name, enc, _) in &series {
        store.declare(name, *enc).expect("declare");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut cursor: Vec<usize> = vec![0; series.len()];
    let t0 = 1_800_000_000i64;
    let n = 30 * 8640;
    let start = Instant::now();
    for i in 0..n {
        let t = t0 + i * 10;
        for (k, (name, _, levels)) in series.iter().enumerate() {
            if i % 30 == 0 {
                cursor[k] = rng.gen_range(0..levels.len().saturating_sub(30).max(1));
            }
            let v = levels[(cursor[k] + (i % 30) as usize).min(levels.len() - 1)];
            store.record(name, Point { t, v }).expect("record");
        }
    }
    store.flush().expect("flush");
    let on_disk = std::fs::metadata(&file).expect("metadata").len();
    println!(
        "30 days x 12 series at 10 s: {} samples, {on_disk} B on disk ({:.2} MB, {:.3} B/sample), written in {:.1} s",
        n * 12,
        on_disk as f64 / 1e6,
        on_disk as f64 / (n * 12) as f64,
        start.elapsed().as_secs_f64()
    );

    let end = t0 + n * 10;
    let q = Query { series: "cpu".into(), from: end - 86_400, to: end, bucket_secs: 300 };
    let mut times = Vec::new();
    let mut answer = None;
    for _ in 0..21 {
        let s = Instant::now();
        answer = Some(store.query(&q).expect("query"));
        times.push(s.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let answer = answer.expect("ran");
    let wire = serde_json::to_vec(&answer).expect("json").len();
    println!(
        "24-hour query of one series, 288 buckets of 5 min: median {:.2} ms, max {:.2} ms (local store cost; overlay round trip not wired), answer {} B as JSON",
        times[10], times[20], wire
    );
}

/// Reads `ts,cpu_pct,mem_used,disk_used,net_rx,net_tx` rows.
fn load(path: &str) -> Vec<(i64, Metrics)> {
    let text = std::fs::read_to_string(path).expect("read recording");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let u = |i: usize| f.get(i)?.trim().parse::<u64>().ok();
            Some((
                f.first()?.parse().ok()?,
                Metrics {
                    cpu_pct: f.get(1)?.parse().ok()?,
                    mem_used: u(2)?,
                    disk_used: u(3)?,
                    net_rx_total: u(4)?,
                    net_tx_total: u(5)?,
                    app: Vec::new(),
                },
            ))
        })
        .collect()
}

/// Twelve series: the five built-in ones and seven application series, each with the
/// recording's values (rounded to the declared precision) as its pool of levels.
fn model(rows: &[(i64, Metrics)]) -> Vec<(String, Encoding, Vec<f64>)> {
    let col =
        |f: &dyn Fn(&Metrics) -> f64| -> Vec<f64> { rows.iter().map(|(_, m)| f(m)).collect() };
    let diff = |v: Vec<f64>| -> Vec<f64> { v.windows(2).map(|w| (w[1] - w[0]).max(0.0)).collect() };
    let cpu = col(&|m| m.cpu_pct);
    let mem = col(&|m| m.mem_used as f64);
    let disk = col(&|m| m.disk_used as f64);
    let rx = diff(col(&|m| m.net_rx_total as f64));
    let tx = diff(col(&|m| m.net_tx_total as f64));
    let pools = [cpu.clone(), mem.clone(), disk, rx.clone(), tx.clone()];
    let mut out: Vec<(String, Encoding, Vec<f64>)> =
        BUILTIN.iter().zip(pools).map(|((n, e), p)| ((*n).to_owned(), *e, p)).collect();
    let extra: [(&str, Encoding, Vec<f64>); 7] = [
        ("cpu_user", Encoding::Decimals(1), cpu.iter().map(|v| v * 0.8).collect()),
        ("cpu_system", Encoding::Decimals(1), cpu.iter().map(|v| v * 0.2).collect()),
        ("load1", Encoding::Decimals(2), cpu.iter().map(|v| v / 50.0).collect()),
        ("swap", Encoding::Decimals(-6), mem.iter().map(|v| v / 8.0).collect()),
        ("app_queue", Encoding::Decimals(0), rx.iter().map(|v| v / 1000.0).collect()),
        ("app_rps", Encoding::Decimals(1), tx.iter().map(|v| v / 100.0).collect()),
        ("temp_c", Encoding::Decimals(1), cpu.iter().map(|v| 40.0 + v / 4.0).collect()),
    ];
    out.extend(extra.into_iter().map(|(n, e, p)| (n.to_owned(), e, p)));
    out
}
