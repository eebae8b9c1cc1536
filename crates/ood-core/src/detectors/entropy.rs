//! Predictive entropy of the softmax (the classic uncertainty baseline, e.g. Hendrycks et al.
//! 2019; pytorch-ood's `Entropy`): `H(p) = -sum_k p_k ln p_k`, score `-H` (higher =
//! in-distribution), with `0 ln 0 = 0`. pytorch-ood clips p at 1e-7 first, which differs only
//! for probabilities below 1e-7. No hyper-parameters.

use serde::{Deserialize, Serialize};

use super::data::per_softmax_row;
use super::{DetectorError, FitData, Head, Inputs};

/// Entropy has no parameters; fitting validates and keeps the head, if given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EntropyParams;

impl EntropyParams {
    pub fn fit(&self, data: &FitData) -> Result<Entropy, DetectorError> {
        data.check()?;
        Ok(Entropy {
            head: data.head.cloned(),
        })
    }
}

/// A ready entropy score.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entropy {
    pub head: Option<Head>,
}

impl Entropy {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(self.head.as_ref())?;
        let logits = x.logits("entropy", self.head.as_ref())?;
        Ok(per_softmax_row(logits.view(), |p| sum_p_ln_p(p)))
    }
}

/// `sum_k p_k ln p_k` (minus the entropy), with `0 ln 0 = 0`.
pub fn sum_p_ln_p(p: &[f64]) -> f64 {
    p.iter().filter(|&&q| q > 0.0).map(|&q| q * q.ln()).sum()
}
