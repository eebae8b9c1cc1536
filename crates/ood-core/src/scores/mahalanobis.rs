//! Mahalanobis-distance score (Lee, Lee, Lee & Shin: "A Simple Unified Framework for Detecting
//! Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018, eq. 2), on one feature
//! layer, without input pre-processing or layer ensembles.
//!
//! Fit on training features x_i with labels y_i:
//! class means `mu_c = mean{x_i : y_i = c}` and one tied covariance
//! `Sigma = 1/N * sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T` (the maximum-likelihood estimate,
//! as in the authors' code via `sklearn.covariance.EmpiricalCovariance`).
//! Optional shrinkage `alpha` in [0, 1] replaces Sigma with
//! `(1 - alpha) * Sigma + alpha * (tr(Sigma) / D) * I` so that a rank-deficient covariance
//! (fewer samples than dimensions, dead features) becomes invertible.
//!
//! Score: `M(x) = max_c -(x - mu_c)^T Sigma^-1 (x - mu_c)`; higher = more in-distribution.
//! Computed in f64 through the Cholesky factor `Sigma = L L^T`: with `W = L^-1`,
//! `(x - mu)^T Sigma^-1 (x - mu) = |W x - W mu|^2`, so scoring is one matrix product.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::par::{first_non_finite, par_dot, par_gram, par_rows};

/// Errors of fitting or applying the Mahalanobis detector.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MahalanobisError {
    #[error("{features} feature rows but {labels} labels")]
    LengthMismatch { features: usize, labels: usize },
    #[error("need at least one feature row and one feature column")]
    Empty,
    #[error("shrinkage must be in [0, 1], got {0}")]
    Shrinkage(f64),
    #[error("feature at row {row}, column {col} is {value} (need finite features)")]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error(
        "tied covariance is singular (pivot {pivot:e} at dimension {dim} of {dims}); \
         fit with shrinkage > 0 (e.g. 0.01)"
    )]
    Singular { dim: usize, dims: usize, pivot: f64 },
    #[error("features have {found} columns, the detector was fitted on {expected}")]
    Dimension { expected: usize, found: usize },
    #[error("fitted parameters are inconsistent: {0}")]
    Corrupt(String),
}

/// Hyper-parameters of the fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisParams {
    /// Shrinkage towards a scaled identity, in [0, 1]. Default 0 (the paper's estimate).
    pub shrinkage: f64,
}

impl Default for MahalanobisParams {
    fn default() -> Self {
        Self { shrinkage: 0.0 }
    }
}

/// A fitted detector: class means, tied covariance, and its whitening matrix.
#[derive(Debug, Clone)]
pub struct Mahalanobis {
    params: MahalanobisParams,
    classes: Vec<i64>,
    means: Array2<f64>,
    covariance: Array2<f64>,
    /// `W = L^-1`, lower triangular.
    whiten: Array2<f64>,
    /// `W mu_c` for each class (rows).
    whitened_means: Array2<f64>,
}

/// On-disk form (JSON): everything needed to rebuild the fitted detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MahalanobisFile {
    pub format: String,
    pub version: u32,
    pub params: MahalanobisParams,
    pub classes: Vec<i64>,
    /// K rows of D values.
    pub means: Vec<Vec<f64>>,
    /// D rows of D values (after shrinkage).
    pub covariance: Vec<Vec<f64>>,
}

const FORMAT: &str = "eood-mahalanobis";

impl MahalanobisParams {
    /// Fit class means and the tied covariance on N x D features with N labels.
    pub fn fit(
        &self,
        features: ArrayView2<f64>,
        labels: &[i64],
    ) -> Result<Mahalanobis, MahalanobisError> {
        let s = self.scatter(features, labels)?;
        self.finish(s.classes, s.means, s.within)
    }

