//! Table 2's `mahalanobis_ensemble`: Mahalanobis as Lee et al. 2018 run it (every layer of
//! [`ood_nn::model::Classifier::layer_features`], input preprocessing per layer, a logistic
//! regression over the layer scores), beside the code of record's single-layer `mahalanobis`.
//!
//! Fitting data: the layer Gaussians on the same seeded training subset as `mahalanobis`
//! (`Plan::mahalanobis_fit_images`); the noise magnitude (the plan's `mahalanobis_epsilons`, the
//! single-layer variant's grid) and the regression on the selection validation sets only (ID
//! validation + the validation OOD sets; never a test set), split in halves by
//! [`ood_core::scores::EnsembleParams::select`]: the regression is fitted on one half, the
//! magnitude chosen by the lowest mean FPR95 on the other, as the single-layer eps is chosen.
use std::path::Path;

use ndarray::ArrayView2;
use ood_core::metrics::MetricsConfig;
use ood_core::scores::mahalanobis_ensemble::fit_layers;
use ood_core::scores::{
    EnsembleError, EnsembleParams, MahalanobisEnsemble, MahalanobisError, MahalanobisParams,
};
use ood_nn::extract::{InferError, InputSet};
use ood_nn::mahalanobis_ensemble::{collect_layer_features, LayerInputs};
use serde::{Deserialize, Serialize};

use super::context::RunContext;
use super::error::Result;
use super::method::Method;
use super::pretrained::Pretrained;
use super::scoring::{self, stds, with_fallback_shrinkage, Choice};

/// What the run fitted and chose for the layer ensemble (run.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnsembleRecord {
    /// Feature width of each layer.
    pub layer_dims: Vec<usize>,
    /// Covariance shrinkage of every layer's fit (0 unless a covariance was singular).
    pub shrinkage: f64,
    /// The eps grid, each setting's mean FPR95 on the selection half, the chosen eps.
    pub choice: Choice<f64>,
    /// The regression (on standardised layer scores) of the chosen eps.
    pub ensemble: MahalanobisEnsemble,
    /// The regression's weight on each layer's raw score.
    pub layer_weights: Vec<f64>,
}

/// Scores the pre-trained model with the layer ensemble and adds its row; a model without
/// layer features (a TorchScript module without `feature_list`) is noted and left out.
pub(super) fn score(ctx: &mut RunContext, pre: &Pretrained, err: f64) -> Result<()> {
    let t0 = std::time::Instant::now();
    let fit_set = InputSet::open(&ctx.sets.maha_fit)?;
    let features =
        match collect_layer_features(scoring::pass(&pre.model, &fit_set, &pre.norm, ctx.show())) {
            Err(InferError::Nn(e @ ood_nn::Error::NoLayerFeatures { .. })) => {
                ctx.stages
                    .note(&format!("Mahalanobis ensemble left out: {e}"));
                return Ok(());
            }
            other => other?,
        };
    let views: Vec<ArrayView2<f64>> = features.iter().map(|f| f.view()).collect();
    let labels = &ctx.sets.maha_labels;
    let (fits, shrinkage) = with_fallback_shrinkage(
        |shrinkage| fit_layers(&MahalanobisParams { shrinkage }, &views, labels),
        |e| {
            matches!(
                e,
                EnsembleError::Layer {
                    source: MahalanobisError::Singular { .. },
                    ..
                }
            )
        },
    )?;
    ctx.stages.note(&format!(
        "Mahalanobis ensemble: {} layers (widths {:?}) fitted on {} training images, eps and regression on validation",
        fits.len(),
        fits.iter().map(|f| f.dims()).collect::<Vec<_>>(),
        labels.len()
    ));
    let inputs = LayerInputs::new(&fits, pre.model.device())?;
    let std = stds(&pre.norm);
    let run = |p: &Path, eps: &[f64]| -> Result<Vec<ndarray::Array2<f64>>> {
        let input = InputSet::open(p)?;
        let pass = scoring::pass(&pre.model, &input, &pre.norm, ctx.show());
        Ok(inputs.scores(pass, &std, eps)?)
    };
    let grid = ctx.plan.mahalanobis_epsilons.clone();
    let id = run(&ctx.sets.select_id, &grid)?;
    let ood = ctx
        .sets
        .select_ood
        .iter()
        .map(|p| run(p, &grid))
        .collect::<Result<Vec<_>>>()?;
    let chosen = EnsembleParams::default().select(&grid, &id, &ood, &MetricsConfig::default())?;
    let eps = *chosen.selection.chosen();
    let ensemble = chosen.ensemble;
    let scores = ctx
        .test_paths()
        .iter()
        .map(|p| Ok(ensemble.score(run(p, &[eps])?[0].view())?))
        .collect::<Result<Vec<_>>>()?;
    let layer_weights = ensemble.raw_weights();
    ctx.stages.note(&format!(
        "Mahalanobis ensemble chose eps = {eps}, layer weights {layer_weights:.3?}"
    ));
    let scores = ctx.split(scores);
    let params = serde_json::json!({"epsilon": eps, "shrinkage": shrinkage, "layers": fits.len()});
    ctx.add(Method::MahalanobisEnsemble, params, err, scores);
    ctx.record.mahalanobis_ensemble = Some(EnsembleRecord {
        layer_dims: fits.iter().map(|f| f.dims()).collect(),
        shrinkage,
        choice: Choice {
            grid: chosen.selection.grid,
            validation_fpr: chosen.selection.scores,
            chosen: eps,
        },
        ensemble,
        layer_weights,
    });
    ctx.timings.record(
        "Mahalanobis ensemble (layer fits + validation grid + test)",
        t0.elapsed().as_secs_f64(),
    );
    Ok(())
}
