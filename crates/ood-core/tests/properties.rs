//! Property tests: the fast sweep against naive definitions, and the symmetries metrics must have.

use ood_core::{metrics, Convention, MetricsConfig};
use proptest::prelude::*;

/// Scores drawn from a small integer range so that ties (within and across sets) are common.
fn tied_scores(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec((-12i32..12).prop_map(f64::from), 1..max_len)
}

/// P(ID > OOD) + 1/2 P(ID = OOD), by counting every pair.
fn naive_auroc(id: &[f64], ood: &[f64]) -> f64 {
    let mut twice = 0u64;
    for a in id {
        for b in ood {
            twice += if a > b {
                2
            } else if a == b {
                1
            } else {
                0
            };
        }
    }
    twice as f64 / (2 * id.len() * ood.len()) as f64
}

/// (ID recall, OOD acceptance) when accepting `score >= t`, for every distinct score t, descending.
fn naive_curve(id: &[f64], ood: &[f64]) -> Vec<(f64, f64)> {
    let mut ts: Vec<f64> = id.iter().chain(ood).copied().collect();
    ts.sort_by(|a, b| b.total_cmp(a));
    ts.dedup();
    let frac = |v: &[f64], t: f64| v.iter().filter(|&&x| x >= t).count() as f64 / v.len() as f64;
    ts.into_iter()
        .map(|t| (frac(id, t), frac(ood, t)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn auroc_equals_pairwise_count(id in tied_scores(40), ood in tied_scores(40)) {
        let m = metrics::evaluate(&id, &ood, &MetricsConfig::default()).unwrap();
        prop_assert!((m.auroc - naive_auroc(&id, &ood)).abs() < 1e-12);
    }

    #[test]
    fn fpr_and_detection_error_match_naive_curve(id in tied_scores(40), ood in tied_scores(40), tpr in 0.05f64..0.95) {
        let curve = naive_curve(&id, &ood);
        // paper: closest ID recall up to the first full recall; the lowest threshold on a tie
        let last = curve.iter().position(|&(r, _)| r == 1.0).unwrap();
        let mut best = (f64::INFINITY, 0.0);
        for &(r, f) in &curve[..=last] {
            if (r - tpr).abs() <= best.0 { best = ((r - tpr).abs(), f); }
        }
        // OOD positive: accept OOD-flagging "score <= t"; first t (ascending) with OOD recall >= tpr
        let mut asc: Vec<f64> = id.iter().chain(&ood).copied().collect();
        asc.sort_by(f64::total_cmp);
        asc.dedup();
        let le = |v: &[f64], t: f64| v.iter().filter(|&&x| x <= t).count() as f64 / v.len() as f64;
        let t = asc.into_iter().find(|&t| le(&ood, t) >= tpr).unwrap();
        let det = curve.iter().map(|&(r, f)| 0.5 * (1.0 - r) + 0.5 * f).fold(0.5, f64::min);

        let p = metrics::evaluate(&id, &ood, &MetricsConfig { convention: Convention::Paper, tpr }).unwrap();
        let o = metrics::evaluate(&id, &ood, &MetricsConfig { convention: Convention::OodPositive, tpr }).unwrap();
        prop_assert_eq!(p.fpr, best.1);
        prop_assert_eq!(o.fpr, le(&id, t));
        prop_assert!((p.detection_error - det).abs() < 1e-12);
    }

    #[test]
    fn invariant_under_strictly_increasing_transforms(id in tied_scores(60), ood in tied_scores(60)) {
        for conv in [Convention::Paper, Convention::OodPositive] {
            let cfg = MetricsConfig { convention: conv, tpr: 0.95 };
            let base = metrics::evaluate(&id, &ood, &cfg).unwrap();
            for f in [|x: f64| 3.0 * x - 7.0, |x: f64| (x / 4.0).exp(), |x: f64| x * x * x + x] {
                let tid: Vec<f64> = id.iter().map(|&x| f(x)).collect();
                let tood: Vec<f64> = ood.iter().map(|&x| f(x)).collect();
                // the metrics depend only on the order and ties of the scores: identical values
                prop_assert_eq!(metrics::evaluate(&tid, &tood, &cfg).unwrap(), base);
            }
        }
    }

    #[test]
    fn swapping_id_and_ood_mirrors_auroc(id in tied_scores(60), ood in tied_scores(60)) {
        let cfg = MetricsConfig::default();
        let a = metrics::evaluate(&id, &ood, &cfg).unwrap();
        let b = metrics::evaluate(&ood, &id, &cfg).unwrap();
        prop_assert!((100.0 * b.auroc - (100.0 - 100.0 * a.auroc)).abs() < 1e-9);
        // negating scores and swapping roles changes nothing at all
        let nid: Vec<f64> = ood.iter().map(|x| -x).collect();
        let nood: Vec<f64> = id.iter().map(|x| -x).collect();
        let c = metrics::evaluate(&nid, &nood, &cfg).unwrap();
        prop_assert!((c.auroc - a.auroc).abs() < 1e-12);
        // AUPR-In of one problem is AUPR-Out of the negated, swapped one
        prop_assert!((c.aupr_in - a.aupr_out).abs() < 1e-12 && (c.aupr_out - a.aupr_in).abs() < 1e-12);
    }

    #[test]
    fn continuous_scores_match_pairwise(id in prop::collection::vec(-1e3f64..1e3, 1..50), ood in prop::collection::vec(-1e3f64..1e3, 1..50)) {
        let m = metrics::evaluate(&id, &ood, &MetricsConfig::default()).unwrap();
        prop_assert!((m.auroc - naive_auroc(&id, &ood)).abs() < 1e-12);
    }
}
