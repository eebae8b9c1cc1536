//! Scoring a model: logits in memory (MSP and energy at any temperature come from them), ODIN and
//! Mahalanobis with their hyper-parameters chosen on the validation OOD sets only
//! ([`ood_core::selection`]: lowest mean FPR95), then applied to the test sets.
use std::path::Path;

use ndarray::Array2;
use ood_core::metrics::MetricsConfig;
use ood_core::scores::{Energy, LogitScore, MahalanobisError, MahalanobisParams, Msp};
use ood_core::selection::select_on_scores;
use ood_data::transforms::Normalize;
use ood_nn::extract::InputSet;
use ood_nn::mahalanobis_input::{MahalanobisInput, Pass};
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
    let mut out = forward_set(model, path, norm, progress, false)?;
    Ok(out.remove(0))
}

/// Logits (`N x K`) and penultimate features (`N x D`) of a whole image set, from one forward
/// pass (the logits are the same as [`logits`]'s: the WideResNet's `forward` is this pass).
pub fn logits_and_features(
    model: &Classifier,
    path: &Path,
    norm: &Normalize,
    progress: bool,
) -> Result<(Array2<f64>, Array2<f64>)> {
    let mut out = forward_set(model, path, norm, progress, true)?;
    let features = out.pop().expect("two outputs");
    Ok((out.remove(0), features))
}