    /// The class Gaussians (as [`MahalanobisParams::fit`]) and the one-class background
    /// Gaussian of all features (mean and 1/N covariance, class label 0) in one pass over the
    /// features: the background covariance is the within-class scatter plus the between-class
    /// scatter of the class means (total = within + between). For RMDS.
    pub fn fit_with_background(
        &self,
        features: ArrayView2<f64>,
        labels: &[i64],
    ) -> Result<(Mahalanobis, Mahalanobis), MahalanobisError> {
        let s = self.scatter(features, labels)?;
        let n = features.nrows() as f64;
        let d = features.ncols();
        let mut mean = Array1::<f64>::zeros(d);
        for (m, &c) in s.means.rows().into_iter().zip(&s.counts) {
            mean.scaled_add(c as f64 / n, &m);
        }
        let mut total = s.within.clone();
        for (m, &c) in s.means.rows().into_iter().zip(&s.counts) {
            let dm = &m - &mean;
            let w = c as f64 / n;
            for i in 0..d {
                for j in 0..d {
                    total[[i, j]] += w * dm[i] * dm[j];
                }
            }
        }
        let background = self.finish(vec![0], mean.insert_axis(Axis(0)), total)?;
        let classes = self.finish(s.classes, s.means, s.within)?;
        Ok((classes, background))
    }

    /// Checks, class means, counts and the within-class scatter `1/N sum (x - mu_y)(x - mu_y)^T`.
    fn scatter(
        &self,
        features: ArrayView2<f64>,
        labels: &[i64],
    ) -> Result<Scatter, MahalanobisError> {
        let (n, d) = features.dim();
        if n != labels.len() {
            return Err(MahalanobisError::LengthMismatch {
                features: n,
                labels: labels.len(),
            });
        }
        if n == 0 || d == 0 {
            return Err(MahalanobisError::Empty);
        }
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return Err(MahalanobisError::Shrinkage(self.shrinkage));
        }
        check_finite(features)?;

        // class -> (row indices); BTreeMap gives classes in ascending order
        let mut by_class: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &y) in labels.iter().enumerate() {
            by_class.entry(y).or_default().push(i);
        }
        let classes: Vec<i64> = by_class.keys().copied().collect();
        let counts: Vec<usize> = by_class.values().map(Vec::len).collect();
        let mut means = Array2::<f64>::zeros((classes.len(), d));
        for (k, rows) in by_class.values().enumerate() {
            let mut m = means.row_mut(k);
            for &i in rows {
                m += &features.row(i);
            }
            m /= rows.len() as f64;
        }
        let class_index: BTreeMap<i64, usize> =
            classes.iter().enumerate().map(|(k, &c)| (c, k)).collect();
        let mut centered = features.to_owned();
        for (i, mut row) in centered.axis_iter_mut(Axis(0)).enumerate() {
            row -= &means.row(class_index[&labels[i]]);
        }
        let within = par_gram(centered.view()) / n as f64;
        Ok(Scatter {
            classes,
            counts,
            means,
            within,
        })
    }

    /// Shrink the covariance (if asked) and factor it.
    fn finish(
        &self,
        classes: Vec<i64>,
        means: Array2<f64>,
        mut covariance: Array2<f64>,
    ) -> Result<Mahalanobis, MahalanobisError> {
        let d = covariance.nrows();
        if self.shrinkage > 0.0 {
            let mu = covariance.diag().sum() / d as f64;
            covariance *= 1.0 - self.shrinkage;
            for j in 0..d {
                covariance[[j, j]] += self.shrinkage * mu;
            }
        }
        Mahalanobis::from_parts(*self, classes, means, covariance)
    }
}

/// What one pass over the training features gives (see [`MahalanobisParams::fit`]).
struct Scatter {
    classes: Vec<i64>,
    counts: Vec<usize>,
    means: Array2<f64>,
    within: Array2<f64>,
}

impl Mahalanobis {
    fn from_parts(
        params: MahalanobisParams,
        classes: Vec<i64>,
        means: Array2<f64>,
        covariance: Array2<f64>,
    ) -> Result<Self, MahalanobisError> {
        let l = cholesky(&covariance)?;
        let whiten = lower_triangular_inverse(&l);
        let whitened_means = means.dot(&whiten.t());
        Ok(Self {
            params,
            classes,
            means,
            covariance,
            whiten,
            whitened_means,
        })
    }

    pub fn params(&self) -> MahalanobisParams {
        self.params
    }
    pub fn classes(&self) -> &[i64] {
        &self.classes
    }
    pub fn means(&self) -> &Array2<f64> {
        &self.means
    }
    pub fn covariance(&self) -> &Array2<f64> {
        &self.covariance
    }
    pub fn dims(&self) -> usize {
        self.means.ncols()
    }

