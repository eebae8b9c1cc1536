//! ODIN (Liang, Li & Srikant, "Enhancing the Reliability of Out-of-distribution Image Detection
//! in Neural Networks", ICLR 2018), as the energy-OOD code of record runs it
//! (`utils/score_calculation.py`, `ODIN`):
//!
//! 1. `yhat = argmax f(x)`; loss `L = mean_i CE(f(x_i) / T, yhat_i) = -mean_i log S_yhat(x_i; T)`;
//! 2. input step on the *normalized* input, per channel `c`:
//!    `x' = x - eps * s / std[c]` with `s = +1 where dL/dx >= 0, else -1`
//!    (`torch.ge(grad, 0)` mapped to +-1: a zero gradient counts as +1, as in the code of record).
//!    Dividing by the normalization std makes `eps` a step in `[0, 1]` pixel units;
//! 3. score `max_k softmax(f(x') / T)_k` (higher = more in-distribution).
//!
//! Hyper-parameters: the code of record's grid (`CIFAR/run.sh`, `Odin`):
//! `T in {1, 10, 100, 1000}` and
//! `eps in {0, 0.0004, 0.0008, 0.0014, 0.002, 0.0024, 0.0028, 0.0032, 0.0038, 0.0048}`,
//! chosen by [`select_on_validation`]: the lowest mean FPR at 95% TPR over the *validation* OOD
//! sets (never the test OOD sets), as the paper's validation recipe (`test.py -v`).
//! (The ODIN paper's own grid is finer: 21 values of `eps` in `[0, 0.004]` and ten temperatures;
//! any grid can be passed in [`OdinGrid`].)
//!
//! Cost per batch: one forward and one backward per temperature, and one forward per `(T, eps)`
//! with `eps > 0` (the `eps = 0` logits are the first forward's).
use ood_core::metrics::MetricsConfig;
use ood_core::selection;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::extract::{progress_bar, torch_err, InferError, InputSet, Result};
use crate::model::Classifier;
use ood_data::transforms::Normalize;

/// The code of record's temperatures.
pub const TEMPERATURES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];
/// The code of record's noise magnitudes (`CIFAR/run.sh`).
pub const EPSILONS: [f64; 10] = [
    0.0, 0.0004, 0.0008, 0.0014, 0.002, 0.0024, 0.0028, 0.0032, 0.0038, 0.0048,
];

/// One ODIN setting.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OdinParams {
    pub temperature: f64,
    pub epsilon: f64,
}

/// The grid searched; scores come out in `temperatures`-major order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OdinGrid {
    pub temperatures: Vec<f64>,
    pub epsilons: Vec<f64>,
}

impl Default for OdinGrid {
    fn default() -> Self {
        Self {
            temperatures: TEMPERATURES.to_vec(),
            epsilons: EPSILONS.to_vec(),
        }
    }
}

impl OdinGrid {
    pub fn single(p: OdinParams) -> Self {
        Self {
            temperatures: vec![p.temperature],
            epsilons: vec![p.epsilon],
        }
    }

    /// Every setting, temperature-major.
    pub fn params(&self) -> Vec<OdinParams> {
        self.temperatures
            .iter()
            .flat_map(|&t| {
                self.epsilons.iter().map(move |&e| OdinParams {
                    temperature: t,
                    epsilon: e,
                })
            })
            .collect()
    }

    fn check(&self) -> Result<()> {
        if self.temperatures.is_empty() || self.epsilons.is_empty() {
            return Err(InferError::EmptyOdinGrid);
        }
        if let Some(&t) = self
            .temperatures
            .iter()
            .find(|&&t| !(t.is_finite() && t > 0.0))
        {
            return Err(InferError::OdinTemperature(t));
        }
        if let Some(&e) = self
            .epsilons
            .iter()
            .find(|&&e| !(e.is_finite() && e >= 0.0))
        {
            return Err(InferError::OdinEpsilon(e));
        }
        Ok(())
    }
}

/// `s / std[c]` with `s = +1 where grad >= 0 else -1` (the code of record's sign, zero -> +1),
/// broadcast over `N x C x H x W`.
pub(crate) fn signed_step(grad: &Tensor, std: &[f64]) -> Result<Tensor> {
    let c = grad.size()[1];
    if std.len() as i64 != c {
        return Err(InferError::StdChannels {
            stds: std.len(),
            channels: c,
        });
    }
    let sign = grad.ge(0.0).to_kind(Kind::Float) * 2.0 - 1.0;
    let std: Vec<f32> = std.iter().map(|&s| s as f32).collect();
    let std = Tensor::from_slice(&std)
        .to_device(grad.device())
        .view([1, c, 1, 1]);
    Ok(sign / std)
}

