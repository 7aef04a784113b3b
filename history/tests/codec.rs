//! Property tests of the block codec: bit-exact round trips, typed errors on bad input.

use fleetmesh_history::{codec::round_to, decode, encode, DecodeError, Encoding, Point};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

fn points(max: usize) -> impl Strategy<Value = Vec<Point>> {
    prop::collection::vec((any::<i64>(), any::<u64>()), 0..max)
        .prop_map(|v| v.into_iter().map(|(t, b)| Point { t, v: f64::from_bits(b) }).collect())
}

fn regular(max: usize) -> impl Strategy<Value = Vec<Point>> {
    (any::<i32>(), prop::collection::vec((-2i64..3, -1000.0f64..1000.0), 1..max)).prop_map(
        |(t0, v)| {
            let mut t = i64::from(t0);
            v.into_iter()
                .map(|(jitter, v)| {
                    t += 10 + jitter;
                    Point { t, v }
                })
                .collect()
        },
    )
}

fn bits(p: &[Point]) -> Vec<(i64, u64)> {
    p.iter().map(|p| (p.t, p.v.to_bits())).collect()
}

proptest! {
    // Seeded: the same cases on every run.
    #![proptest_config(ProptestConfig { rng_seed: RngSeed::Fixed(17), ..ProptestConfig::default() })]

    #[test]
    fn lossless_round_trip_is_bit_exact(p in points(600)) {
        let back = decode(&encode(&p, Encoding::Lossless)).unwrap();
        prop_assert_eq!(bits(&back), bits(&p));
    }

    #[test]
    fn quantised_round_trip_rounds_to_declared_precision(p in regular(600), d in -6i8..7) {
        let back = decode(&encode(&p, Encoding::Decimals(d))).unwrap();
        let want: Vec<Point> = p.iter().map(|x| Point { t: x.t, v: round_to(x.v, d).unwrap() }).collect();
        prop_assert_eq!(bits(&back), bits(&want));
    }

    #[test]
    fn unquantisable_values_fall_back_to_lossless(p in points(100)) {
        // Arbitrary bit patterns include NaN, infinities and huge values.
        let back = decode(&encode(&p, Encoding::Decimals(2))).unwrap();
        for (a, b) in back.iter().zip(&p) {
            prop_assert_eq!(a.t, b.t);
            match round_to(b.v, 2) {
                None => prop_assert_eq!(a.v.to_bits(), b.v.to_bits()),
                Some(r) => prop_assert!(a.v.to_bits() == r.to_bits() || a.v.to_bits() == b.v.to_bits()),
            }
        }
    }

    #[test]
    fn every_strict_prefix_is_an_error(p in points(50), q in any::<bool>()) {
        let enc = encode(&p, if q { Encoding::Decimals(1) } else { Encoding::Lossless });
        for cut in 0..enc.len() {
            prop_assert!(decode(&enc[..cut]).is_err(), "prefix {cut} of {} decoded", enc.len());
        }
    }

    #[test]
    fn trailing_bytes_are_an_error(p in points(50), extra in 1usize..4) {
        let mut enc = encode(&p, Encoding::Lossless);
        enc.extend(std::iter::repeat_n(0, extra));
        prop_assert_eq!(decode(&enc), Err(DecodeError::Trailing));
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&b);
    }

    #[test]
    fn corrupted_blocks_never_panic(p in points(100), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..8)) {
        let mut enc = encode(&p, Encoding::Lossless);
        for (i, bit) in flips {
            let i = i.index(enc.len());
            enc[i] ^= 1 << bit;
        }
        if let Ok(back) = decode(&enc) {
            prop_assert!(back.len() <= fleetmesh_history::MAX_BLOCK_POINTS);
        }
    }
}

#[test]
fn steady_timestamps_cost_one_bit() {
    let p: Vec<Point> = (0..361).map(|i| Point { t: 1_700_000_000 + i * 10, v: 5.0 }).collect();
    let enc = encode(&p, Encoding::Lossless);
    // Header 11 B; bits: first interval 2 + 7, then 359 × 1; first value 64, then 360 × 1.
    let bits: usize = 9 + 359 + 64 + 360;
    assert_eq!(enc.len(), 11 + bits.div_ceil(8));
}

#[test]
fn oversized_count_is_refused() {
    let mut b = vec![1u8];
    b.extend_from_slice(&5000u16.to_le_bytes());
    assert_eq!(decode(&b), Err(DecodeError::TooManyPoints(5000)));
}

#[test]
fn unknown_format_is_refused() {
    assert_eq!(decode(&[9, 0, 0]), Err(DecodeError::UnknownFormat(9)));
}
