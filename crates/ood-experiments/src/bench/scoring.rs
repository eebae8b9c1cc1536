//! Scoring a model: logits in memory (MSP and energy at any temperature come from them), ODIN and
//! Mahalanobis with their hyper-parameters chosen on the validation OOD sets only
//! ([`ood_core::selection`]: lowest mean FPR95), then applied to the test sets.
use std::path::Path;

use ndarray::Array2;
use ood_core::metrics::MetricsConfig;
use ood_core::scores::{Energy, LogitScore, MahalanobisParams, Msp};
use ood_core::selection::select_on_scores;
use ood_data::transforms::Normalize;
use ood_nn::extract::InputSet;
use ood_nn::mahalanobis_input::{self, MahalanobisInput};
use ood_nn::model::Classifier;
use ood_nn::odin::{odin_scores, OdinGrid, OdinParams};
use ood_nn::tch::{Device, Kind};
use serde::{Deserialize, Serialize};

use super::error::{BenchError, Result};

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
            values.extend(Vec::<f64>::try_from(l.view(-1)).map_err(|source| {
                BenchError::Torch {
                    context: "logits to host",
                    source,
                }
            })?);
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let n = values.len() / k.max(1);
    let values_len = values.len();
    Array2::from_shape_vec((n, k), values).map_err(|source| BenchError::LogitShape {
        values: values_len,
        classes: k,
        source,
    })
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
        return Err(BenchError::LabelCount {
            rows: logits.nrows(),
            labels: labels.len(),
        });
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

impl<P: Clone> Choice<P> {
    /// Chosen by [`ood_core::selection::select_on_scores`] (lowest mean validation FPR95, first
    /// of equals): `id[s]` and `ood[v][s]` are the validation scores of setting `grid[s]`.
    pub fn on_validation(grid: &[P], id: &[Vec<f64>], ood: &[Vec<Vec<f64>>]) -> Result<Self> {
        let (sel, _) = select_on_scores(grid, id, ood, &MetricsConfig::default())?;
        Ok(Self {
            chosen: sel.chosen().clone(),
            grid: sel.grid,
            validation_fpr: sel.scores,
        })
    }
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
    let choice = Choice::on_validation(&grid.params(), &id, &ood)?;
    let single = OdinGrid::single(choice.chosen);
    let scores = test
        .iter()
        .map(|p| Ok(run(p, &single)?.remove(0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((choice, scores))
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
        return Err(BenchError::FitLabels {
            labels: fit_y.len(),
            images: fit_input.len(),
        });
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
    let choice = Choice::on_validation(epsilons, &id, &ood)?;
    let scores = test
        .iter()
        .map(|p| Ok(run(p, &[choice.chosen])?.remove(0)))
        .collect::<Result<Vec<_>>>()?;
    Ok((choice, shrinkage, scores))
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
    fn choice_records_the_grid_its_fprs_and_the_first_best() {
        let id = vec![(0..20).map(f64::from).collect::<Vec<f64>>(); 2];
        let ood = vec![vec![vec![100.0; 4], vec![-1.0; 4]]];
        let c = Choice::on_validation(&[0.5, 0.7], &id, &ood).unwrap();
        assert_eq!(
            c,
            Choice {
                grid: vec![0.5, 0.7],
                validation_fpr: vec![1.0, 0.0],
                chosen: 0.7
            }
        );
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