/// Gradient of `loss` with respect to `x` only (parameters untouched).
pub(crate) fn input_grad(loss: &Tensor, x: &Tensor, keep_graph: bool) -> Result<Tensor> {
    let mut g = Tensor::f_run_backward(&[loss], &[x], keep_graph, false)
        .map_err(torch_err("input gradient"))?;
    Ok(g.remove(0))
}

/// ODIN on one batch of normalized input: for each setting of `grid` (temperature-major), the
/// scores and the perturbed logits `f(x')` (`N x K`, before dividing by T).
pub fn odin_batch(
    model: &Classifier,
    x: &Tensor,
    std: &[f64],
    grid: &OdinGrid,
) -> Result<Vec<(Vec<f64>, Tensor)>> {
    grid.check()?;
    let x = x.detach().set_requires_grad(true);
    let logits = model.logits(&x)?;
    let pred = logits.argmax(1, false).detach();
    let clean = logits.detach();
    let mut out = Vec::with_capacity(grid.temperatures.len() * grid.epsilons.len());
    for (ti, &t) in grid.temperatures.iter().enumerate() {
        let loss = (&logits / t)
            .f_cross_entropy_loss(&pred, None::<Tensor>, Reduction::Mean, -100, 0.0)
            .map_err(torch_err("ODIN loss"))?;
        let last = ti + 1 == grid.temperatures.len();
        let step = signed_step(&input_grad(&loss, &x, !last)?, std)?;
        for &eps in &grid.epsilons {
            let l = if eps == 0.0 {
                clean.shallow_clone()
            } else {
                let xp = x.detach() - &step * eps;
                tch::no_grad(|| model.logits(&xp))?
            };
            let score = (&l / t).softmax(1, Kind::Float).max_dim(1, false).0;
            let score =
                Vec::<f64>::try_from(score.to_kind(Kind::Double).to_device(tch::Device::Cpu))
                    .map_err(torch_err("ODIN scores to host"))?;
            out.push((score, l));
        }
    }
    Ok(out)
}

/// ODIN scores of a whole input for every setting of `grid`: `[setting][image]`.
/// `std` is the per-channel normalization std of the model input (1 for unnormalized input).
pub fn odin_scores(
    model: &Classifier,
    input: &InputSet,
    normalize: Option<&Normalize>,
    std: &[f64],
    grid: &OdinGrid,
    batch_size: usize,
    progress: bool,
) -> Result<Vec<Vec<f64>>> {
    let mut scores = vec![Vec::with_capacity(input.len()); grid.params().len()];
    let pb = progress_bar(input.len(), progress, "ODIN");
    for batch in input.batches(batch_size, normalize, 1)? {
        let x = batch?.x.to_device(model.device());
        let n = x.size()[0] as u64;
        for (dst, (s, _)) in scores.iter_mut().zip(odin_batch(model, &x, std, grid)?) {
            dst.extend(s);
        }
        pb.inc(n);
    }
    pb.finish_and_clear();
    Ok(scores)
}

/// The outcome of a validation grid search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridSelection {
    /// Index of the chosen setting.
    pub best: usize,
    /// Mean FPR at the configured TPR over the validation OOD sets, per setting.
    pub mean_fpr: Vec<f64>,
    /// Mean AUROC, per setting (reported, not used to choose).
    pub mean_auroc: Vec<f64>,
}

/// Chooses the setting with the lowest mean FPR (at `cfg.tpr`, default 95%) over the validation
/// OOD sets; ties go to the earlier setting. `id[s]` are the in-distribution validation scores
/// of setting `s`, `ood[v][s]` those of validation OOD set `v`.
pub fn select_on_validation(
    id: &[Vec<f64>],
    ood: &[Vec<Vec<f64>>],
    cfg: &MetricsConfig,
) -> Result<GridSelection> {
    if id.is_empty() || ood.is_empty() {
        return Err(InferError::NoValidation);
    }
    let settings: Vec<usize> = (0..id.len()).collect();
    let (sel, val) = selection::select_on_scores(&settings, id, ood, cfg).map_err(|e| match e {
        selection::SelectionError::Metrics { source, .. } => InferError::from(source),
        other => InferError::Selection(other),
    })?;
    let best = sel.best;
    let mean_fpr = sel.scores;
    let mean_auroc = val.iter().map(|v| v.mean_auroc).collect();
    Ok(GridSelection {
        best,
        mean_fpr,
        mean_auroc,
    })
}
