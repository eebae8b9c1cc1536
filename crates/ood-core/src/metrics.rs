//! OOD detection metrics from in-distribution (ID) and out-of-distribution (OOD) scores,
//! where every score means "higher = more in-distribution".
//!
//! All metrics come from one sweep over the distinct score values in descending order: sort
//! each set once (O(n log n)), then merge (O(n)). Tied scores form one threshold, so ties
//! between ID and OOD count 1/2 in AUROC, exactly like scikit-learn's `roc_curve`.
//!
//! Two conventions for FPR at a given TPR and for AUPR (see docs/metrics.md):
//!
//! * [`Convention::Paper`] (default; the code of record of Liu et al. 2020, `get_measures` /
//!   `fpr_and_fdr_at_recall` of Hendrycks et al.'s Outlier Exposure code): ID is the positive
//!   class; FPR is the fraction of OOD accepted at the threshold whose ID recall is *closest* to
//!   the target (ties towards the lower threshold); AUPR is average precision
//!   (`sklearn.metrics.average_precision_score`).
//! * [`Convention::OodPositive`]: OOD is the positive class (score `-s`); FPR is the fraction of
//!   ID flagged at the *first* threshold whose OOD recall reaches the target
//!   (`roc_curve(..., drop_intermediate=False)`); AUPR is the trapezoid rule under
//!   `precision_recall_curve` (`sklearn.metrics.auc(recall, precision)`).
//!
//! AUROC and detection error do not depend on the convention. Detection error is
//! `min over thresholds of 0.5 * (1 - TPR) + 0.5 * FPR` (Liang et al., ODIN, ICLR 2018).
//! AUPR-In takes ID as positive with score `s`; AUPR-Out takes OOD as positive with score `-s`.

use serde::{Deserialize, Serialize};

/// Which published convention to use for FPR at a TPR and for AUPR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// Code of record (default): ID positive, recall closest to the target, average precision.
    #[default]
    Paper,
    /// OOD positive, first threshold reaching the target, trapezoidal AUPR.
    OodPositive,
}

impl Convention {
    pub fn name(self) -> &'static str {
        match self {
            Convention::Paper => "paper",
            Convention::OodPositive => "ood-positive",
        }
    }
}

impl std::str::FromStr for Convention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "paper" => Ok(Convention::Paper),
            "ood-positive" => Ok(Convention::OodPositive),
            _ => Err(format!(
                "unknown convention {s:?} (expected paper or ood-positive)"
            )),
        }
    }
}

/// Settings of a metrics evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricsConfig {
    pub convention: Convention,
    /// Target true-positive rate for the FPR metric, in (0, 1). Paper: 0.95.
    pub tpr: f64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            convention: Convention::Paper,
            tpr: 0.95,
        }
    }
}

/// Metric values as fractions in [0, 1] (multiply by 100 for the paper's tables).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// FPR at the configured TPR (FPR95 by default).
    pub fpr: f64,
    pub auroc: f64,
    pub aupr_in: f64,
    pub aupr_out: f64,
    pub detection_error: f64,
}

impl Metrics {
    /// The five values in a fixed order: fpr, auroc, aupr_in, aupr_out, detection_error.
    pub fn to_array(self) -> [f64; 5] {
        [
            self.fpr,
            self.auroc,
            self.aupr_in,
            self.aupr_out,
            self.detection_error,
        ]
    }

    pub fn from_array(a: [f64; 5]) -> Self {
        Self {
            fpr: a[0],
            auroc: a[1],
            aupr_in: a[2],
            aupr_out: a[3],
            detection_error: a[4],
        }
    }

    /// Every value times 100.
    pub fn percent(self) -> Self {
        Self::from_array(self.to_array().map(|v| 100.0 * v))
    }
}

/// Which score set a problem concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    Id,
    Ood,
}

impl std::fmt::Display for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Set::Id => "in-distribution",
            Set::Ood => "OOD",
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    #[error("{0} scores are empty")]
    Empty(Set),
    #[error("{set} score at index {index} is {value} (non-finite scores are refused)")]
    NonFinite { set: Set, index: usize, value: f64 },
    #[error("TPR must be in (0, 1), got {0}")]
    Tpr(f64),
}

/// Compute all metrics. Scores must be finite and non-empty.
pub fn evaluate(id: &[f64], ood: &[f64], cfg: &MetricsConfig) -> Result<Metrics, MetricsError> {
    check_tpr(cfg.tpr)?;
    let id = sorted_desc(id, Set::Id)?;
    let ood = sorted_desc(ood, Set::Ood)?;
    Ok(evaluate_sorted(&id, &ood, cfg))
}

