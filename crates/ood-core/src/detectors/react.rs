//! ReAct (Sun, Guo & Li: "ReAct: Out-of-distribution Detection With Rectified Activations",
//! NeurIPS 2021, eq. 1-2).
//!
//! Penultimate activations are clipped at `c`, the p-th percentile of all training activations
//! (flattened, NumPy's linear interpolation): `h' = min(h, c)`, then the score is the energy of
//! the head on them: `S(x) = logsumexp(W h' + b)`. Paper default p = 90; grid
//! {85, 90, 95, 99} (the paper's ablation, as pytorch-ood's `hyperparameter_space`).

use serde::{Deserialize, Serialize};

use super::data::{check_percentile, head_energy, percentile};
use super::{DetectorError, FitData, Head, Inputs};
use crate::limits::check_alloc;

const KEY: &str = "react";

/// ReAct's hyper-parameter: the clipping percentile, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReactParams {
    pub percentile: f64,
}

impl Default for ReactParams {
    fn default() -> Self {
        Self { percentile: 90.0 }
    }
}

impl ReactParams {
    pub fn paper_grid() -> Vec<Self> {
        [85.0, 90.0, 95.0, 99.0]
            .map(|percentile| Self { percentile })
            .to_vec()
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_percentile("ReAct percentile", self.percentile)
    }
    /// The clipping threshold from training features; needs the head.
    pub fn fit(&self, data: &FitData) -> Result<React, DetectorError> {
        self.validate()?;
        data.check()?;
        let features = data.features(KEY)?;
        let head = data.head(KEY)?;
        check_alloc("ReAct activations", features.len() as u128, 8)?;
        let mut all: Vec<f64> = features.iter().copied().collect();
        Ok(React {
            params: *self,
            threshold: percentile(&mut all, self.percentile),
            head: head.clone(),
        })
    }
}

/// A fitted ReAct detector: the threshold and the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct React {
    pub params: ReactParams,
    pub threshold: f64,
    pub head: Head,
}

impl React {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let clipped = x.features(KEY)?.mapv(|v| v.min(self.threshold));
        Ok(head_energy(&self.head, clipped.view()))
    }
}
