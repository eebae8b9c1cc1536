//! Deep nearest neighbours (Sun, Ming, Zhu & Li: "Out-of-Distribution Detection with Deep
//! Nearest Neighbors", ICML 2022, eq. 2).
//!
//! Features are L2-normalised, `z = h / max(|h|, 1e-12)`; the score is minus the Euclidean
//! distance from z to its k-th nearest normalised training feature,
//! `S(x) = -|z - z_(k)|` (higher = in-distribution). The authors' code returns faiss's squared
//! distance, pytorch-ood 0.4 the distance: the same ranking; we follow the paper and
//! pytorch-ood. Paper default k = 50 (CIFAR-10, all training data); grid {50, 100, 200, 500,
//! 1000} (pytorch-ood's), capped at N.
//!
//! Search is exact (`knn_search`): f32 register-blocked products of every query with every
//! bank row, a bounded heap per query, then the k candidates re-measured in f64, so the
//! distance returned is exact up to f64 rounding (the f32 pass can only swap neighbours whose
//! distances agree to ~1e-7). The f32 bank is packed once per fitted model (at fit, or at the
//! first search after a load), not per call.

use std::sync::{Arc, OnceLock};

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::Matrix;
use super::knn_search::{candidates, exact, Bank32, Kernel};
use super::{DetectorError, FitData, Inputs};
use crate::limits::check_alloc;
use crate::scores::par::par_zip_rows;

const KEY: &str = "knn";

/// KNN's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KnnParams {
    pub k: usize,
    /// L2-normalise features first (the paper: yes).
    pub normalize: bool,
}

impl Default for KnnParams {
    fn default() -> Self {
        Self {
            k: 50,
            normalize: true,
        }
    }
}

impl KnnParams {
    pub fn paper_grid() -> Vec<Self> {
        [50, 100, 200, 500, 1000]
            .map(|k| Self { k, normalize: true })
            .to_vec()
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        if self.k == 0 {
            return Err(DetectorError::Param {
                name: "KNN k",
                value: 0.0,
                range: "at least 1",
            });
        }
        Ok(())
    }
    /// Keep the (normalised) training features as the bank.
    pub fn fit(&self, data: &FitData) -> Result<Knn, DetectorError> {
        self.validate()?;
        data.check()?;
        let features = data.features(KEY)?;
        if self.k > features.nrows() {
            return Err(DetectorError::KTooLarge {
                k: self.k,
                n: features.nrows(),
            });
        }
        check_alloc("KNN bank", features.len() as u128, 12)?;
        let knn = Knn {
            params: *self,
            bank: Matrix(self.prepare(features)),
            packed: Packed::default(),
        };
        // pack now, so that scoring finds it ready (an overflow is reported when scoring)
        let _ = knn.packed();
        Ok(knn)
    }
    fn prepare(&self, x: ArrayView2<f64>) -> Array2<f64> {
        if !self.normalize {
            return x.to_owned();
        }
        let mut z = Array2::<f64>::zeros(x.raw_dim());
        let done: Result<(), std::convert::Infallible> =
            par_zip_rows(x, &mut z, |_, src, mut dst| {
                for (s, mut d) in src.rows().into_iter().zip(dst.rows_mut()) {
                    let n = s.dot(&s).sqrt().max(1e-12);
                    d.zip_mut_with(&s, |o, &v| *o = v / n);
                }
                Ok(())
            });
        done.unwrap_or_else(|e| match e {});
        z
    }
}

/// The bank packed in f32 for the search, built once per model: not stored in files and not
/// compared (it is a function of `bank`). `Err(row)`: that bank row overflows f32.
#[derive(Debug, Clone, Default)]
pub struct Packed(OnceLock<Result<Arc<Bank32>, usize>>);

impl PartialEq for Packed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A fitted KNN detector: the bank of (normalised) training features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knn {
    pub params: KnnParams,
    /// Set `bank` only on a model whose search has not run yet (a freshly parsed file): the
    /// packed copy is made from it once.
    pub bank: Matrix,
    #[serde(skip)]
    pub packed: Packed,
}

/// The k nearest bank rows of one query: indices by increasing distance, and the distances.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub index: Vec<usize>,
    pub distance: Vec<f64>,
}

