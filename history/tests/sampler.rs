//! The sampler turns snapshots, at times given as input, into the built-in series.

use fleetmesh_history::{Metrics, Query, Sampler, Store, StoreConfig};

#[test]
fn network_counters_become_bytes_per_interval_and_app_series_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("h.log"), StoreConfig::default()).unwrap();
    Sampler::declare(&mut store).unwrap();
    let mut s = Sampler::new();
    let t0 = 1_800_000_000;
    for i in 0..6u64 {
        let m = Metrics {
            cpu_pct: 12.34,
            mem_used: 2_000_000_000 + i * 1_000_000,
            disk_used: 5_000_000_000,
            net_rx_total: 1_000_000 + i * 20_000,
            net_tx_total: if i == 3 { 0 } else { 500_000 + i * 1000 },
            app: vec![("queue".into(), i as f64)],
        };
        s.sample(&mut store, t0 + i as i64 * 10, &m).unwrap();
    }
    let q = |name: &str| {
        let q = Query { series: name.into(), from: t0, to: t0 + 60, bucket_secs: 60 };
        store.query(&q).unwrap().buckets[0]
    };
    assert_eq!(q("cpu").count, 6);
    assert_eq!(q("cpu").last, 12.3, "declared precision 0.1");
    let rx = q("net_rx");
    assert_eq!((rx.count, rx.min, rx.max), (5, 20_000.0, 20_000.0));
    assert_eq!(q("net_tx").min, 0.0, "a counter reset gives 0, not a huge value");
    assert_eq!(q("queue").last, 5.0);
    assert_eq!(q("mem").last, 2_005_000_000.0);
}
