//! The paper's evaluation protocol (Liu et al. 2020, Section 4.1, following Hendrycks et al.'s
//! Outlier Exposure code): for each OOD test set, draw `samples` OOD scores (default: one fifth
//! of the in-distribution test set, the code of record's `len(test_data) // 5`) without
//! replacement, `draws` times (default 10), compute every metric against the full
//! in-distribution set, and report the mean and the standard deviation over the draws.
//! A table over several OOD sets ends with their mean row, as in the paper's tables.
//!
//! Decisions: the standard deviation is the population one (`np.std`, ddof = 0), as printed by
//! the code of record; when an OOD set holds fewer than `samples` scores, every draw uses all of
//! them (the code of record's loader simply runs out of batches); each OOD set gets its own
//! random stream seeded by `seed` alone, so a row does not depend on which other sets are
//! evaluated or in which order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::metrics::{
    check_tpr, evaluate_sorted, sorted_desc, Metrics, MetricsConfig, MetricsError, Set,
};

/// Settings of the protocol; defaults are the paper's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProtocolConfig {
    /// Number of random OOD draws per set (paper: 10).
    pub draws: usize,
    /// OOD scores per draw; `None` = len(ID) / 5 (at least 1).
    pub samples: Option<usize>,
    /// Seed of the draws.
    pub seed: u64,
    pub metrics: MetricsConfig,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            draws: 10,
            samples: None,
            seed: 1,
            metrics: MetricsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("{0}")]
    Metrics(#[from] MetricsError),
    #[error("OOD set {name:?}: {source}")]
    OodSet {
        name: String,
        #[source]
        source: MetricsError,
    },
    #[error("draws must be at least 1")]
    NoDraws,
    #[error("samples per draw must be at least 1")]
    NoSamples,
    #[error("no OOD sets given")]
    NoSets,
}

/// Mean and standard deviation of every metric over the draws for one OOD set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: Metrics,
    pub std: Metrics,
    /// Number of draws.
    pub draws: usize,
    /// OOD scores per draw actually used.
    pub samples: usize,
    /// The metrics of each draw, in order.
    pub per_draw: Vec<Metrics>,
}

/// One row per OOD set, plus the mean over sets of each metric's mean (the paper's "average").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub rows: Vec<(String, Summary)>,
    pub mean: Metrics,
}

/// Run the protocol on one OOD set.
pub fn evaluate_draws(
    id: &[f64],
    ood: &[f64],
    cfg: &ProtocolConfig,
) -> Result<Summary, ProtocolError> {
    check_tpr(cfg.metrics.tpr)?;
    let id_sorted = sorted_desc(id, Set::Id)?;
    summarize(&id_sorted, ood, cfg)
}

/// Run the protocol on several OOD sets against the same in-distribution scores.
pub fn evaluate_table(
    id: &[f64],
    ood_sets: &[(String, Vec<f64>)],
    cfg: &ProtocolConfig,
) -> Result<Table, ProtocolError> {
    check_tpr(cfg.metrics.tpr)?;
    if ood_sets.is_empty() {
        return Err(ProtocolError::NoSets);
    }
    let id_sorted = sorted_desc(id, Set::Id)?;
    let mut rows = Vec::with_capacity(ood_sets.len());
    for (name, ood) in ood_sets {
        let summary = summarize(&id_sorted, ood, cfg).map_err(|e| match e {
            ProtocolError::Metrics(source) => ProtocolError::OodSet {
                name: name.clone(),
                source,
            },
            other => other,
        })?;
        rows.push((name.clone(), summary));
    }
    let means: Vec<Metrics> = rows.iter().map(|(_, s)| s.mean).collect();
    Ok(Table {
        mean: mean_std(&means).0,
        rows,
    })
}

fn summarize(
    id_sorted: &[f64],
    ood: &[f64],
    cfg: &ProtocolConfig,
) -> Result<Summary, ProtocolError> {
    if cfg.draws == 0 {
        return Err(ProtocolError::NoDraws);
    }
    if cfg.samples == Some(0) {
        return Err(ProtocolError::NoSamples);
    }
    // validate the whole OOD set once; draws are then known to be finite and non-empty
    if ood.is_empty() {
        return Err(MetricsError::Empty(Set::Ood).into());
    }
    if let Some(index) = crate::finite::first_nonfinite(ood) {
        return Err(MetricsError::NonFinite {
            set: Set::Ood,
            index,
            value: ood[index],
        }
        .into());
    }
    let samples = cfg
        .samples
        .unwrap_or((id_sorted.len() / 5).max(1))
        .min(ood.len());
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut draw = Vec::with_capacity(samples);
    let mut per_draw = Vec::with_capacity(cfg.draws);
    for _ in 0..cfg.draws {
        draw.clear();
        draw.extend(
            rand::seq::index::sample(&mut rng, ood.len(), samples)
                .into_iter()
                .map(|i| ood[i] + 0.0),
        );
        crate::sort::sort_desc(&mut draw);
        per_draw.push(evaluate_sorted(id_sorted, &draw, &cfg.metrics));
    }
    let (mean, std) = mean_std(&per_draw);
    Ok(Summary {
        mean,
        std,
        draws: cfg.draws,
        samples,
        per_draw,
    })
}

