//! Sorting scores in descending order, the one O(n log n) step of the metrics.
//!
//! Scores are mapped to u64 keys whose ascending order is the scores' descending order, sorted
//! with the standard unstable sort, and mapped back. On 10^6 scores this is faster than
//! `sort_unstable_by(total_cmp)` (integer compares, no per-compare bit twiddling); an LSD
//! radix sort was tried and was not faster on the benchmark machine (docs/bench-core.md).

/// Order-preserving map from a finite f64 to u64, inverted so that ascending keys are
/// descending scores. -0.0 must have been folded into 0.0 by the caller.
#[inline]
fn desc_key(x: f64) -> u64 {
    let b = x.to_bits();
    !(if b >> 63 == 1 { !b } else { b | (1 << 63) })
}

#[inline]
fn from_desc_key(k: u64) -> f64 {
    let asc = !k;
    f64::from_bits(if asc >> 63 == 1 {
        asc & !(1 << 63)
    } else {
        !asc
    })
}

/// Sort finite values (with -0.0 already folded into 0.0) in descending order.
pub fn sort_desc(v: &mut [f64]) {
    let mut keys: Vec<u64> = v.iter().map(|&x| desc_key(x)).collect();
    keys.sort_unstable();
    for (x, &k) in v.iter_mut().zip(&keys) {
        *x = from_desc_key(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_roundtrip_and_order() {
        let xs = [
            f64::MAX,
            1.5,
            1.0,
            f64::MIN_POSITIVE,
            0.0,
            -f64::MIN_POSITIVE,
            -1.0,
            -2.5,
            f64::MIN,
        ];
        for w in xs.windows(2) {
            assert!(desc_key(w[0]) < desc_key(w[1]), "{} vs {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(from_desc_key(desc_key(x)), x);
        }
    }

    proptest! {
        #[test]
        fn equals_comparison_sort(
            v in prop::collection::vec(prop_oneof![-1e6f64..1e6, (-50i32..50).prop_map(f64::from)], 0..500)
        ) {
            let mut a: Vec<f64> = v.iter().map(|x| x + 0.0).collect();
            let mut b = a.clone();
            sort_desc(&mut a);
            b.sort_unstable_by(|x, y| y.total_cmp(x));
            prop_assert_eq!(a, b);
        }
    }
}
