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
//! Search is exact: blocks of queries times blocks of the bank in f32 through
//! `matrixmultiply`'s sgemm (`|q - b|^2 = |b|^2 - 2 q.b + |q|^2`), a bounded heap per query, and
//! then the k candidates re-measured in f64, so the distance returned is exact up to f64 rounding
//! (the f32 pass can only swap neighbours whose distances agree to ~1e-7).

use std::collections::BinaryHeap;

use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::Matrix;
use super::{DetectorError, FitData, Inputs};
use crate::limits::check_alloc;

const KEY: &str = "knn";
/// Query rows per task and bank rows per matrix product (a 256 x 1024 f32 block is 1 MiB).
const QUERY_BLOCK: usize = 256;
const BANK_BLOCK: usize = 1024;

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
        check_alloc("KNN bank", features.len() as u128, 8)?;
        Ok(Knn {
            params: *self,
            bank: Matrix(self.prepare(features)),
        })
    }
    fn prepare(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut z = x.to_owned();
        if self.normalize {
            for mut r in z.rows_mut() {
                let n = r.dot(&r).sqrt().max(1e-12);
                r /= n;
            }
        }
        z
    }
}

/// A fitted KNN detector: the bank of (normalised) training features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knn {
    pub params: KnnParams,
    pub bank: Matrix,
}

/// The k nearest bank rows of one query: indices by increasing distance, and the distances.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    pub index: Vec<usize>,
    pub distance: Vec<f64>,
}

/// f32 key ordered for the heap (distances are finite).
#[derive(PartialEq)]
struct Key(f32, usize);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
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

    /// Exact k-nearest-neighbour search of raw (unnormalised) query features.
    pub fn search(&self, features: ArrayView2<f64>) -> Result<Vec<Neighbours>, DetectorError> {
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
        let queries = self.params.prepare(features);
        let q32 = queries.mapv(|v| v as f32);
        let b32 = bank.mapv(|v| v as f32);
        let norms: Vec<f32> = b32.rows().into_iter().map(|r| r.dot(&r)).collect();
        // The search runs in f32: a value or squared norm beyond its range would make every
        // distance NaN (no neighbour found), so it is refused here, naming the row.
        if let Some(row) = norms.iter().position(|n| !n.is_finite()) {
            return Err(DetectorError::Overflow {
                method: "knn (training bank in f32)",
                row,
            });
        }
        if let Some(row) = q32.rows().into_iter().position(|r| !r.dot(&r).is_finite()) {
            return Err(DetectorError::Overflow {
                method: "knn (query in f32)",
                row,
            });
        }
        let starts: Vec<usize> = (0..queries.nrows()).step_by(QUERY_BLOCK).collect();
        let blocks: Vec<Vec<Neighbours>> = starts
            .par_iter()
            .map(|&s| {
                let e = (s + QUERY_BLOCK).min(queries.nrows());
                let cand = candidates(q32.slice(s![s..e, ..]), b32.view(), &norms, k);
                cand.into_iter()
                    .enumerate()
                    .map(|(i, idx)| exact(queries.row(s + i), bank.view(), idx))
                    .collect()
            })
            .collect();
        Ok(blocks.into_iter().flatten().collect())
    }
}

/// For each query row, the indices of its k nearest bank rows by f32 distance (unsorted).
fn candidates(
    q: ArrayView2<f32>,
    bank: ArrayView2<f32>,
    norms: &[f32],
    k: usize,
) -> Vec<Vec<usize>> {
    let mut heaps: Vec<BinaryHeap<Key>> = (0..q.nrows())
        .map(|_| BinaryHeap::with_capacity(k + 1))
        .collect();
    let mut dots = Array2::<f32>::zeros((q.nrows(), BANK_BLOCK.min(bank.nrows())));
    for start in (0..bank.nrows()).step_by(BANK_BLOCK) {
        let end = (start + BANK_BLOCK).min(bank.nrows());
        let mut g = dots.slice_mut(s![.., ..end - start]);
        general_mat_mul(1.0, &q, &bank.slice(s![start..end, ..]).t(), 0.0, &mut g);
        for (heap, row) in heaps.iter_mut().zip(g.rows()) {
            let row = row.as_slice().expect("rows of a standard-layout block");
            scan(heap, k, row, &norms[start..end], start);
        }
    }
    heaps
        .into_iter()
        .map(|h| h.into_iter().map(|Key(_, i)| i).collect())
        .collect()
}

/// Offer one row of dot products to a query's heap of its k best. `|q|^2` is the same for every
/// candidate, so `|b|^2 - 2 q.b` ranks them. Chunks of 32 are first tested as a whole (a loop
/// the compiler vectorises), because after the first blocks almost no candidate beats the
/// current k-th best.
fn scan(heap: &mut BinaryHeap<Key>, k: usize, dots: &[f32], norms: &[f32], offset: usize) {
    const CHUNK: usize = 32;
    let mut worst = if heap.len() == k {
        heap.peek().map_or(f32::INFINITY, |t| t.0)
    } else {
        f32::INFINITY
    };
    for (c, (dc, nc)) in dots.chunks(CHUNK).zip(norms.chunks(CHUNK)).enumerate() {
        // `|` rather than `||`: no early exit, so the loop vectorises
        let any = dc
            .iter()
            .zip(nc)
            .fold(false, |a, (&dot, &n)| a | (n - 2.0 * dot < worst));
        if !any {
            continue;
        }
        for (j, (&dot, &n)) in dc.iter().zip(nc).enumerate() {
            let d = n - 2.0 * dot;
            if d < worst {
                if heap.len() == k {
                    heap.pop();
                }
                heap.push(Key(d, offset + c * CHUNK + j));
                if heap.len() == k {
                    worst = heap.peek().map_or(f32::INFINITY, |t| t.0);
                }
            }
        }
    }
}

/// Re-measure candidates in f64 and sort them by distance (ties: lower index).
fn exact(q: ndarray::ArrayView1<f64>, bank: ArrayView2<f64>, idx: Vec<usize>) -> Neighbours {
    let mut pairs: Vec<(f64, usize)> = idx
        .into_iter()
        .map(|i| {
            let d2: f64 = q
                .iter()
                .zip(bank.row(i))
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            (d2.sqrt(), i)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    Neighbours {
        index: pairs.iter().map(|p| p.1).collect(),
        distance: pairs.iter().map(|p| p.0).collect(),
    }
}
