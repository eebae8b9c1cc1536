//! ViM, virtual-logit matching (Wang, Li, Feng & Zhang: "ViM: Out-Of-Distribution with
//! Virtual-logit Matching", CVPR 2022, eq. 3-7 and the authors' code).
//!
//! Fit: the origin `u = -pinv(W) b`; the covariance of the centred training features
//! `C = 1/N sum_i (h_i - u)(h_i - u)^T`; the residual space R spanned by the eigenvectors of
//! the D - D' smallest eigenvalues; `alpha = mean_i max_k f_k(h_i) / mean_i |R^T (h_i - u)|`.
//! Score: `logsumexp(W h + b) - alpha |R^T (h - u)|` (higher = in-distribution).
//! Default principal dimension D' follows the authors: 1000 for D >= 2048, 512 for D >= 768,
//! else D / 2. Grid {16, 32, 64, 128, 256, 512} below D (pytorch-ood's).

use ndarray::{Array1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::data::{energy_rows, rows_map, Matrix};
use super::linalg::{pinv_apply, symmetric_eigen};
use super::{DetectorError, FitData, Head, Inputs};
use crate::scores::par::{par_dot, par_gram};

const KEY: &str = "vim";

/// ViM's hyper-parameter: the principal dimension D' (`None`: the authors' rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct VimParams {
    pub dim: Option<usize>,
}

impl VimParams {
    /// The grid for features of `dims` columns.
    pub fn paper_grid(dims: usize) -> Vec<Self> {
        [16, 32, 64, 128, 256, 512]
            .into_iter()
            .filter(|&d| d < dims)
            .map(|d| Self { dim: Some(d) })
            .collect()
    }
    /// D' for features of `dims` columns.
    pub fn principal_dim(&self, dims: usize) -> usize {
        self.dim.unwrap_or(match dims {
            d if d >= 2048 => 1000,
            d if d >= 768 => 512,
            d => d / 2,
        })
    }
    pub fn validate(&self) -> Result<(), DetectorError> {
        if self.dim == Some(0) {
            return Err(DetectorError::Param {
                name: "ViM principal dimension",
                value: 0.0,
                range: "at least 1",
            });
        }
        Ok(())
    }
    pub fn fit(&self, data: &FitData) -> Result<Vim, DetectorError> {
        self.validate()?;
        data.check()?;
        let features = data.features(KEY)?;
        let head = data.head(KEY)?;
        let dims = features.ncols();
        let principal = self.principal_dim(dims);
        if principal == 0 || principal >= dims {
            return Err(DetectorError::Param {
                name: "ViM principal dimension",
                value: principal as f64,
                range: "between 1 and D - 1",
            });
        }
        let origin = -pinv_apply(head.weight.view(), head.bias.view());
        let centred = &features - &origin;
        let cov = par_gram(centred.view()) / features.nrows() as f64;
        let (_, vecs) = symmetric_eigen(cov.view());
        let residual = vecs.slice(ndarray::s![.., principal..]).to_owned();
        let mut model = Vim {
            params: *self,
            head: head.clone(),
            origin: origin.to_vec(),
            residual: Matrix(residual),
            alpha: 1.0,
        };
        // the training rows are already centred: no second copy of them
        let vlogit = residual_norms(centred.view(), model.residual.0.view());
        let max_logit = head
            .logits(features)
            .map_axis(Axis(1), |r| r.fold(f64::NEG_INFINITY, |a, &b| a.max(b)));
        model.alpha = max_logit.mean().unwrap() / Array1::from(vlogit).mean().unwrap();
        if !model.alpha.is_finite() {
            // the training features lie in the principal space: no residual to match
            return Err(DetectorError::Degenerate {
                method: KEY,
                what: "the training features have no residual outside the principal space",
            });
        }
        Ok(model)
    }
}

/// `|R^T x|` of every centred row x.
fn residual_norms(centred: ArrayView2<f64>, residual: ArrayView2<f64>) -> Vec<f64> {
    let proj = par_dot(centred, residual);
    rows_map(proj.view(), |r, _| r.dot(&r).sqrt())
}

/// A fitted ViM detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vim {
    pub params: VimParams,
    pub head: Head,
    pub origin: Vec<f64>,
    /// D x (D - D') basis of the residual space.
    pub residual: Matrix,
    pub alpha: f64,
}

impl Vim {
    fn residual_norm(&self, features: ArrayView2<f64>) -> Vec<f64> {
        let origin = Array1::from(self.origin.clone());
        residual_norms((&features - &origin).view(), self.residual.0.view())
    }

    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let features = x.features(KEY)?;
        let energy = energy_rows(self.head.logits(features).view(), 1.0);
        Ok(energy
            .into_iter()
            .zip(self.residual_norm(features))
            .map(|(e, v)| e - self.alpha * v)
            .collect())
    }
}