pub(crate) fn check_tpr(tpr: f64) -> Result<(), MetricsError> {
    if tpr > 0.0 && tpr < 1.0 {
        Ok(())
    } else {
        Err(MetricsError::Tpr(tpr))
    }
}

/// Validate and sort a copy in descending order (-0.0 folded into 0.0 so it ties with 0.0).
pub fn sorted_desc(scores: &[f64], set: Set) -> Result<Vec<f64>, MetricsError> {
    if scores.is_empty() {
        return Err(MetricsError::Empty(set));
    }
    if let Some(index) = crate::finite::first_nonfinite(scores) {
        return Err(MetricsError::NonFinite {
            set,
            index,
            value: scores[index],
        });
    }
    let mut v: Vec<f64> = scores.iter().map(|x| x + 0.0).collect();
    crate::sort::sort_desc(&mut v);
    Ok(v)
}

/// All metrics from scores already validated (finite, non-empty) and sorted descending.
pub fn evaluate_sorted(id: &[f64], ood: &[f64], cfg: &MetricsConfig) -> Metrics {
    let (p, n) = (id.len() as u64, ood.len() as u64);
    let (pf, nf) = (p as f64, n as f64);
    let (inv_p, inv_n) = (1.0 / pf, 1.0 / nf);
    let level = cfg.tpr;

    // Counts at the previous and current threshold: tp = #ID >= t, fp = #OOD >= t.
    let (mut tp0, mut fp0) = (0u64, 0u64);
    let (mut i, mut j) = (0usize, 0usize);

    // AUROC as an exact integer: twice the trapezoid area in count units.
    let mut auroc2: u128 = 0;
    // ID positive, score s. Sums are in counts and divided by p once at the end.
    let mut ap_in = 0.0;
    let mut trap_in = 0.0;
    // precision_recall_curve's (recall 0, precision 1) end point starts the first segment
    let mut prec_in_prev = 1.0;
    // OOD positive, score -s: its thresholds are ours in reverse order, and each of our steps
    // closes one segment of its curve. The segment's far point (scores below the previous
    // threshold: n - fp0 OOD, p - tp0 ID) was the near point of the previous step, so its
    // precision is carried instead of recomputed; before the first step it is n / (n + p).
    let mut ap_out = 0.0;
    let mut trap_out = 0.0;
    let mut prec_out_prev = nf / (nf + pf);
    // FPR at TPR.
    let mut paper_best = f64::INFINITY;
    let mut paper_fpr = 1.0;
    let mut paper_done = false;
    let mut oodpos_fpr = 1.0;
    let mut oodpos_done = false;
    let mut det_err: f64 = 0.5; // threshold above every score: reject all

    while i < id.len() || j < ood.len() {
        // scores are finite, so -inf marks an exhausted set
        let a = id.get(i).copied().unwrap_or(f64::NEG_INFINITY);
        let b = ood.get(j).copied().unwrap_or(f64::NEG_INFINITY);
        let t = a.max(b);
        while i < id.len() && id[i] == t {
            i += 1;
        }
        while j < ood.len() && ood[j] == t {
            j += 1;
        }
        let (tp, fp) = (i as u64, j as u64);

        auroc2 += u128::from(fp - fp0) * u128::from(tp + tp0);

        let prec_in = tp as f64 / (tp + fp) as f64;
        if tp > tp0 {
            let d_tp = (tp - tp0) as f64;
            ap_in += d_tp * prec_in;
            trap_in += d_tp * (prec_in + prec_in_prev) / 2.0;
        }
        // even without a recall step this point starts the next segment
        prec_in_prev = prec_in;

        // OOD positive, the point after this threshold: scores < t, i.e. (n - fp) OOD and
        // (p - tp) ID; when nothing is left it is the (recall 0, precision 1) end point.
        let (pos_a, neg_a) = (n - fp, p - tp);
        let prec_out = if pos_a + neg_a == 0 {
            1.0
        } else {
            pos_a as f64 / (pos_a + neg_a) as f64
        };
        if fp > fp0 {
            let d_fp = (fp - fp0) as f64;
            ap_out += d_fp * prec_out_prev;
            trap_out += d_fp * (prec_out_prev + prec_out) / 2.0;
        }
        prec_out_prev = prec_out;

        // Paper: ID recall closest to the target, over thresholds down to the first full recall;
        // on equal distance the lower threshold wins (argmin over the reversed curve).
        if !paper_done {
            let dist = (tp as f64 / pf - level).abs();
            if dist <= paper_best {
                paper_best = dist;
                paper_fpr = fp as f64 / nf;
            }
            paper_done = tp == p;
        }
        // OOD positive: OOD recall of "score <= t" is (n - fp0)/n, falling as t falls, so the
        // thresholds reaching the target are a prefix here; the last of them is the first one
        // of the reverse walk.
        if !oodpos_done {
            if (n - fp0) as f64 / nf >= level {
                oodpos_fpr = (p - tp0) as f64 / pf;
            } else {
                oodpos_done = true;
            }
        }

        det_err = det_err.min(0.5 * (1.0 - tp as f64 * inv_p) + 0.5 * fp as f64 * inv_n);
        tp0 = tp;
        fp0 = fp;
    }

    let auroc = auroc2 as f64 / (2.0 * pf * nf);
    let (ap_in, trap_in) = (ap_in / pf, trap_in / pf);
    let (ap_out, trap_out) = (ap_out / nf, trap_out / nf);
    match cfg.convention {
        Convention::Paper => Metrics {
            fpr: paper_fpr,
            auroc,
            aupr_in: ap_in,
            aupr_out: ap_out,
            detection_error: det_err,
        },
        Convention::OodPositive => Metrics {
            fpr: oodpos_fpr,
            auroc,
            aupr_in: trap_in,
            aupr_out: trap_out,
            detection_error: det_err,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(id: &[f64], ood: &[f64]) -> (Metrics, Metrics) {
        let p = evaluate(id, ood, &MetricsConfig::default()).unwrap();
        let o = evaluate(
            id,
            ood,
            &MetricsConfig {
                convention: Convention::OodPositive,
                tpr: 0.95,
            },
        )
        .unwrap();
        (p, o)
    }

    #[test]
    fn perfect_separation() {
        let (p, o) = both(&[3.0, 4.0, 5.0], &[0.0, 1.0]);
        for m in [p, o] {
            assert_eq!(m.auroc, 1.0);
            assert_eq!(m.aupr_in, 1.0);
            assert_eq!(m.aupr_out, 1.0);
            assert_eq!(m.fpr, 0.0);
            assert_eq!(m.detection_error, 0.0);
        }
    }

    #[test]
    fn all_tied_is_chance() {
        let (p, o) = both(&[1.0; 4], &[1.0; 6]);
        assert_eq!(p.auroc, 0.5);
        assert_eq!(p.fpr, 1.0);
        assert_eq!(o.fpr, 1.0);
        assert_eq!(p.aupr_in, 0.4); // AP = prevalence
        assert_eq!(p.aupr_out, 0.6);
        // trapezoid from (0, 1) to (1, 0.4)
        assert!((o.aupr_in - 0.7).abs() < 1e-15);
        assert_eq!(p.detection_error, 0.5);
    }

    #[test]
    fn small_hand_example() {
        // ID: 0.9 0.8 0.4, OOD: 0.7 0.4 0.1 -> pairs: 0.9>all(3), 0.8>all(3), 0.4: >0.1, tie 0.4 (1.5)
        let (p, _) = both(&[0.9, 0.8, 0.4], &[0.7, 0.4, 0.1]);
        assert!((p.auroc - 7.5 / 9.0).abs() < 1e-15);
        // ID recalls along the curve: 1/3, 2/3, 2/3 (t=0.7), 1 (t=0.4): closest to .95 is 1 -> fp = 2
        assert!((p.fpr - 2.0 / 3.0).abs() < 1e-15);
        // AP: recall steps 1/3 (prec 1), 1/3 (prec 1), 1/3 (prec 3/5)
        assert!((p.aupr_in - (1.0 + 1.0 + 0.6) / 3.0).abs() < 1e-15);
    }

    #[test]
    fn refusals() {
        let c = MetricsConfig::default();
        assert_eq!(evaluate(&[], &[1.0], &c), Err(MetricsError::Empty(Set::Id)));
        assert_eq!(
            evaluate(&[1.0], &[], &c),
            Err(MetricsError::Empty(Set::Ood))
        );
        let e = evaluate(&[1.0], &[0.0, f64::INFINITY], &c).unwrap_err();
        assert_eq!(
            e,
            MetricsError::NonFinite {
                set: Set::Ood,
                index: 1,
                value: f64::INFINITY
            }
        );
        assert_eq!(
            e.to_string(),
            "OOD score at index 1 is inf (non-finite scores are refused)"
        );
        for bad in [0.0, 1.0, -0.1, f64::NAN] {
            assert!(matches!(
                evaluate(&[1.0], &[0.0], &MetricsConfig { tpr: bad, ..c }),
                Err(MetricsError::Tpr(_))
            ));
        }
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let a = evaluate(&[0.0], &[-0.0], &MetricsConfig::default()).unwrap();
        assert_eq!(a.auroc, 0.5);
    }
}
