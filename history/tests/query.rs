//! Downsampling and the aggregate combinator.

use fleetmesh_history::{aggregate, Answer, Downsampler, Point, Query, QueryError, MAX_BUCKETS};

fn host(from: i64, values: &[f64]) -> Answer {
    let q = Query { series: "cpu".into(), from, to: from + 60, bucket_secs: 30 };
    let mut d = Downsampler::new(q).unwrap();
    for (i, v) in values.iter().enumerate() {
        d.push(Point { t: from + i as i64 * 10, v: *v });
    }
    d.finish()
}

#[test]
fn downsampling_gives_min_max_mean_last_per_bucket() {
    let a = host(0, &[1.0, 5.0, 3.0, 10.0]);
    let b = a.buckets[0];
    assert_eq!((b.count, b.min, b.max, b.mean, b.last), (3, 1.0, 5.0, 3.0, 3.0));
    let b = a.buckets[1];
    assert_eq!((b.count, b.min, b.max, b.mean, b.last), (1, 10.0, 10.0, 10.0, 10.0));
}

#[test]
fn points_outside_the_range_are_ignored() {
    let q = Query { series: "cpu".into(), from: 100, to: 200, bucket_secs: 50 };
    let mut d = Downsampler::new(q).unwrap();
    d.push(Point { t: 99, v: 1.0 });
    d.push(Point { t: 200, v: 1.0 });
    assert!(d.finish().buckets.iter().all(|b| b.count == 0));
}

#[test]
fn aggregate_weights_means_by_hosts_and_is_associative() {
    let (a, b, c) = (host(0, &[0.0, 0.0, 0.0]), host(0, &[3.0, 3.0, 3.0]), host(0, &[9.0]));
    let all = aggregate(&[a.clone(), b.clone(), c.clone()]).unwrap();
    let lsn1 = aggregate(&[a, b]).unwrap();
    let staged = aggregate(&[lsn1, c]).unwrap();
    assert_eq!(all, staged);
    let x = all.buckets[0];
    assert_eq!((x.hosts, x.count, x.min, x.max, x.mean), (3, 7, 0.0, 9.0, 4.0));
    assert_eq!(all.buckets[1].count, 0);
}

#[test]
fn aggregate_refuses_different_grids() {
    assert_eq!(aggregate(&[host(0, &[1.0]), host(10, &[1.0])]), Err(QueryError::GridMismatch));
    assert_eq!(aggregate(&[]), Err(QueryError::EmptyRange));
}

#[test]
fn bucket_count_is_bounded() {
    let q = Query { series: "cpu".into(), from: 0, to: i64::MAX, bucket_secs: 1 };
    assert!(matches!(q.buckets(), Err(QueryError::TooManyBuckets(_))));
    let q = Query { series: "cpu".into(), from: 0, to: MAX_BUCKETS as i64, bucket_secs: 1 };
    assert_eq!(q.buckets(), Ok(MAX_BUCKETS));
    let q = Query { series: "cpu".into(), from: 5, to: 5, bucket_secs: 1 };
    assert_eq!(q.buckets(), Err(QueryError::EmptyRange));
}

#[test]
fn answer_round_trips_through_serde() {
    let a = host(0, &[1.5, 2.5]);
    let json = serde_json::to_string(&a).unwrap();
    let back: Answer = serde_json::from_str(&json).unwrap();
    assert_eq!(a, back);
}
