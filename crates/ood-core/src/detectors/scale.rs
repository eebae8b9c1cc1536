//! SCALE (Xu, Chen, Franchi & Yao: "Scaling for Training Time and Post-hoc Out-of-distribution
//! Detection Enhancement", ICLR 2024, eq. 4 and the authors' code).
//!
//! Like ASH-S without pruning: with `s1 = sum(h)` and `s2` the sum of the
//! `k = D - round(D * p / 100)` largest activations, `h' = h * exp(s1 / s2)`; the score is the
//! energy of the head on `h'`. [`Scale::score`] acts on the pooled penultimate features;
//! [`Scale::score_map`] is the authors' code's variant, with `s1`, `s2` taken over the last
//! feature map before pooling. Paper default p = 85 (ImageNet); grid {65, 70, ..., 95}.

use ndarray::ArrayView4;
use serde::{Deserialize, Serialize};

use super::ash::{kept, map_rows, pool_rows, shape_rows, top_k};
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
            let f = scale_factor(row, idx, s1);
            dst.iter_mut().zip(row).for_each(|(d, &v)| *d = v * f);
            f.is_finite()
        })?;
        Ok(head_energy(&self.head, scaled.view()))
    }
}

/// The SCALE factor `exp(s1 / s2)` of one row, `s1` its sum and `s2` the sum of its values at
/// `idx` (its `k` largest).
fn scale_factor(row: &[f64], idx: &[usize], s1: f64) -> f64 {
    let s2: f64 = idx.iter().map(|&i| row[i]).sum();
    // top-k summing to zero on ReLU features means an all-zero row: leave it
    if s2 == 0.0 {
        1.0
    } else {
        (s1 / s2).exp()
    }
}

/// [`scale_factor`] of one row of a map, its top `k` found here; an overflow names row `r`.
fn factor(row: &[f64], k: usize, idx: &mut Vec<usize>, r: usize) -> Result<f64, DetectorError> {
    top_k(row, k, idx);
    let f = scale_factor(row, idx, row.iter().sum());
    if !f.is_finite() {
        return Err(DetectorError::Overflow {
            method: KEY,
            row: r,
        });
    }
    Ok(f)
}

impl Scale {
    /// The authors' variant (their `scale(x, percentile)` on the `B x C x H x W` output of the
    /// last block): `s1` and `s2` over all C*H*W activations of a sample (k from C*H*W), the map
    /// scaled by `exp(s1 / s2)`, then global average pooling and the head's energy. On a 1 x 1
    /// map this is [`Scale::score`] on the features.
    pub fn score_map(&self, map: ArrayView4<f64>) -> Result<Vec<f64>, DetectorError> {
        let rows = map_rows(&map, &self.head)?;
        let k = kept(KEY, rows.ncols(), self.params.percentile)?;
        let mut pooled = pool_rows(rows.view(), map.dim().1);
        let (mut row, mut idx) = (Vec::new(), Vec::new());
        for (r, (src, mut dst)) in rows.rows().into_iter().zip(pooled.rows_mut()).enumerate() {
            row.clear();
            row.extend(src.iter().copied());
            // scaling by a per-sample factor commutes with the pooling
            dst *= factor(&row, k, &mut idx, r)?;
        }
        Ok(head_energy(&self.head, pooled.view()))
    }
}

#[cfg(test)]
mod map_tests {
    use super::*;
    use ndarray::{array, Array4};

    #[test]
    fn on_a_one_by_one_map_the_map_variant_is_the_pooled_one() {
        let head = Head::new(
            array![[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]],
            array![0.1, -0.2],
        )
        .unwrap();
        let scale = Scale {
            params: ScaleParams { percentile: 60.0 },
            head,
        };
        let feats = array![[0.5, 2.0, 0.1], [3.0, 0.0, 0.7]];
        let map = feats.clone().into_shape_with_order((2, 3, 1, 1)).unwrap();
        let pooled = scale
            .score(&Inputs {
                features: Some(feats.view()),
                logits: None,
            })
            .unwrap();
        let on_map = scale.score_map(map.view()).unwrap();
        for (a, b) in pooled.iter().zip(&on_map) {
            assert!((a - b).abs() < 1e-12, "{pooled:?} vs {on_map:?}");
        }
        // a 1 x 2 map: s1, s2 over 6 values, k = 6 - round(3.6) = 2
        let mut map = Array4::<f64>::zeros((1, 3, 1, 2));
        let values = [1.0, 3.0, 0.0, 0.5, 2.0, 0.5];
        map.iter_mut().zip(values).for_each(|(m, v)| *m = v);
        let f = (7.0f64 / 5.0).exp();
        let want = head_energy(&scale.head, (array![[2.0, 0.25, 1.25]] * f).view());
        let got = scale.score_map(map.view()).unwrap();
        assert!((got[0] - want[0]).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}
