//! Scoring a model: logits in memory (MSP and energy at any temperature come from them), ODIN and
//! Mahalanobis with their hyper-parameters chosen on the validation OOD sets only
//! ([`ood_nn::odin::select_on_validation`]: lowest mean FPR95), then applied to the test sets.
use std::path::Path;

use ndarray::Array2;
use ood_core::metrics::MetricsConfig;
use ood_core::scores::{Energy, LogitScore, MahalanobisParams, Msp};
use ood_data::transforms::Normalize;
use ood_nn::extract::InputSet;
use ood_nn::mahalanobis_input::{self, MahalanobisInput};
use ood_nn::model::Classifier;
use ood_nn::odin::{odin_scores, select_on_validation, OdinGrid, OdinParams};
use ood_nn::tch::{Device, Kind};
use serde::{Deserialize, Serialize};

use super::{BenchError, Result};

/// Covariance shrinkage used only when the unshrunk estimate is singular.
pub const FALLBACK_SHRINKAGE: f64 = 0.01;

/// Images per forward pass.
pub const BATCH: usize = 256;

/// Logits (`N x K`, f64) of a whole `.npy` image set.
pub fn logits(
    model: &Classifier,
    path: &Path,
    norm: &Normalize,
    progress: bool,
) -> Result<Array2<f64>> {
    let input = InputSet::open(path)?;
    let mut values: Vec<f64> = Vec::with_capacity(input.len() * 10);
    let mut k = 0;
    let pb = super::progress::bar(
        input.len() as u64,
        progress,
        &format!("logits {}", short(path)),
    );
    ood_nn::tch::no_grad(|| -> Result<()> {
        for batch in input.batches(BATCH, Some(norm), 1)? {
            let x = batch?.x.to_device(model.device());
            let l = model
                .logits(&x)?
                .to_kind(Kind::Double)
                .to_device(Device::Cpu)
                .contiguous();
            k = l.size()[1] as usize;
            pb.inc(l.size()[0] as u64);
            values.extend(
                Vec::<f64>::try_from(l.view(-1)).map_err(|e| BenchError::Torch(e.to_string()))?,
            );
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let n = values.len() / k.max(1);
    Array2::from_shape_vec((n, k), values).map_err(|e| BenchError::Data(e.to_string()))
}

fn short(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Negative free energy `T * logsumexp(f / T)` (higher = more in-distribution).
pub fn energy(logits: &Array2<f64>, t: f64) -> Result<Vec<f64>> {
    Ok(Energy { temperature: t }.score(logits.view())?)
}

/// Maximum softmax probability at temperature `t`.
pub fn msp(logits: &Array2<f64>, t: f64) -> Result<Vec<f64>> {
    Ok(Msp { temperature: t }.score(logits.view())?)
}

/// Fraction of rows whose argmax differs from the label.
pub fn error_rate(logits: &Array2<f64>, labels: &[i64]) -> Result<f64> {
    if logits.nrows() != labels.len() || labels.is_empty() {
        return Err(BenchError::Data(format!(
            "{} logit rows for {} labels",
            logits.nrows(),
            labels.len()
        )));
    }
    let wrong = logits
        .rows()
        .into_iter()
        .zip(labels)
        .filter(|(row, &y)| {
            let arg = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            arg as i64 != y
        })
        .count();
    Ok(wrong as f64 / labels.len() as f64)
}

/// What a grid search chose, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice<P> {
    pub grid: Vec<P>,
    /// Mean validation FPR95 of each setting (same order as `grid`).
    pub validation_fpr: Vec<f64>,
    pub chosen: P,
}

fn stds(norm: &Normalize) -> Vec<f64> {
    norm.std.iter().map(|&s| s as f64).collect()
}

/// ODIN: grid on the validation sets (`val_id`, `val_ood`), then the chosen setting on `test`
/// (ID test first, then the OOD test sets). Returns the choice and the test scores.
pub fn odin(
    model: &Classifier,
    norm: &Normalize,
    grid: &OdinGrid,
    val_id: &Path,
    val_ood: &[&Path],
    test: &[&Path],
    progress: bool,
) -> Result<(Choice<OdinParams>, Vec<Vec<f64>>)> {
    let std = stds(norm);
    let run = |p: &Path, g: &OdinGrid| -> Result<Vec<Vec<f64>>> {
        let input = InputSet::open(p)?;
        Ok(odin_scores(
            model,
            &input,
            Some(norm),
            &std,
            g,
            BATCH,
            progress,
        )?)
    };
    let id = run(val_id, grid)?;
    let ood = val_ood
        .iter()
        .map(|p| run(p, grid))
        .collect::<Result<Vec<_>>>()?;
    let sel = select_on_validation(&id, &ood, &MetricsConfig::default())?;
    let params = grid.params();
    let chosen = params[sel.best];
    let single = OdinGrid::single(chosen);
    let scores = test
        .iter()
        .map(|p| Ok(run(p, &single)?.remove(0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        Choice {
            grid: params,
            validation_fpr: sel.mean_fpr,
            chosen,
        },
        scores,
    ))
}

/// Mahalanobis with input preprocessing: class means and tied covariance fitted on the
/// penultimate features of `fit_x` (labels `fit_y`), noise magnitude chosen on the validation
/// sets, then applied to `test`. Also returns the covariance shrinkage used (0 unless singular).
#[allow(clippy::too_many_arguments)]
pub fn mahalanobis(
    model: &Classifier,
    norm: &Normalize,
    epsilons: &[f64],
    fit_x: &Path,
    fit_y: &[i64],
    val_id: &Path,
    val_ood: &[&Path],
    test: &[&Path],
    progress: bool,
) -> Result<(Choice<f64>, f64, Vec<Vec<f64>>)> {
    let std = stds(norm);
    let fit_input = InputSet::open(fit_x)?;
    if fit_y.len() != fit_input.len() {
        return Err(BenchError::Data(format!(
            "{} labels for {} Mahalanobis fit images",
            fit_y.len(),
            fit_input.len()
        )));
    }
    let features =
        mahalanobis_input::collect_features(model, &fit_input, Some(norm), BATCH, progress)?;
    // The paper's estimate has no shrinkage; with fewer images than feature dimensions (tiny
    // runs) the tied covariance is singular, and a small shrinkage is used and recorded instead.
    let (fitted, shrinkage) = match MahalanobisParams::default().fit(features.view(), fit_y) {
        Ok(f) => (f, 0.0),
        Err(ood_core::scores::MahalanobisError::Singular { .. }) => (
            MahalanobisParams {
                shrinkage: FALLBACK_SHRINKAGE,
            }
            .fit(features.view(), fit_y)?,
            FALLBACK_SHRINKAGE,
        ),
        Err(e) => return Err(e.into()),
    };
    let m = MahalanobisInput::new(&fitted, model.device())?;
    let run = |p: &Path, eps: &[f64]| -> Result<Vec<Vec<f64>>> {
        let input = InputSet::open(p)?;
        Ok(m.scores(model, &input, Some(norm), &std, eps, BATCH, progress)?)
    };
    let id = run(val_id, epsilons)?;
    let ood = val_ood
        .iter()
        .map(|p| run(p, epsilons))
        .collect::<Result<Vec<_>>>()?;
    let sel = select_on_validation(&id, &ood, &MetricsConfig::default())?;
    let chosen = epsilons[sel.best];
    let scores = test
        .iter()
        .map(|p| Ok(run(p, &[chosen])?.remove(0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((
        Choice {
            grid: epsilons.to_vec(),
            validation_fpr: sel.mean_fpr,
            chosen,
        },
        shrinkage,
        scores,
    ))
}

/// Mean FPR95 over validation OOD sets of ID validation scores `id` against each of `ood`.
pub fn mean_validation_fpr(id: &[f64], ood: &[Vec<f64>]) -> Result<f64> {
    if ood.is_empty() {
        return Err(BenchError::Data("no validation OOD sets".into()));
    }
    let cfg = MetricsConfig::default();
    let mut sum = 0.0;
    for o in ood {
        sum += ood_core::metrics::evaluate(id, o, &cfg)?.fpr;
    }
    Ok(sum / ood.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn error_rate_counts_wrong_argmax() {
        let l = array![
            [0.0, 2.0, 1.0],
            [3.0, 0.0, 0.0],
            [0.0, 0.0, 5.0],
            [1.0, 1.0, 0.0]
        ];
        // argmax 1, 0, 2, 0 (first of a tie)
        assert_eq!(error_rate(&l, &[1, 0, 2, 0]).unwrap(), 0.0);
        assert_eq!(error_rate(&l, &[1, 1, 1, 1]).unwrap(), 0.75);
        assert!(error_rate(&l, &[1]).is_err());
    }

    #[test]
    fn validation_fpr_is_the_mean_over_sets() {
        let id: Vec<f64> = (0..100).map(f64::from).collect();
        // all OOD below all ID -> 0; all OOD above -> 1
        let fpr = mean_validation_fpr(&id, &[vec![-1.0; 10], vec![1000.0; 10]]).unwrap();
        assert_eq!(fpr, 0.5);
    }

    #[test]
    fn energy_and_msp_from_logits() {
        let l = array![[0.0, 0.0], [2f64.ln(), 0.0]];
        let e = energy(&l, 1.0).unwrap();
        assert!((e[0] - 2f64.ln()).abs() < 1e-12 && (e[1] - 3f64.ln()).abs() < 1e-12);
        let s = msp(&l, 1.0).unwrap();
        assert!((s[0] - 0.5).abs() < 1e-12 && (s[1] - 2.0 / 3.0).abs() < 1e-12);
    }
}