    /// `max_c -(x - mu_c)^T Sigma^-1 (x - mu_c)` for every row of N x D features.
    pub fn score(&self, features: ArrayView2<f64>) -> Result<Vec<f64>, MahalanobisError> {
        if features.ncols() != self.dims() {
            return Err(MahalanobisError::Dimension {
                expected: self.dims(),
                found: features.ncols(),
            });
        }
        check_finite(features)?;
        let z = par_dot(features, self.whiten.t());
        let out: Result<Vec<f64>, std::convert::Infallible> = par_rows(z.view(), |_, part| {
            Ok(part
                .rows()
                .into_iter()
                .map(|zr| {
                    self.whitened_means
                        .rows()
                        .into_iter()
                        .map(|m| {
                            -zr.iter()
                                .zip(m.iter())
                                .map(|(a, b)| (a - b) * (a - b))
                                .sum::<f64>()
                        })
                        .fold(f64::NEG_INFINITY, f64::max)
                })
                .collect())
        });
        Ok(out.unwrap_or_else(|e| match e {}))
    }

    pub fn to_file(&self) -> MahalanobisFile {
        let rows = |a: &Array2<f64>| a.rows().into_iter().map(|r| r.to_vec()).collect();
        MahalanobisFile {
            format: FORMAT.into(),
            version: 1,
            params: self.params,
            classes: self.classes.clone(),
            means: rows(&self.means),
            covariance: rows(&self.covariance),
        }
    }

    pub fn from_file(f: MahalanobisFile) -> Result<Self, MahalanobisError> {
        let corrupt = |m: String| MahalanobisError::Corrupt(m);
        if f.format != FORMAT || f.version != 1 {
            return Err(corrupt(format!(
                "format {:?} version {} (expected {FORMAT:?} 1)",
                f.format, f.version
            )));
        }
        let k = f.classes.len();
        if k == 0 || f.means.len() != k {
            return Err(corrupt(format!(
                "{} classes but {} mean rows",
                k,
                f.means.len()
            )));
        }
        let d = f.means[0].len();
        let means = to_array(&f.means, k, d).ok_or_else(|| corrupt("ragged means".into()))?;
        let cov = to_array(&f.covariance, d, d)
            .ok_or_else(|| corrupt(format!("covariance is not {d} x {d}")))?;
        Self::from_parts(f.params, f.classes, means, cov)
    }
}

fn to_array(rows: &[Vec<f64>], r: usize, c: usize) -> Option<Array2<f64>> {
    if rows.len() != r || rows.iter().any(|row| row.len() != c) {
        return None;
    }
    Array2::from_shape_vec((r, c), rows.concat()).ok()
}

fn check_finite(x: ArrayView2<f64>) -> Result<(), MahalanobisError> {
    match first_non_finite(x) {
        Some((row, col)) => Err(MahalanobisError::NonFinite {
            row,
            col,
            value: x[[row, col]],
        }),
        None => Ok(()),
    }
}

/// Lower Cholesky factor `L` with `A = L L^T`. A pivot below `1e-12 * max diag(A)` counts as
/// singular: inverting it would amplify rounding noise into the distances.
pub(crate) fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>, MahalanobisError> {
    let d = a.nrows();
    let scale = a.diag().iter().copied().fold(0.0, f64::max);
    let tol = 1e-12 * scale.max(f64::MIN_POSITIVE);
    let mut l = Array2::<f64>::zeros((d, d));
    for j in 0..d {
        let mut s = a[[j, j]];
        for k in 0..j {
            s -= l[[j, k]] * l[[j, k]];
        }
        // also catches NaN pivots
        if s.is_nan() || s <= tol {
            return Err(MahalanobisError::Singular {
                dim: j,
                dims: d,
                pivot: s,
            });
        }
        let ljj = s.sqrt();
        l[[j, j]] = ljj;
        for i in j + 1..d {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / ljj;
        }
    }
    Ok(l)
}

