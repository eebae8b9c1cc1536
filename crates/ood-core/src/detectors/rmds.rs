//! Relative Mahalanobis distance (Ren, Fort, Liu et al.: "A Simple Fix to Mahalanobis
//! Distance for Improving Near-OOD Detection", arXiv:2106.09022, 2021, eq. 3).
//!
//! `MD_k(h) = (h - mu_k)^T Sigma^-1 (h - mu_k)` with class means and the tied covariance, and
//! `MD_0(h)` of one background Gaussian fitted on all training features (mean and full
//! covariance, 1/N). Score `-min_k (MD_k(h) - MD_0(h))` (higher = in-distribution). Both fits
//! are [`crate::scores::mahalanobis`] (the background is the one-class case, its covariance the
//! within-class plus the between-class scatter, so one pass over the features serves both). pytorch-ood 0.4
//! divides neither covariance by N and adds a 1e-6 ridge: its score is N times ours up to the
//! ridge. Optional shrinkage as for Mahalanobis (default 0, the paper's estimate).

use serde::{Deserialize, Serialize};

use super::mahalanobis::Stored;
use super::{DetectorError, FitData, Inputs};
use crate::scores::MahalanobisParams;

const KEY: &str = "rmds";

/// Fit the class-conditional and the background Gaussians.
pub fn fit(params: &MahalanobisParams, data: &FitData) -> Result<Rmds, DetectorError> {
    data.check()?;
    let features = data.features(KEY)?;
    let labels = data.labels(KEY)?;
    let (classes, background) = params.fit_with_background(features, labels)?;
    Ok(Rmds {
        classes: Stored(classes),
        background: Stored(background),
    })
}

/// A fitted RMDS detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rmds {
    pub classes: Stored,
    pub background: Stored,
}

impl Rmds {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(None)?;
        let f = x.features(KEY)?;
        // max_k -MD_k - (-MD_0) = -min_k (MD_k - MD_0)
        let class = self.classes.0.score(f)?;
        let background = self.background.0.score(f)?;
        Ok(class.iter().zip(&background).map(|(c, b)| c - b).collect())
    }
}
