//! Store behaviour: persistence, crash recovery, retention and size bounds, queries.

use fleetmesh_history::{Encoding, Point, Query, Store, StoreConfig, StoreError};

const T0: i64 = 1_800_000_000;

fn cfg(block_points: usize) -> StoreConfig {
    StoreConfig { block_points, ..StoreConfig::default() }
}

fn fill(store: &mut Store, series: &str, from: i64, n: i64) {
    for i in 0..n {
        let t = from + i * 10;
        store.record(series, Point { t, v: (t % 97) as f64 * 0.5 }).unwrap();
    }
}

fn all(store: &Store, series: &str) -> (u32, f64) {
    let q = Query {
        series: series.into(),
        from: T0 - 86_400,
        to: T0 + 40 * 86_400,
        bucket_secs: 41 * 86_400,
    };
    let a = store.query(&q).unwrap();
    (a.buckets[0].count, a.buckets[0].mean)
}

#[test]
fn sealed_blocks_survive_reopen_and_open_block_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.log");
    let mut s = Store::open(&path, cfg(100)).unwrap();
    fill(&mut s, "cpu", T0, 250);
    drop(s);
    let s = Store::open(&path, cfg(100)).unwrap();
    assert_eq!(s.sealed_blocks(), 2);
    assert_eq!(all(&s, "cpu").0, 200);
}

#[test]
fn flush_seals_partial_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.log");
    let mut s = Store::open(&path, cfg(100)).unwrap();
    fill(&mut s, "cpu", T0, 250);
    s.flush().unwrap();
    drop(s);
    let s = Store::open(&path, cfg(100)).unwrap();
    assert_eq!(all(&s, "cpu").0, 250);
}

#[test]
fn torn_last_block_at_every_offset_keeps_earlier_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.log");
    let mut s = Store::open(&path, cfg(50)).unwrap();
    s.declare("mem", Encoding::Decimals(-3)).unwrap();
    fill(&mut s, "cpu", T0, 100);
    fill(&mut s, "mem", T0, 50);
    let before_last = s.file_bytes();
    fill(&mut s, "cpu", T0 + 1000, 50);
    let full = s.file_bytes();
    drop(s);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, full);
    let (want_cpu, want_mem) = {
        let s = Store::open(&path, cfg(50)).unwrap();
        (all(&s, "cpu"), all(&s, "mem"))
    };
    assert_eq!(want_cpu.0, 150);
    for cut in before_last..full {
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let mut s = Store::open(&path, cfg(50)).unwrap();
        assert_eq!(s.sealed_blocks(), 3, "cut at {cut}");
        assert_eq!(s.file_bytes(), before_last, "file cut back to the last whole record");
        assert_eq!(all(&s, "cpu").0, 100);
        assert_eq!(all(&s, "mem"), want_mem);
        // The store keeps working after recovery.
        fill(&mut s, "cpu", T0 + 1000, 50);
        assert_eq!(all(&s, "cpu"), want_cpu);
    }
}

#[test]
fn corrupt_byte_in_last_block_drops_only_that_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.log");
    let mut s = Store::open(&path, cfg(50)).unwrap();
    fill(&mut s, "cpu", T0, 100);
    let before_last = s.file_bytes() as usize;
    fill(&mut s, "cpu", T0 + 1000, 50);
    drop(s);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[before_last + 20] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let s = Store::open(&path, cfg(50)).unwrap();
    assert_eq!(all(&s, "cpu").0, 100);
}

#[test]
fn retention_evicts_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { retention_secs: 3600, block_points: 60, ..StoreConfig::default() };
    let mut s = Store::open(dir.path().join("h.log"), config.clone()).unwrap();
    fill(&mut s, "cpu", T0, 6 * 360);
    // Six hours sampled, an hour kept (blocks of 10 minutes ending within the last hour).
    let (count, _) = all(&s, "cpu");
    assert!((360..=420).contains(&count), "{count}");
    drop(s);
    let s = Store::open(dir.path().join("h.log"), config).unwrap();
    assert_eq!(all(&s, "cpu").0, count - (count % 60));
}

#[test]
fn size_bound_evicts_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { max_bytes: 4000, block_points: 60, ..StoreConfig::default() };
    let mut s = Store::open(dir.path().join("h.log"), config).unwrap();
    fill(&mut s, "cpu", T0, 3000);
    assert!(s.file_bytes() <= 4000);
    assert_eq!(std::fs::metadata(dir.path().join("h.log")).unwrap().len(), s.file_bytes());
    let q = Query { series: "cpu".into(), from: T0, to: T0 + 30_000, bucket_secs: 3_000 };
    let a = s.query(&q).unwrap();
    let counts: Vec<u32> = a.buckets.iter().map(|b| b.count).collect();
    assert_eq!(counts[0], 0, "oldest data evicted: {counts:?}");
    assert_eq!(counts[9], 300, "newest kept: {counts:?}");
    let first_kept = counts.iter().position(|&c| c > 0).unwrap();
    assert!(counts[first_kept + 1..].iter().all(|&c| c == 300), "no holes: {counts:?}");
}

#[test]
fn out_of_order_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path().join("h.log"), cfg(50)).unwrap();
    s.record("cpu", Point { t: T0, v: 1.0 }).unwrap();
    assert!(matches!(s.record("cpu", Point { t: T0 - 1, v: 1.0 }), Err(StoreError::OutOfOrder(_))));
    assert!(matches!(s.record("", Point { t: T0, v: 1.0 }), Err(StoreError::SeriesName)));
    let long = "x".repeat(65);
    assert!(matches!(s.record(&long, Point { t: T0, v: 1.0 }), Err(StoreError::SeriesName)));
}

#[test]
fn reopening_with_a_smaller_size_bound_keeps_the_newest_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.log");
    let mut s = Store::open(&path, cfg(60)).unwrap();
    fill(&mut s, "cpu", T0, 3000);
    let big = s.file_bytes();
    drop(s);
    let small = StoreConfig { max_bytes: big / 4, block_points: 60, ..StoreConfig::default() };
    let s = Store::open(&path, small).unwrap();
    assert!(s.file_bytes() <= big / 4);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), s.file_bytes());
    let q = Query { series: "cpu".into(), from: T0 + 29_400, to: T0 + 30_000, bucket_secs: 600 };
    assert_eq!(s.query(&q).unwrap().buckets[0].count, 60, "the newest block is kept");
}
