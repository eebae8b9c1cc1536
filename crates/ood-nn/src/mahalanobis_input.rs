//! Mahalanobis detector with input preprocessing (Lee, Lee, Lee & Shin, "A Simple Unified
//! Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018),
//! on the penultimate features, as the energy-OOD code of record runs it
//! (`utils/score_calculation.py`, `sample_estimator` and `get_Mahalanobis_score` on the last
//! feature layer, no layer ensemble or logistic regression):
//!
//! 1. fit on training-set features: class means `mu_c` and one tied covariance `Sigma`
//!    ([`ood_core::scores::MahalanobisParams::fit`], the `EmpiricalCovariance` estimate);
//! 2. `d_c(x) = (f(x) - mu_c)^T Sigma^-1 (f(x) - mu_c)`, `c* = argmin_c d_c(x)`;
//! 3. input step `x' = x - eps * s / std[ch]`, `s = +1 where grad_x mean_i(d_c*(x_i) / 2) >= 0`,
//!    else -1 (the code of record's sign and per-channel std division, as ODIN);
//! 4. score `max_c -d_c(x')` (higher = more in-distribution; the same scale as
//!    [`ood_core::scores::Mahalanobis::score`], which is this at `eps = 0`; the code of record
//!    reports `max_c -d_c / 2`, a monotone rescaling).
//!
//! Distances are computed in `f64` from the network's `f32` features.
//!
//! `eps` grid: the code of record's (`CIFAR/run.sh`, `M`): {0, 0.0005, 0.001, 0.0014, 0.002,
//! 0.005, 0.01}, chosen on the validation OOD sets by [`crate::odin::select_on_validation`].
use ndarray::Array2;
use ood_core::scores::{Mahalanobis, MahalanobisParams};
use ood_data::transforms::Normalize;
use tch::{Device, Kind, Tensor};

use crate::extract::{progress_bar, torch_err, InferError, InputSet, Result};
use crate::model::Classifier;
use crate::odin::{input_grad, signed_step};

/// The code of record's noise magnitudes for Mahalanobis, ascending.
pub const EPSILONS: [f64; 7] = [0.0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01];

/// Penultimate features of a whole input, `N x D` in `f64` (for fitting).
pub fn collect_features(pass: Pass) -> Result<Array2<f64>> {
    let mut layers = collect_with(pass, |x| Ok(vec![pass.model.features(x)?]))?;
    Ok(layers.pop().expect("one layer"))
}

/// Features of a whole input in `f64`, one `N x D_l` matrix per tensor `tap` returns for a batch
/// (`N x D_l` each): the one feature pass of the single-layer detector (the penultimate layer)
/// and of the layer ensemble ([`crate::mahalanobis_ensemble`], every layer).
pub(crate) fn collect_with(
    pass: Pass,
    tap: impl Fn(&Tensor) -> crate::Result<Vec<Tensor>>,
) -> Result<Vec<Array2<f64>>> {
    let mut values: Vec<Vec<f64>> = Vec::new();
    let mut dims: Vec<usize> = Vec::new();
    tch::no_grad(|| {
        for_batches(pass, "features", |x| {
            let layers = tap(x)?;
            if values.is_empty() {
                values = vec![Vec::new(); layers.len()];
                dims = vec![0; layers.len()];
            }
            for ((f, v), d) in layers.iter().zip(&mut values).zip(&mut dims) {
                let f = f.to_kind(Kind::Double).to_device(Device::Cpu).contiguous();
                *d = f.size()[1] as usize;
                v.extend(Vec::<f64>::try_from(f.view(-1)).map_err(torch_err("features to host"))?);
            }
            Ok(())
        })
    })?;
    if values.is_empty() {
        values.push(Vec::new());
        dims.push(0);
    }
    values
        .into_iter()
        .zip(dims)
        .map(|(v, d)| {
            let n = v.len() / d.max(1);
            Array2::from_shape_vec((n, d), v).map_err(InferError::FeatureShape)
        })
        .collect()
}

/// A pass over a whole input: the model, the input, its normalization, the batch size and
/// whether a progress bar is shown.
#[derive(Clone, Copy)]
pub struct Pass<'a> {
    pub model: &'a Classifier,
    pub input: &'a InputSet,
    pub normalize: Option<&'a Normalize>,
    pub batch_size: usize,
    pub progress: bool,
}

/// `f` on every normalized batch of the pass's input, on the model's device, with a progress
/// bar: the one batch loop of the single-layer detector and the layer ensemble.
pub(crate) fn for_batches(
    pass: Pass,
    what: &str,
    mut f: impl FnMut(&Tensor) -> Result<()>,
) -> Result<()> {
    let pb = progress_bar(pass.input.len(), pass.progress, what);
    for batch in pass.input.batches(pass.batch_size, pass.normalize, 1)? {
        let x = batch?.x.to_device(pass.model.device());
        f(&x)?;
        pb.inc(x.size()[0] as u64);
    }
    pb.finish_and_clear();
    Ok(())
}