/// Inverse of a lower-triangular matrix with positive diagonal (forward substitution per column).
fn lower_triangular_inverse(l: &Array2<f64>) -> Array2<f64> {
    let d = l.nrows();
    let mut w = Array2::<f64>::zeros((d, d));
    for c in 0..d {
        let mut col = Array1::<f64>::zeros(d);
        col[c] = 1.0 / l[[c, c]];
        for i in c + 1..d {
            let mut s = 0.0;
            for k in c..i {
                s -= l[[i, k]] * col[k];
            }
            col[i] = s / l[[i, i]];
        }
        w.column_mut(c).assign(&col);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn two_classes_identity_like() {
        // class 0 around (0,0), class 1 around (10,0); within-class deviations +-1 on each axis
        let x = array![
            [1.0, 0.0],
            [-1.0, 0.0],
            [0.0, 1.0],
            [0.0, -1.0],
            [11.0, 0.0],
            [9.0, 0.0],
            [10.0, 1.0],
            [10.0, -1.0]
        ];
        let y = [0, 0, 0, 0, 1, 1, 1, 1];
        let m = MahalanobisParams::default().fit(x.view(), &y).unwrap();
        assert_eq!(m.classes(), &[0, 1]);
        assert_eq!(m.means(), &array![[0.0, 0.0], [10.0, 0.0]]);
        // covariance = diag(0.5, 0.5)
        assert!((m.covariance() - &array![[0.5, 0.0], [0.0, 0.5]])
            .iter()
            .all(|v| v.abs() < 1e-15));
        // point (1, 1): nearest mean (0,0), distance^2 = 2 / 0.5 = 4
        let s = m.score(array![[1.0, 1.0], [10.0, 0.0]].view()).unwrap();
        assert!((s[0] + 4.0).abs() < 1e-12 && s[1].abs() < 1e-12, "{s:?}");
        // JSON roundtrip keeps the scores
        let back = Mahalanobis::from_file(m.to_file()).unwrap();
        assert_eq!(back.score(array![[1.0, 1.0]].view()).unwrap()[0], s[0]);
    }

    #[test]
    fn background_from_the_class_fit_equals_a_one_class_fit() {
        let x = Array2::from_shape_fn((60, 3), |(i, j)| {
            ((i * 7 + j * 13) % 11) as f64 + if i % 3 == 0 { 5.0 } else { 0.0 }
        });
        let y: Vec<i64> = (0..60).map(|i| (i % 3) as i64).collect();
        for shrinkage in [0.0, 0.2] {
            let p = MahalanobisParams { shrinkage };
            let (classes, background) = p.fit_with_background(x.view(), &y).unwrap();
            let direct = p.fit(x.view(), &vec![0; 60]).unwrap();
            assert_eq!(background.classes(), &[0]);
            assert!((background.covariance() - direct.covariance())
                .iter()
                .all(|e| e.abs() < 1e-12));
            assert!((background.means() - direct.means())
                .iter()
                .all(|e| e.abs() < 1e-12));
            assert_eq!(
                classes.covariance(),
                p.fit(x.view(), &y).unwrap().covariance()
            );
        }
    }

    #[test]
    fn singular_needs_shrinkage() {
        // second feature constant: rank-deficient covariance
        let x = array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]];
        let y = [0, 0, 1];
        let e = MahalanobisParams::default().fit(x.view(), &y).unwrap_err();
        assert!(
            matches!(
                e,
                MahalanobisError::Singular {
                    dim: 1,
                    dims: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("shrinkage"));
        let m = MahalanobisParams { shrinkage: 0.1 }
            .fit(x.view(), &y)
            .unwrap();
        assert!(m.score(x.view()).unwrap().iter().all(|s| s.is_finite()));
    }

    #[test]
    fn input_errors() {
        let x = array![[1.0], [2.0]];
        let p = MahalanobisParams::default();
        assert_eq!(
            p.fit(x.view(), &[0]).unwrap_err(),
            MahalanobisError::LengthMismatch {
                features: 2,
                labels: 1
            }
        );
        assert_eq!(
            MahalanobisParams { shrinkage: 2.0 }
                .fit(x.view(), &[0, 1])
                .unwrap_err(),
            MahalanobisError::Shrinkage(2.0)
        );
        let bad = array![[1.0], [f64::INFINITY]];
        assert!(matches!(
            p.fit(bad.view(), &[0, 0]).unwrap_err(),
            MahalanobisError::NonFinite { row: 1, col: 0, .. }
        ));
        let m = p.fit(array![[1.0], [3.0]].view(), &[0, 0]).unwrap();
        assert_eq!(
            m.score(array![[1.0, 2.0]].view()).unwrap_err(),
            MahalanobisError::Dimension {
                expected: 1,
                found: 2
            }
        );
    }
}
