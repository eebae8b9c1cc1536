//! GEN, generalized entropy (Liu, Lochman & Zach: "GEN: Pushing the Limits of Softmax-Based
//! Out-of-Distribution Detection", CVPR 2023, eq. 6 and the authors' code).
//!
//! With the softmax probabilities sorted in decreasing order `p_(1) >= p_(2) >= ...`,
//! `G_gamma(p) = sum_{j <= M} p_(j)^gamma (1 - p_(j))^gamma`, and the score is `-G` (higher =
//! in-distribution). Defaults gamma = 0.1, M = 100 (M is capped at K). The sum follows the
//! authors; pytorch-ood 0.4 takes the mean over the M terms and clamps p to [1e-7, 1 - 1e-7]
//! (a constant factor, and a difference only for p below 1e-7). Grid: gamma in
//! {0.01, 0.1, 0.5, 1, 2, 5, 10} x M in {10, 50, 100, 200, 500, 1000} (pytorch-ood's).

use serde::{Deserialize, Serialize};

use super::data::{check_positive, per_softmax_row};
use super::{DetectorError, FitData, Head, Inputs};

const KEY: &str = "gen";

/// GEN's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenParams {
    pub gamma: f64,
    /// Number of top classes; capped at K.
    pub m: usize,
}

impl Default for GenParams {
    fn default() -> Self {
        Self { gamma: 0.1, m: 100 }
    }
}

impl GenParams {
    pub fn paper_grid() -> Vec<Self> {
        let mut grid = Vec::new();
        for gamma in [0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0] {
            for m in [10, 50, 100, 200, 500, 1000] {
                grid.push(Self { gamma, m });
            }
        }
        grid
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_positive("GEN gamma", self.gamma)?;
        if self.m == 0 {
            return Err(DetectorError::Param {
                name: "GEN M",
                value: 0.0,
                range: "at least 1",
            });
        }
        Ok(())
    }
    /// GEN learns nothing; it keeps the head if given, to score features too.
    pub fn fit(&self, data: &FitData) -> Result<Gen, DetectorError> {
        self.validate()?;
        data.check()?;
        Ok(Gen {
            params: *self,
            head: data.head.cloned(),
        })
    }
}

/// A ready GEN detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gen {
    pub params: GenParams,
    pub head: Option<Head>,
}

impl Gen {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(self.head.as_ref())?;
        let logits = x.logits(KEY, self.head.as_ref())?;
        let g = self.params.gamma;
        Ok(per_softmax_row(logits.view(), |p| {
            p.sort_unstable_by(|a, b| b.total_cmp(a));
            let m = self.params.m.min(p.len());
            -p[..m]
                .iter()
                .map(|&q| q.powf(g) * (1.0 - q).powf(g))
                .sum::<f64>()
        }))
    }
}
