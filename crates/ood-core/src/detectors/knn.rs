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
//! bank row keep every candidate that the f32 rounding bound cannot rule out, and those are
//! re-measured in f64, so the neighbours (ties: lower index) and distances are those of a
//! plain f64 scan. The f32 bank is packed once per fitted model (at fit, or at the first
//! search after a load), not per call.

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
                let (index, distance) = exact(queries.row(i), bank.view(), idx, k);
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

    /// Every kernel this CPU has (portable, AVX2, AVX-512) finds the same neighbours and
    /// distances.
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
        for kernel in Kernel::available() {
            let b = m.search_with(q.view(), kernel).unwrap();
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.index, y.index, "{kernel:?}");
                for (dx, dy) in x.distance.iter().zip(&y.distance) {
                    assert!((dx - dy).abs() < 1e-12, "{kernel:?}: {dx} vs {dy}");
                }
            }
        }
    }

    fn fit(f: &Array2<f64>, k: usize, normalize: bool) -> Knn {
        let fit = FitData {
            features: Some(f.view()),
            ..Default::default()
        };
        KnnParams { k, normalize }.fit(&fit).unwrap()
    }

    /// The neighbours and distances of a plain f64 scan (ties: lower index). Integer data, so
    /// the f64 distances are exact whatever the summation order.
    fn naive(bank: &Array2<f64>, q: ArrayView2<f64>, k: usize) -> Vec<Neighbours> {
        q.rows()
            .into_iter()
            .map(|q| {
                let mut all: Vec<(f64, usize)> = bank
                    .rows()
                    .into_iter()
                    .enumerate()
                    .map(|(i, b)| ((&b - &q).mapv(|v| v * v).sum().sqrt(), i))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                Neighbours {
                    index: all[..k].iter().map(|p| p.1).collect(),
                    distance: all[..k].iter().map(|p| p.0).collect(),
                }
            })
            .collect()
    }

    /// Regression: only the k f32-best were re-measured in f64. Far from the origin f32's
    /// `|b|^2 - 2 q.b` is off by several units, so the search returned wrong neighbours and
    /// k-th distances. Now every candidate within the rounding bound is re-measured: the same
    /// indices (ties at the k-th place included) and distances as a plain f64 scan, for both
    /// kernels, D = 1 and D = 3 (shorter than a vector), k = 1 .. N.
    #[test]
    fn search_equals_a_plain_f64_scan_far_from_the_origin() {
        for d in [1, 3, 17] {
            let val = |i: usize, j: usize| 4096.0 + ((i * 7 + j * 5) % 9) as f64;
            let bank = Array2::from_shape_fn((75, d), |(i, j)| val(i, j));
            let q = Array2::from_shape_fn((30, d), |(i, j)| val(i + 3, j + 1) + (i % 3) as f64);
            for k in [1, 4, 33, 75] {
                let m = fit(&bank, k, false);
                let want = naive(&bank, q.view(), k);
                for kernel in Kernel::available() {
                    let got = m.search_with(q.view(), kernel).unwrap();
                    assert_eq!(got, want, "{kernel:?} D = {d} k = {k}");
                }
            }
        }
        // values that f32 cannot tell apart: the nearest is row 1 (1e-5 away), not row 0
        let bank = Array2::from_shape_vec((2, 1), vec![1000.00002, 1000.00001]).unwrap();
        let q = Array2::from_elem((1, 1), 1000.0);
        for kernel in Kernel::available() {
            let got = fit(&bank, 1, false).search_with(q.view(), kernel).unwrap();
            assert_eq!(got[0].index, vec![1], "{kernel:?}");
            assert!((got[0].distance[0] - 1e-5).abs() < 1e-9, "{:?}", got[0]);
        }
    }

    /// Regression: squared norms finite in f32 but a distance past f32's range (|b| = |q| =
    /// 1.8e19, opposite signs) gave no candidate and the score indexed an empty list (a
    /// panic). Such a query is now measured in f64 against the whole bank.
    #[test]
    fn distances_past_f32_are_measured_in_f64() {
        let bank = Array2::from_shape_vec((3, 1), vec![1.8e19, 1.7e19, -1.0]).unwrap();
        let q = Array2::from_shape_vec((2, 1), vec![-1.8e19, 1.0]).unwrap();
        let m = fit(&bank, 2, false);
        for kernel in Kernel::available() {
            let got = m.search_with(q.view(), kernel).unwrap();
            assert_eq!(got[0].index, vec![2, 1], "{kernel:?}");
            assert_eq!(got[1].index, vec![2, 1], "{kernel:?}");
        }
        let s = m
            .score(&Inputs {
                features: Some(q.view()),
                logits: None,
            })
            .unwrap();
        assert!((s[0] / -3.5e19 - 1.0).abs() < 1e-12, "{}", s[0]);
    }

    /// Many rows tied within the rounding bound (a bank of copies): the query gives up on f32
    /// and is measured in f64; the lowest indices win. No query rows: no neighbours.
    #[test]
    fn ties_beyond_the_buffer_and_empty_queries() {
        let mut bank = Array2::from_elem((400, 3), 0.5);
        bank.row_mut(399).fill(0.25);
        let m = fit(&bank, 3, false);
        let q = Array2::from_elem((2, 3), 0.3);
        for kernel in Kernel::available() {
            let got = m.search_with(q.view(), kernel).unwrap();
            assert_eq!(got[0].index, vec![399, 0, 1], "{kernel:?}");
        }
        let none = Array2::<f64>::zeros((0, 3));
        assert!(m.search(none.view()).unwrap().is_empty());
    }

    /// The same neighbours and distances on rayon pools of 1 and 2 threads (more query rows
    /// than one parallel block).
    #[test]
    fn search_is_independent_of_the_thread_count() {
        let bank = Array2::from_shape_fn((300, 6), |(i, j)| ((i * 31 + j * 17) % 23) as f64);
        let q = Array2::from_shape_fn((700, 6), |(i, j)| ((i * 13 + j * 7) % 19) as f64);
        let m = fit(&bank, 5, true);
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| m.search(q.view()).unwrap())
        };
        let one = run(1);
        assert_eq!(one.len(), 700);
        assert_eq!(one, run(2));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Small integer features (many ties at the k-th place) at a random offset from the
        /// origin: both kernels give a plain f64 scan's neighbours, indices and distances.
        #[test]
        fn search_equals_a_naive_scan_with_ties(
            d in 1usize..20,
            n in 1usize..70,
            seed in 0usize..1000,
            offset in proptest::prop_oneof![proptest::strategy::Just(0.0), 1.0f64..5000.0],
            k in 1usize..70,
        ) {
            let k = k.min(n);
            let offset = offset.round();
            let val = |i: usize, j: usize| offset + ((i * 131 + j * 71 + seed * 17) % 5) as f64;
            let bank = Array2::from_shape_fn((n, d), |(i, j)| val(i, j));
            let q = Array2::from_shape_fn((13, d), |(i, j)| val(i * 3 + 1000, j) - 1.0);
            let m = fit(&bank, k, false);
            let want = naive(&bank, q.view(), k);
            for kernel in Kernel::available() {
                let got = m.search_with(q.view(), kernel).unwrap();
                proptest::prop_assert_eq!(&got, &want, "{:?}", kernel);
            }
        }
    }
}
