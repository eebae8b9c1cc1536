//! ASH, activation shaping (Djurisic, Bozanic, Ashok & Liu: "Extremely Simple Activation
//! Shaping for Out-of-Distribution Detection", ICLR 2023, Algorithm 1 and the authors' code).
//!
//! Per sample, keep the `k = D - round(D * p / 100)` largest activations (round half to even,
//! as NumPy) and zero the rest, then:
//! - ASH-P: keep the kept values as they are;
//! - ASH-B: replace every kept value by `s1 / k`, `s1 = sum(h)` before pruning;
//! - ASH-S: multiply the kept values by `exp(s1 / s2)`, `s2` = sum after pruning.
//!
//! The score is the energy of the head on the shaped features. [`Ash::score`] acts on the pooled
//! penultimate features (as pytorch-ood); [`Ash::score_map`] is the paper's variant, shaping
//! the last feature map before pooling (docs/detectors.md says which input gives which). Defaults from the paper's ImageNet headline results: ASH-P@90,
//! ASH-B@65, ASH-S@90; grid {65, 70, ..., 95}. Ties among equal activations are broken by the
//! lower index (torch.topk leaves that order unspecified).

use ndarray::{s, Array2, ArrayView2, ArrayView4, ArrayViewMut1, CowArray, Ix2};
use serde::{Deserialize, Serialize};

use super::data::{check_finite, check_percentile, head_energy};
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

// ---------------------------------------------------------------------------------------------
// The paper's variant: shaping the feature map before pooling

/// An `N x C x H x W` feature map checked against the head (C = D, values finite) and viewed as
/// `N x (C*H*W)` rows in (c, h, w) order, as `x.view(b, c * h * w)` in the authors' code.
pub fn map_rows<'a>(
    map: &'a ArrayView4<'a, f64>,
    head: &Head,
) -> Result<CowArray<'a, f64, Ix2>, DetectorError> {
    let (n, c, h, w) = map.dim();
    if n * c * h * w == 0 {
        return Err(DetectorError::Empty {
            what: "feature map",
        });
    }
    if c != head.dims() {
        return Err(DetectorError::Dimension {
            what: "feature maps (as channels)",
            found: c,
            against: "the head weight W",
            expected: head.dims(),
        });
    }
    let rows = map
        .as_standard_layout()
        .into_shape_with_order((n, c * h * w))
        .expect("standard layout reshapes");
    check_finite("feature-map value", rows.view())?;
    Ok(rows)
}

/// Global average pooling of `N x (C*H*W)` rows in (c, h, w) order: `N x C`.
pub fn pool_rows(rows: ArrayView2<f64>, channels: usize) -> Array2<f64> {
    let hw = rows.ncols() / channels;
    Array2::from_shape_fn((rows.nrows(), channels), |(r, c)| {
        rows.slice(s![r, c * hw..(c + 1) * hw]).sum() / hw as f64
    })
}

impl Ash {
    /// The paper's variant (Djurisic et al. 2023, Algorithm 1; the authors' `ash_p/b/s` act on
    /// the `B x C x H x W` output of the last block): the top k of all C*H*W activations of a
    /// sample are kept (k from C*H*W) and shaped as in [`Ash::shape`], then global average
    /// pooling gives the features the head scores (energy). On a 1 x 1 map this is
    /// [`Ash::score`] on the features.
    pub fn score_map(&self, map: ArrayView4<f64>) -> Result<Vec<f64>, DetectorError> {
        let rows = map_rows(&map, &self.head)?;
        let shaped = self.shape(rows.view())?;
        let pooled = pool_rows(shaped.view(), map.dim().1);
        Ok(head_energy(&self.head, pooled.view()))
    }
}

#[cfg(test)]
mod map_tests {
    use super::*;
    use ndarray::{array, Array4};

    fn head() -> Head {
        Head::new(
            array![[1.0, -0.5, 0.2, 0.0], [0.3, 0.8, -1.0, 0.5]],
            array![0.1, -0.2],
        )
        .unwrap()
    }

    #[test]
    fn on_a_one_by_one_map_the_paper_variant_is_the_pooled_one() {
        let feats = array![[0.5, 2.0, 0.0, 1.5], [3.0, 0.1, 0.7, 0.2]];
        let map = feats.clone().into_shape_with_order((2, 4, 1, 1)).unwrap();
        for variant in [AshVariant::P, AshVariant::B, AshVariant::S] {
            let ash = AshParams {
                variant,
                percentile: 50.0,
            };
            let ash = ash
                .fit(&FitData {
                    head: Some(&head()),
                    ..FitData::default()
                })
                .unwrap();
            let pooled = ash
                .score(&Inputs {
                    features: Some(feats.view()),
                    logits: None,
                })
                .unwrap();
            let on_map = ash.score_map(map.view()).unwrap();
            for (a, b) in pooled.iter().zip(&on_map) {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{variant:?}: {pooled:?} vs {on_map:?}"
                );
            }
        }
    }

    #[test]
    fn the_map_variant_prunes_over_all_positions() {
        // one sample, C = 4, 2 x 1 map; ASH-P at 75 keeps the 2 largest of the 8 values
        let mut map = Array4::<f64>::zeros((1, 4, 2, 1));
        let values = [1.0, 5.0, 0.5, 0.2, 4.0, 0.3, 0.1, 0.0];
        map.iter_mut().zip(values).for_each(|(m, v)| *m = v);
        let ash = Ash {
            params: AshParams {
                variant: AshVariant::P,
                percentile: 75.0,
            },
            head: head(),
        };
        // kept: 5.0 (channel 0) and 4.0 (channel 2), pooled over 2 positions
        let pooled = array![[2.5, 0.0, 2.0, 0.0]];
        let want = head_energy(&head(), pooled.view());
        let got = ash.score_map(map.view()).unwrap();
        assert!((got[0] - want[0]).abs() < 1e-12, "{got:?} vs {want:?}");
        let wrong = Array4::<f64>::zeros((1, 3, 2, 2));
        let e = ash.score_map(wrong.view()).unwrap_err().to_string();
        assert!(e.contains("3 columns but the head weight W has 4"), "{e}");
    }
}
