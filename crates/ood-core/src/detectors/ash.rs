//! ASH, activation shaping (Djurisic, Bozanic, Ashok & Liu: "Extremely Simple Activation
//! Shaping for Out-of-Distribution Detection", ICLR 2023, Algorithm 1 and the authors' code).
//!
//! Per sample, keep the `k = D - round(D * p / 100)` largest activations (round half to even,
//! as NumPy) and zero the rest, then:
//! - ASH-P: keep the kept values as they are;
//! - ASH-B: replace every kept value by `s1 / k`, `s1 = sum(h)` before pruning;
//! - ASH-S: multiply the kept values by `exp(s1 / s2)`, `s2` = sum after pruning.
//!
//! The score is the energy of the head on the shaped features. Here ASH acts on the pooled
//! penultimate features (the paper shapes the last feature map before pooling; see
//! docs/detectors.md). Defaults from the paper's ImageNet headline results: ASH-P@90,
//! ASH-B@65, ASH-S@90; grid {65, 70, ..., 95}. Ties among equal activations are broken by the
//! lower index (torch.topk leaves that order unspecified).

use ndarray::{Array2, ArrayView2, ArrayViewMut1};
use serde::{Deserialize, Serialize};

use super::data::{check_percentile, head_energy};
use super::{DetectorError, FitData, Head, Inputs};
use crate::scores::contiguous;
use crate::scores::par::par_zip_rows;

/// Which ASH variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AshVariant {
    P,
    B,
    S,
}

impl AshVariant {
    pub fn key(self) -> &'static str {
        match self {
            AshVariant::P => "ash_p",
            AshVariant::B => "ash_b",
            AshVariant::S => "ash_s",
        }
    }
}

/// ASH's hyper-parameters: the variant and the pruning percentile, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AshParams {
    pub variant: AshVariant,
    pub percentile: f64,
}

impl AshParams {
    /// The paper's default for a variant.
    pub fn new(variant: AshVariant) -> Self {
        let percentile = match variant {
            AshVariant::B => 65.0,
            AshVariant::P | AshVariant::S => 90.0,
        };
        Self {
            variant,
            percentile,
        }
    }
    pub fn paper_grid(variant: AshVariant) -> Vec<Self> {
        (0..7)
            .map(|i| Self {
                variant,
                percentile: 65.0 + 5.0 * i as f64,
            })
            .collect()
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_percentile("ASH percentile", self.percentile)
    }
    /// ASH learns nothing from training data; it keeps the head.
    pub fn fit(&self, data: &FitData) -> Result<Ash, DetectorError> {
        self.validate()?;
        data.check()?;
        Ok(Ash {
            params: *self,
            head: data.head(self.variant.key())?.clone(),
        })
    }
}

/// A ready ASH detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ash {
    pub params: AshParams,
    pub head: Head,
}

/// How many of `dims` activations a percentile keeps: `dims - round_half_even(dims * p / 100)`.
pub fn kept(method: &'static str, dims: usize, percentile: f64) -> Result<usize, DetectorError> {
    let k = dims - ((dims as f64 * percentile / 100.0).round_ties_even() as usize).min(dims);
    if k == 0 {
        return Err(DetectorError::NothingKept {
            method,
            percentile,
            dims,
        });
    }
    Ok(k)
}

/// Indices of the `k` largest values of `row` (ties: lower index first), in `idx[..k]`.
pub fn top_k(row: &[f64], k: usize, idx: &mut Vec<usize>) {
    idx.clear();
    idx.extend(0..row.len());
    if k < row.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    }
    idx.truncate(k);
}

/// Shaped features (N x D, zeros where `shape` writes nothing), rows in parallel: for every
/// row, its `k` largest activations' indices and its sum `s1` go to `shape` with the output
/// row; `shape` returns false when its factor overflowed (an error naming that row). Shared
/// by ASH and SCALE.
pub(crate) fn shape_rows(
    method: &'static str,
    features: ArrayView2<f64>,
    k: usize,
    shape: impl Fn(&[f64], &[usize], f64, ArrayViewMut1<f64>) -> bool + Sync,
) -> Result<Array2<f64>, DetectorError> {
    let mut out = Array2::<f64>::zeros(features.raw_dim());
    par_zip_rows(features, &mut out, |offset, src, mut dst| {
        let (mut idx, mut buf) = (Vec::new(), Vec::new());
        for (r, (src, dst)) in src.rows().into_iter().zip(dst.rows_mut()).enumerate() {
            let row = contiguous(src, &mut buf);
            top_k(row, k, &mut idx);
            if !shape(row, &idx, row.iter().sum(), dst) {
                return Err(DetectorError::Overflow {
                    method,
                    row: offset + r,
                });
            }
        }
        Ok(())
    })?;
    Ok(out)
}

impl Ash {
    /// The shaped features (N x D).
    pub fn shape(&self, features: ArrayView2<f64>) -> Result<Array2<f64>, DetectorError> {
        let key = self.params.variant.key();
        let k = kept(key, features.ncols(), self.params.percentile)?;
        let variant = self.params.variant;
        shape_rows(key, features, k, |row, idx, s1, mut dst| match variant {
            AshVariant::P => {
                idx.iter().for_each(|&i| dst[i] = row[i]);
                true
            }
            AshVariant::B => {
                idx.iter().for_each(|&i| dst[i] = s1 / k as f64);
                true
            }
            AshVariant::S => {
                let s2: f64 = idx.iter().map(|&i| row[i]).sum();
                // all kept values zero: the shaped row is zero whatever the factor
                let f = if s2 == 0.0 { 0.0 } else { (s1 / s2).exp() };
                idx.iter().for_each(|&i| dst[i] = row[i] * f);
                f.is_finite()
            }
        })
    }

    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let shaped = self.shape(x.features(self.params.variant.key())?)?;
        Ok(head_energy(&self.head, shaped.view()))
    }
}
