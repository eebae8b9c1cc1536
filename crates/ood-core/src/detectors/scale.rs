//! SCALE (Xu, Chen, Franchi & Yao: "Scaling for Training Time and Post-hoc Out-of-distribution
//! Detection Enhancement", ICLR 2024, eq. 4 and the authors' code).
//!
//! Like ASH-S without pruning: with `s1 = sum(h)` and `s2` the sum of the
//! `k = D - round(D * p / 100)` largest activations, `h' = h * exp(s1 / s2)`; the score is the
//! energy of the head on `h'`. Acts on the pooled penultimate features (as the paper does,
//! after the last average pooling). Paper default p = 85 (ImageNet); grid {65, 70, ..., 95}.

use serde::{Deserialize, Serialize};

use super::ash::{kept, shape_rows};
use super::data::{check_percentile, head_energy};
use super::{DetectorError, FitData, Head, Inputs};

const KEY: &str = "scale";

/// SCALE's hyper-parameter: the percentile of activations left out of `s2`, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleParams {
    pub percentile: f64,
}

impl Default for ScaleParams {
    fn default() -> Self {
        Self { percentile: 85.0 }
    }
}

impl ScaleParams {
    pub fn paper_grid() -> Vec<Self> {
        (0..7)
            .map(|i| Self {
                percentile: 65.0 + 5.0 * i as f64,
            })
            .collect()
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_percentile("SCALE percentile", self.percentile)
    }
    /// SCALE learns nothing from training data; it keeps the head.
    pub fn fit(&self, data: &FitData) -> Result<Scale, DetectorError> {
        self.validate()?;
        data.check()?;
        Ok(Scale {
            params: *self,
            head: data.head(KEY)?.clone(),
        })
    }
}

/// A ready SCALE detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub params: ScaleParams,
    pub head: Head,
}

impl Scale {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let features = x.features(KEY)?;
        let k = kept(KEY, features.ncols(), self.params.percentile)?;
        let scaled = shape_rows(KEY, features, k, |row, idx, s1, mut dst| {
            let s2: f64 = idx.iter().map(|&i| row[i]).sum();
            // top-k summing to zero on ReLU features means an all-zero row: leave it
            let f = if s2 == 0.0 { 1.0 } else { (s1 / s2).exp() };
            dst.iter_mut().zip(row).for_each(|(d, &v)| *d = v * f);
            f.is_finite()
        })?;
        Ok(head_energy(&self.head, scaled.view()))
    }
}