/// Fits class means and the tied covariance on the features of `input` with `labels`.
pub fn fit(
    model: &Classifier,
    input: &InputSet,
    labels: &[i64],
    normalize: Option<&Normalize>,
    params: MahalanobisParams,
    batch_size: usize,
    progress: bool,
) -> Result<Mahalanobis> {
    if labels.len() != input.len() {
        return Err(InferError::LabelCount {
            labels: labels.len(),
            images: input.len(),
        });
    }
    let features = collect_features(Pass {
        model,
        input,
        normalize,
        batch_size,
        progress,
    })?;
    Ok(params.fit(features.view(), labels)?)
}

/// A fitted detector on the model's device, ready for input preprocessing.
#[derive(Debug)]
pub struct MahalanobisInput {
    /// `K x D`, f64.
    means: Tensor,
    /// `Sigma^-1`, `D x D`, f64.
    precision: Tensor,
}

impl MahalanobisInput {
    pub fn new(fit: &Mahalanobis, device: Device) -> Result<Self> {
        let to_t = |a: &Array2<f64>| {
            let (r, c) = a.dim();
            Tensor::from_slice(a.as_standard_layout().as_slice().expect("standard layout"))
                .view([r as i64, c as i64])
                .to_device(device)
        };
        let cov = to_t(fit.covariance());
        // Sigma = L L^T (ood_core already checked it is positive definite).
        let l = cov
            .f_linalg_cholesky(false)
            .map_err(torch_err("Cholesky factor"))?;
        let precision = l
            .f_cholesky_inverse(false)
            .map_err(torch_err("precision"))?;
        Ok(Self {
            means: to_t(fit.means()),
            precision,
        })
    }

    /// `N x K` squared distances of `N x D` features (any float kind; computed in f64).
    pub fn distances(&self, features: &Tensor) -> Tensor {
        let diff = features.to_kind(Kind::Double).unsqueeze(1) - self.means.unsqueeze(0);
        (diff.matmul(&self.precision) * &diff).sum_dim_intlist(-1, false, Kind::Double)
    }

    /// For each `eps`, the scores `max_c -d_c(x')` of one batch of normalized input.
    pub fn scores_batch(
        &self,
        model: &Classifier,
        x: &Tensor,
        std: &[f64],
        epsilons: &[f64],
    ) -> Result<Vec<Vec<f64>>> {
        self.scores_batch_with(|x| Ok(model.features(x)?), x, std, epsilons)
    }

    /// [`MahalanobisInput::scores_batch`] on the features `features(x)` gives (`N x D`,
    /// differentiable with respect to `x`): the penultimate layer, or one layer of the
    /// ensemble ([`crate::mahalanobis_ensemble`]).
    pub fn scores_batch_with(
        &self,
        features: impl Fn(&Tensor) -> Result<Tensor>,
        x: &Tensor,
        std: &[f64],
        epsilons: &[f64],
    ) -> Result<Vec<Vec<f64>>> {
        if let Some(&e) = epsilons.iter().find(|&&e| !(e.is_finite() && e >= 0.0)) {
            return Err(InferError::MahalanobisEpsilon(e));
        }
        let x = x.detach().set_requires_grad(true);
        let d = self.distances(&features(&x)?);
        let closest = d.argmin(1, true).detach();
        let loss = (d.gather(1, &closest, false) * 0.5).mean(Kind::Double);
        let need_grad = epsilons.iter().any(|&e| e > 0.0);
        let step = if need_grad {
            Some(signed_step(&input_grad(&loss, &x, false)?, std)?)
        } else {
            None
        };
        let score = |d: &Tensor| -> Result<Vec<f64>> {
            let s = -d.min_dim(1, false).0;
            Vec::<f64>::try_from(s.to_device(Device::Cpu)).map_err(torch_err("scores to host"))
        };
        let clean = score(&d.detach())?;
        epsilons
            .iter()
            .map(|&eps| match (&step, eps == 0.0) {
                (Some(step), false) => {
                    let xp = x.detach() - step * eps;
                    let f = tch::no_grad(|| features(&xp))?;
                    score(&self.distances(&f))
                }
                _ => Ok(clean.clone()),
            })
            .collect()
    }

    /// Scores of a whole input for each `eps`: `[eps][image]`.
    pub fn scores(&self, pass: Pass, std: &[f64], epsilons: &[f64]) -> Result<Vec<Vec<f64>>> {
        let mut out = vec![Vec::with_capacity(pass.input.len()); epsilons.len()];
        for_batches(pass, "Mahalanobis", |x| {
            for (dst, s) in out
                .iter_mut()
                .zip(self.scores_batch(pass.model, x, std, epsilons)?)
            {
                dst.extend(s);
            }
            Ok(())
        })?;
        Ok(out)
    }
}