/// Mean and population standard deviation (ddof = 0) of each metric.
pub fn mean_std(values: &[Metrics]) -> (Metrics, Metrics) {
    let n = values.len() as f64;
    let mut mean = [0.0; 5];
    for v in values {
        for (m, x) in mean.iter_mut().zip(v.to_array()) {
            *m += x / n;
        }
    }
    let mut var = [0.0; 5];
    for v in values {
        for ((s, x), m) in var.iter_mut().zip(v.to_array()).zip(mean) {
            *s += (x - m) * (x - m) / n;
        }
    }
    (
        Metrics::from_array(mean),
        Metrics::from_array(var.map(f64::sqrt)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::evaluate;

    fn scores(n: usize, shift: f64) -> Vec<f64> {
        // deterministic, spread out, with ties
        (0..n)
            .map(|i| ((i * 37 % 101) as f64 / 10.0).round() + shift)
            .collect()
    }

    #[test]
    fn defaults_are_the_papers() {
        let c = ProtocolConfig::default();
        assert_eq!((c.draws, c.samples, c.metrics.tpr), (10, None, 0.95));
    }

    #[test]
    fn mean_and_std_over_draws_are_consistent() {
        let id = scores(500, 3.0);
        let ood = scores(2000, 0.0);
        let cfg = ProtocolConfig {
            draws: 7,
            seed: 42,
            ..Default::default()
        };
        let s = evaluate_draws(&id, &ood, &cfg).unwrap();
        assert_eq!((s.draws, s.samples, s.per_draw.len()), (7, 100, 7));
        // recompute mean and population std by hand
        let aurocs: Vec<f64> = s.per_draw.iter().map(|m| m.auroc).collect();
        let mean = aurocs.iter().sum::<f64>() / 7.0;
        let std = (aurocs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 7.0).sqrt();
        assert!((s.mean.auroc - mean).abs() < 1e-15 && (s.std.auroc - std).abs() < 1e-15);
        assert!(s.std.auroc > 0.0, "different draws give different AUROCs");
        // same seed, same result; another seed, another result
        assert_eq!(evaluate_draws(&id, &ood, &cfg).unwrap(), s);
        assert_ne!(
            evaluate_draws(&id, &ood, &ProtocolConfig { seed: 43, ..cfg })
                .unwrap()
                .mean,
            s.mean
        );
    }

    #[test]
    fn a_draw_of_the_whole_set_equals_the_plain_metrics() {
        let id = scores(50, 2.0);
        let ood = scores(30, 0.0);
        let cfg = ProtocolConfig {
            draws: 3,
            samples: Some(1000),
            ..Default::default()
        };
        let s = evaluate_draws(&id, &ood, &cfg).unwrap();
        assert_eq!(s.samples, 30);
        let full = evaluate(&id, &ood, &cfg.metrics).unwrap();
        // the mean of three equal values may differ from the value in the last bit
        for (m, f) in s.mean.to_array().iter().zip(full.to_array()) {
            assert!((m - f).abs() < 1e-15, "{m} vs {f}");
        }
        assert!(s.std.to_array().iter().all(|v| *v < 1e-15));
    }

    #[test]
    fn table_rows_are_independent_and_mean_row_averages() {
        let id = scores(400, 3.0);
        let a = ("a".to_string(), scores(900, 0.0));
        let b = ("b".to_string(), scores(300, 1.5));
        let cfg = ProtocolConfig::default();
        let t = evaluate_table(&id, &[a.clone(), b.clone()], &cfg).unwrap();
        let t_rev = evaluate_table(&id, &[b, a], &cfg).unwrap();
        assert_eq!(t.rows[0].1, t_rev.rows[1].1);
        let avg = (t.rows[0].1.mean.fpr + t.rows[1].1.mean.fpr) / 2.0;
        assert!((t.mean.fpr - avg).abs() < 1e-15);
    }

    #[test]
    fn errors_name_the_set() {
        let cfg = ProtocolConfig::default();
        let e =
            evaluate_table(&[1.0, 2.0], &[("svhn".into(), vec![0.0, f64::NAN])], &cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OOD set \"svhn\": OOD score at index 1 is NaN (non-finite scores are refused)"
        );
        assert_eq!(
            evaluate_table(&[1.0], &[], &cfg).unwrap_err(),
            ProtocolError::NoSets
        );
        let c0 = ProtocolConfig { draws: 0, ..cfg };
        assert_eq!(
            evaluate_draws(&[1.0], &[0.0], &c0).unwrap_err(),
            ProtocolError::NoDraws
        );
    }
}
