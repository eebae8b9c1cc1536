//! Mahalanobis on penultimate features (`mahalanobis_features`) in the detector API: the
//! fitting and formula live in [`crate::scores::mahalanobis`] (Lee et al. 2018, tied
//! covariance, score `max_c -(h - mu_c)^T Sigma^-1 (h - mu_c)`); this file adapts it and
//! stores it through its own file form. Also the building block of [`super::rmds`].

use serde::{Deserialize, Serialize};

use super::{DetectorError, FitData, Inputs};
use crate::scores::mahalanobis::MahalanobisFile;
use crate::scores::{Mahalanobis, MahalanobisError, MahalanobisParams};

const KEY: &str = "mahalanobis_features";

/// A fitted [`Mahalanobis`] that serialises as its [`MahalanobisFile`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "MahalanobisFile", into = "MahalanobisFile")]
pub struct Stored(pub Mahalanobis);

impl From<Stored> for MahalanobisFile {
    fn from(s: Stored) -> Self {
        s.0.to_file()
    }
}

impl TryFrom<MahalanobisFile> for Stored {
    type Error = MahalanobisError;
    fn try_from(f: MahalanobisFile) -> Result<Self, MahalanobisError> {
        Mahalanobis::from_file(f).map(Stored)
    }
}

/// Fit class means and the tied covariance on training features and labels.
pub fn fit(
    params: &MahalanobisParams,
    data: &FitData,
) -> Result<MahalanobisFeatures, DetectorError> {
    data.check()?;
    let m = params.fit(data.features(KEY)?, data.labels(KEY)?)?;
    Ok(MahalanobisFeatures { model: Stored(m) })
}

/// The fitted detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MahalanobisFeatures {
    pub model: Stored,
}

impl MahalanobisFeatures {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(None)?;
        Ok(self.model.0.score(x.features(KEY)?)?)
    }
}