/// The outputs of every batch of `path`, as f64 matrices: logits, and features when asked.
fn forward_set(
    model: &Classifier,
    path: &Path,
    norm: &Normalize,
    progress: bool,
    with_features: bool,
) -> Result<Vec<Array2<f64>>> {
    let input = InputSet::open(path)?;
    let parts = 1 + usize::from(with_features);
    let mut values: Vec<Vec<f64>> = vec![Vec::with_capacity(input.len() * 10); parts];
    let mut cols = vec![0; parts];
    let what = if with_features { "outputs" } else { "logits" };
    let pb = super::progress::bar(
        input.len() as u64,
        progress,
        &format!("{what} {}", short(path)),
    );
    ood_nn::tch::no_grad(|| -> Result<()> {
        for batch in input.batches(BATCH, Some(norm), 1)? {
            let x = batch?.x.to_device(model.device());
            let outs = if with_features {
                let (l, f) = model.logits_and_features(&x)?;
                vec![l, f]
            } else {
                vec![model.logits(&x)?]
            };
            pb.inc(x.size()[0] as u64);
            for ((t, v), c) in outs.iter().zip(&mut values).zip(&mut cols) {
                *c = t.size()[1] as usize;
                v.extend(host_values(t, "outputs to host")?);
            }
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    values
        .into_iter()
        .zip(cols)
        .map(|(v, k)| {
            let (n, len) = (v.len() / k.max(1), v.len());
            Array2::from_shape_vec((n, k), v).map_err(|source| BenchError::LogitShape {
                values: len,
                classes: k,
                source,
            })
        })
        .collect()
}

/// The values of a tensor as f64 on the host, row-major.
pub fn host_values(t: &ood_nn::tch::Tensor, context: &'static str) -> Result<Vec<f64>> {
    let t = t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous();
    Vec::<f64>::try_from(t.view(-1)).map_err(|source| BenchError::Torch { context, source })
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

/// Fits with the papers' unshrunk covariance (`fit(0.0)`), or with [`FALLBACK_SHRINKAGE`] when
/// that estimate is singular (fewer images than feature dimensions: tiny runs); returns the
/// shrinkage used, for the record. One policy for Mahalanobis and the zoo's Gaussian methods.
pub fn with_fallback_shrinkage<T, E>(
    fit: impl Fn(f64) -> std::result::Result<T, E>,
    singular: impl Fn(&E) -> bool,
) -> std::result::Result<(T, f64), E> {
    match fit(0.0) {
        Ok(f) => Ok((f, 0.0)),
        Err(e) if singular(&e) => Ok((fit(FALLBACK_SHRINKAGE)?, FALLBACK_SHRINKAGE)),
        Err(e) => Err(e),
    }
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

/// The benchmark's pass of `model` over `input`: normalized by `norm`, in batches of [`BATCH`].
pub(super) fn pass<'a>(
    model: &'a Classifier,
    input: &'a InputSet,
    norm: &'a Normalize,
    progress: bool,
) -> Pass<'a> {
    Pass {
        model,
        input,
        normalize: Some(norm),
        batch_size: BATCH,
        progress,
    }
}

pub(super) fn stds(norm: &Normalize) -> Vec<f64> {
    norm.std.iter().map(|&s| s as f64).collect()
}

/// The sets the ODIN and Mahalanobis grids are chosen on and applied to: every setting is scored
/// on the validation sets (`val_id`, `val_ood`), the chosen one on `test` (ID test first, then
/// the OOD test sets).
pub struct GridSets<'a> {
    pub val_id: &'a Path,
    pub val_ood: Vec<&'a Path>,
    pub test: Vec<&'a Path>,
    pub progress: bool,
}

impl GridSets<'_> {
    /// `score(set, None)`: the `[setting][image]` scores of one set for every setting of
    /// `grid`; `score(set, Some(p))`: those of setting `p` alone. Returns the choice on the
    /// validation sets ([`Choice::on_validation`]) and the chosen setting's test scores.
    fn choose_then_test<P: Clone>(
        &self,
        grid: &[P],
        score: impl Fn(&Path, Option<&P>) -> Result<Vec<Vec<f64>>>,
    ) -> Result<(Choice<P>, Vec<Vec<f64>>)> {
        let id = score(self.val_id, None)?;
        let ood = self
            .val_ood
            .iter()
            .map(|p| score(p, None))
            .collect::<Result<Vec<_>>>()?;
        let choice = Choice::on_validation(grid, &id, &ood)?;
        let scores = self
            .test
            .iter()
            .map(|p| Ok(score(p, Some(&choice.chosen))?.remove(0)))
            .collect::<Result<Vec<_>>>()?;
        Ok((choice, scores))
    }
}

/// ODIN: the grid chosen on `sets`' validation sets, then the chosen setting on its test sets.
/// Returns the choice and the test scores.
pub fn odin(
    model: &Classifier,
    norm: &Normalize,
    grid: &OdinGrid,
    sets: &GridSets,
) -> Result<(Choice<OdinParams>, Vec<Vec<f64>>)> {
    let std = stds(norm);
    sets.choose_then_test(&grid.params(), |p, chosen| {
        let single;
        let g = match chosen {
            Some(&c) => {
                single = OdinGrid::single(c);
                &single
            }
            None => grid,
        };
        let input = InputSet::open(p)?;
        let progress = sets.progress;
        Ok(odin_scores(
            model,
            &input,
            Some(norm),
            &std,
            g,
            BATCH,
            progress,
        )?)
    })
}

/// Mahalanobis with input preprocessing: class means and tied covariance fitted on the
/// penultimate features `features` of training images (labels `fit_y`; extracted once per run
/// by [`logits_and_features`], shared with the detector zoo), noise magnitude chosen on `sets`'
/// validation sets, then applied to its test sets. Also returns the covariance shrinkage used
/// (0 unless singular).
pub fn mahalanobis(
    model: &Classifier,
    norm: &Normalize,
    epsilons: &[f64],
    features: &Array2<f64>,
    fit_y: &[i64],
    sets: &GridSets,
) -> Result<(Choice<f64>, f64, Vec<Vec<f64>>)> {
    let std = stds(norm);
    if fit_y.len() != features.nrows() {
        return Err(BenchError::FitLabels {
            labels: fit_y.len(),
            images: features.nrows(),
        });
    }
    let (fitted, shrinkage) = with_fallback_shrinkage(
        |shrinkage| MahalanobisParams { shrinkage }.fit(features.view(), fit_y),
        |e| matches!(e, MahalanobisError::Singular { .. }),
    )?;
    let m = MahalanobisInput::new(&fitted, model.device())?;
    let (choice, scores) = sets.choose_then_test(epsilons, |p, chosen| {
        let eps = chosen.map_or(epsilons, std::slice::from_ref);
        let input = InputSet::open(p)?;
        Ok(m.scores(pass(model, &input, norm, sets.progress), &std, eps)?)
    })?;
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