impl Knn {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(None)?;
        let features = x.features(KEY)?;
        Ok(self
            .search(features)?
            .into_iter()
            .map(|nb| -nb.distance[nb.distance.len() - 1])
            .collect())
    }

    fn packed(&self) -> Result<Arc<Bank32>, usize> {
        self.packed
            .0
            .get_or_init(|| Bank32::pack(self.bank.0.view()).map(Arc::new))
            .clone()
    }

    /// Exact k-nearest-neighbour search of raw (unnormalised) query features.
    pub fn search(&self, features: ArrayView2<f64>) -> Result<Vec<Neighbours>, DetectorError> {
        self.search_with(features, Kernel::best())
    }

    pub(crate) fn search_with(
        &self,
        features: ArrayView2<f64>,
        kernel: Kernel,
    ) -> Result<Vec<Neighbours>, DetectorError> {
        let bank = &self.bank.0;
        if features.ncols() != bank.ncols() {
            return Err(DetectorError::Dimension {
                what: "features",
                found: features.ncols(),
                against: "the KNN training bank",
                expected: bank.ncols(),
            });
        }
        let k = self.params.k;
        if k > bank.nrows() {
            return Err(DetectorError::KTooLarge { k, n: bank.nrows() });
        }
        check_alloc("KNN queries", features.len() as u128, 12)?;
        // The search runs in f32: a value or squared norm beyond its range would make every
        // distance NaN (no neighbour found), so it is refused here, naming the row.
        let packed = self.packed().map_err(|row| DetectorError::Overflow {
            method: "knn (training bank in f32)",
            row,
        })?;
        let queries = self.params.prepare(features);
        let q32: Vec<f32> = queries.iter().map(|&v| v as f32).collect();
        let d = bank.ncols();
        if let Some(row) = q32
            .chunks(d.max(1))
            .position(|r| !r.iter().map(|v| v * v).sum::<f32>().is_finite())
        {
            return Err(DetectorError::Overflow {
                method: "knn (query in f32)",
                row,
            });
        }
        let cand = candidates(&q32, &packed, k, kernel);
        Ok(cand
            .into_par_iter()
            .enumerate()
            .map(|(i, idx)| {
                let (index, distance) = exact(queries.row(i), bank.view(), idx);
                Neighbours { index, distance }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn bank() -> Array2<f64> {
        Array2::from_shape_fn((70, 5), |(i, j)| ((i * 37 + j * 11) % 17) as f64 - 4.0)
    }

    /// Regression: the f32 bank was converted again on every search; now it is packed once
    /// per model (at fit; after a file load, at the first search) and shared by later ones.
    #[test]
    fn bank_is_packed_once_per_model() {
        let f = bank();
        let fit = FitData {
            features: Some(f.view()),
            ..Default::default()
        };
        let m = KnnParams {
            k: 3,
            normalize: true,
        }
        .fit(&fit)
        .unwrap();
        let first = m.packed.0.get().expect("packed at fit").clone().unwrap();
        m.search(f.view()).unwrap();
        let again = m.packed().unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the search re-packed the bank");
        // a model parsed from its parts packs at its first search, then keeps it
        let parsed = Knn {
            params: m.params,
            bank: m.bank.clone(),
            packed: Packed::default(),
        };
        assert!(parsed.packed.0.get().is_none());
        assert_eq!(
            parsed.search(f.view()).unwrap(),
            m.search(f.view()).unwrap()
        );
        let p1 = parsed.packed().unwrap();
        parsed.search(f.view()).unwrap();
        assert!(Arc::ptr_eq(&p1, &parsed.packed().unwrap()));
    }

    /// The portable kernel and the detected one (AVX-512 where present) find the same
    /// neighbours and distances.
    #[test]
    fn kernels_agree_on_the_search() {
        let f = bank();
        let fit = FitData {
            features: Some(f.view()),
            ..Default::default()
        };
        let m = KnnParams {
            k: 9,
            normalize: true,
        }
        .fit(&fit)
        .unwrap();
        let q = Array2::from_shape_fn((21, 5), |(i, j)| ((i * 13 + j * 29) % 19) as f64 - 6.5);
        let a = m.search_with(q.view(), Kernel::Portable).unwrap();
        let b = m.search_with(q.view(), Kernel::best()).unwrap();
        for (x, y) in a.iter().zip(&b) {
            for (dx, dy) in x.distance.iter().zip(&y.distance) {
                assert!((dx - dy).abs() < 1e-12, "{dx} vs {dy}");
            }
        }
    }
}
