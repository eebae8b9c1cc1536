//! DICE, directed sparsification (Sun & Li: "DICE: Leveraging Sparsification for
//! Out-of-Distribution Detection", ECCV 2022, eq. 3-5 and the authors' code).
//!
//! With the mean training activation `m = mean_i h_i`, the contribution matrix is
//! `V = W ⊙ (1 m^T)` (K x D, `V_kj = W_kj m_j`). The mask keeps the weights whose contribution
//! exceeds the p-th percentile of all entries of V (`>` as the authors' code); the score is the
//! energy of the sparsified head: `logsumexp((W ⊙ M) h + b)`. Paper default p = 90 (CIFAR);
//! grid {10, 30, 50, 70, 90}. p = 0 keeps every weight (the authors' `>` would drop the
//! smallest entry, an artefact of the threshold being one of the entries).

use ndarray::Axis;
use serde::{Deserialize, Serialize};

use super::data::{check_percentile, head_energy, percentile};
use super::{DetectorError, FitData, Head, Inputs};

const KEY: &str = "dice";

/// DICE's hyper-parameter: the sparsity percentile p, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiceParams {
    pub percentile: f64,
}

impl Default for DiceParams {
    fn default() -> Self {
        Self { percentile: 90.0 }
    }
}

impl DiceParams {
    pub fn paper_grid() -> Vec<Self> {
        [10.0, 30.0, 50.0, 70.0, 90.0]
            .map(|percentile| Self { percentile })
            .to_vec()
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_percentile("DICE percentile", self.percentile)
    }
    /// The masked head from training features and the head.
    pub fn fit(&self, data: &FitData) -> Result<Dice, DetectorError> {
        self.validate()?;
        data.check()?;
        let features = data.features(KEY)?;
        let head = data.head(KEY)?;
        let mean = features.mean_axis(Axis(0)).expect("features are not empty");
        let contrib = &head.weight * &mean;
        let mut all: Vec<f64> = contrib.iter().copied().collect();
        let threshold = percentile(&mut all, self.percentile);
        let mut weight = head.weight.clone();
        if self.percentile > 0.0 {
            weight.zip_mut_with(&contrib, |w, &c| {
                if c <= threshold {
                    *w = 0.0
                }
            });
        }
        Ok(Dice {
            params: *self,
            threshold,
            masked: Head::new(weight, head.bias.clone())?,
        })
    }
}

/// A fitted DICE detector: the threshold and the sparsified head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dice {
    pub params: DiceParams,
    pub threshold: f64,
    pub masked: Head,
}

impl Dice {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.masked))?;
        Ok(head_energy(&self.masked, x.features(KEY)?))
    }
}
