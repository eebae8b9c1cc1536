//! GradNorm (Huang, Geng & Li: "On the Importance of Gradients for Detecting Distributional
//! Shifts in the Wild", NeurIPS 2021, eq. 3-5), in closed form for the last layer.
//!
//! The authors' loss is the cross-entropy to a uniform target with all-one weights,
//! `L = -sum_k ln softmax(f / T)_k`, and the score is the L1 norm of its gradient with respect
//! to the last layer's weight W. With `f = W h + b`, `dL/dW = (1/T)(K p - 1) h^T`, so
//! `S(x) = (1/T) * sum_k |K p_k - 1| * sum_j |h_j|` (higher = in-distribution), no autograd.
//! pytorch-ood 0.4 averages over k (a factor 1/K) and, by default, adds the bias gradient;
//! we follow the authors (weight only). Default T = 1.

use serde::{Deserialize, Serialize};

use super::data::{check_positive, softmax_into};
use super::{DetectorError, FitData, Head, Inputs};

const KEY: &str = "gradnorm";

/// GradNorm's hyper-parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GradnormParams {
    pub temperature: f64,
}

impl Default for GradnormParams {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl GradnormParams {
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_positive("GradNorm temperature", self.temperature)
    }
    /// GradNorm learns nothing; it keeps the head.
    pub fn fit(&self, data: &FitData) -> Result<Gradnorm, DetectorError> {
        self.validate()?;
        data.check()?;
        Ok(Gradnorm {
            params: *self,
            head: data.head(KEY)?.clone(),
        })
    }
}

/// A ready GradNorm detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gradnorm {
    pub params: GradnormParams,
    pub head: Head,
}

impl Gradnorm {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let f = x.features(KEY)?;
        let t = self.params.temperature;
        let logits = self.head.logits(f) / t;
        let k = logits.ncols() as f64;
        let mut p = Vec::new();
        Ok(logits
            .rows()
            .into_iter()
            .zip(f.rows())
            .map(|(l, h)| {
                softmax_into(l, &mut p);
                let g: f64 = p.iter().map(|q| (k * q - 1.0).abs()).sum();
                g * h.iter().map(|v| v.abs()).sum::<f64>() / t
            })
            .collect())
    }
}
