//! The master's 24-hour query of one host's metric history over the overlay (issue 17's
//! target: answered in ≤ 200 ms on loopback), and what the history costs on disk.
//!
//! A master and a node over real UDP on loopback, in this process; the node's history holds
//! 24 hours of the built-in series at 10 s (as the daemon samples them), and its `history`
//! handler answers as the daemon's does. Prints the round trip of a 24 h query at 1 h, 10 min
//! and 5 min buckets (p50 and max of 20 each) and the bytes per sample on disk.
//!
//! `cargo bench -p fleetmesh-cli --bench history_query`

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fleetmesh::{overlay::MasterEvent, MasterBuilder, NodeBuilder, TokenOptions};
use fleetmesh_history::{Metrics, Query, Sampler, Store, StoreConfig};

const DAY: i64 = 86_400;

fn filled_store(dir: &std::path::Path, now: i64) -> (Store, usize) {
    let mut store = Store::open(dir.join("history.log"), StoreConfig::default()).unwrap();
    Sampler::declare(&mut store).unwrap();
    let mut sampler = Sampler::new();
    let mut samples = 0;
    let (mut rx, mut tx) = (0u64, 0u64);
    for i in 0..(DAY / 10) {
        let t = now - DAY + i * 10;
        // A working day's shape: load with noise, memory drifting, traffic in bursts.
        let phase = (i as f64 / 8640.0) * std::f64::consts::TAU;
        let noise = ((i * 7919) % 101) as f64 / 100.0;
        rx += 20_000 + (i as u64 * 31 % 5000);
        tx += 8_000 + (i as u64 * 17 % 3000);
        let m = Metrics {
            cpu_pct: 20.0 + 15.0 * phase.sin() + 5.0 * noise,
            mem_used: 3_000_000_000 + (i as u64 % 600) * 1_000_000,
            disk_used: 80_000_000_000 + i as u64 * 4096,
            net_rx_total: rx,
            net_tx_total: tx,
            app: Vec::new(),
        };
        sampler.sample(&mut store, t, &m).unwrap();
        samples += if i == 0 { 3 } else { 5 };
    }
    store.flush().unwrap();
    (store, samples)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (store, samples) = filled_store(dirs[2].path(), now);
    let bytes = store.file_bytes();
    let store = Arc::new(Mutex::new(store));

    let mut master = MasterBuilder::new(dirs[0].path())
        .listen("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let link = master.create_token(TokenOptions::default()).unwrap();
    let node = NodeBuilder::new(dirs[1].path())
        .listen("127.0.0.1:0".parse().unwrap())
        .lan_discovery(false)
        .join(link)
        .handler("history", move |body: Vec<u8>| {
            let store = store.clone();
            async move {
                let query: Query = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                let answer = tokio::task::spawn_blocking(move || {
                    store.lock().unwrap().query(&query).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())??;
                serde_json::to_vec(&answer).map_err(|e| e.to_string())
            }
        })
        .start()
        .await
        .unwrap();
    let id = node.id();
    while !master.is_present(&id) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("history: 24 h of 5 series at 10 s: {samples} samples, {bytes} bytes on disk, {:.2} bytes per sample (target ≤ 1.5 on recorded host data; this is synthetic)", bytes as f64 / samples as f64);
    for bucket in [3600u32, 600, 300] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let query =
                Query { series: "cpu".into(), from: now - DAY, to: now, bucket_secs: bucket };
            let body = serde_json::to_vec(&query).unwrap();
            let start = Instant::now();
            let rid = master.request(id, "history", &body, Duration::from_secs(60)).await.unwrap();
            loop {
                match master.next_event().await {
                    Some(MasterEvent::Response { id: r, body, .. }) if r == rid => {
                        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        assert_eq!(
                            answer["buckets"].as_array().unwrap().len(),
                            (DAY / i64::from(bucket)) as usize
                        );
                        break;
                    }
                    Some(MasterEvent::RequestFailed { id: r, error, .. }) if r == rid => {
                        panic!("{error}")
                    }
                    Some(_) => {}
                    None => panic!("master stopped"),
                }
            }
            times.push(start.elapsed());
        }
        times.sort();
        println!(
            "history: 24 h query at {bucket} s buckets over loopback: p50 {:.1} ms, max {:.1} ms (target ≤ 200 ms)",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
    node.shutdown().await;
    master.shutdown().await;
}
