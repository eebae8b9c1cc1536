//! The Mahalanobis layer ensemble of Lee et al. 2018 ("A Simple Unified Framework for Detecting
//! Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018; code:
//! pokaxpoka/deep_Mahalanobis_detector), the neural part: layer features and the per-layer
//! input preprocessing. The Gaussian fits, the regression over layers and the choice of the
//! noise magnitude are framework-free ([`ood_core::scores::mahalanobis_ensemble`]).
//!
//! Layers: [`Classifier::layer_features`] (for the WideResNet: conv1, block1, block2 and the
//! final map, globally average-pooled). For each layer `l` separately, as the authors'
//! `get_Mahalanobis_score(..., layer_index, magnitude)`: the closest class `c*` of the layer's
//! features, the input step of the single-layer detector
//! ([`MahalanobisInput::scores_batch_with`]: sign of the gradient of `d_{l,c*}`, divided by the
//! channel std) and the layer score `max_c -d_{l,c}(x')` of the perturbed input. The single-layer
//! variant of the code of record is the last layer of this ensemble.
use ndarray::Array2;
use ood_core::scores::mahalanobis_ensemble::{stack_columns, EnsembleError};
use ood_core::scores::Mahalanobis;
use tch::{Device, Tensor};

use crate::extract::Result;
use crate::mahalanobis_input::{collect_with, for_batches, MahalanobisInput, Pass};
use crate::model::Classifier;

/// Every layer's features of a whole input, `[layer]` -> `N x D_l` in `f64` (for fitting).
pub fn collect_layer_features(pass: Pass) -> Result<Vec<Array2<f64>>> {
    collect_with(pass, |x| pass.model.layer_features(x, usize::MAX))
}

/// Layer `l`'s features of `x` (a forward pass that stops after that layer).
fn layer(model: &Classifier, x: &Tensor, l: usize) -> Result<Tensor> {
    let mut f = model.layer_features(x, l + 1)?;
    if f.len() != l + 1 {
        return Err(EnsembleError::Layers {
            expected: l + 1,
            found: f.len(),
        }
        .into());
    }
    Ok(f.pop().expect("l + 1 layers"))
}

/// The fitted layer Gaussians on the model's device, ready for input preprocessing.
#[derive(Debug)]
pub struct LayerInputs {
    layers: Vec<MahalanobisInput>,
}

impl LayerInputs {
    pub fn new(fits: &[Mahalanobis], device: Device) -> Result<Self> {
        if fits.is_empty() {
            return Err(EnsembleError::NoLayers.into());
        }
        let layers = fits
            .iter()
            .map(|f| MahalanobisInput::new(f, device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers })
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// For each `eps`, the `N x L` layer scores of one batch of normalized input (column `l`:
    /// layer `l`'s score after layer `l`'s own input step).
    pub fn scores_batch(
        &self,
        model: &Classifier,
        x: &Tensor,
        std: &[f64],
        epsilons: &[f64],
    ) -> Result<Vec<Array2<f64>>> {
        let per_layer = self.columns_batch(model, x, std, epsilons)?;
        Ok((0..epsilons.len())
            .map(|e| stack_columns(&per_layer.iter().map(|p| p[e].clone()).collect::<Vec<_>>()))
            .collect())
    }

    /// `[layer][eps][image]` scores of one batch.
    fn columns_batch(
        &self,
        model: &Classifier,
        x: &Tensor,
        std: &[f64],
        epsilons: &[f64],
    ) -> Result<Vec<Vec<Vec<f64>>>> {
        self.layers
            .iter()
            .enumerate()
            .map(|(l, m)| m.scores_batch_with(|x| layer(model, x, l), x, std, epsilons))
            .collect()
    }

    /// Layer scores of a whole input for each `eps`: `[eps]` -> `N x L`.
    pub fn scores(&self, pass: Pass, std: &[f64], epsilons: &[f64]) -> Result<Vec<Array2<f64>>> {
        // [eps][layer] -> scores of every image so far
        let n = pass.input.len();
        let mut cols = vec![vec![Vec::with_capacity(n); self.layers()]; epsilons.len()];
        for_batches(pass, "Mahalanobis ensemble", |x| {
            let per_layer = self.columns_batch(pass.model, x, std, epsilons)?;
            for (l, per_eps) in per_layer.into_iter().enumerate() {
                for (dst, s) in cols.iter_mut().zip(per_eps) {
                    dst[l].extend(s);
                }
            }
            Ok(())
        })?;
        Ok(cols.iter().map(|c| stack_columns(c)).collect())
    }
}
