//! Binary logistic regression with an L2 penalty, fitted by Newton's method: the combiner of
//! the Mahalanobis layer ensemble (Lee et al. 2018 fit scikit-learn's logistic regression on
//! the per-layer scores), small enough to need no solver dependency.
//!
//! Objective (scikit-learn's `LogisticRegression(penalty="l2", C=c)`, intercept not penalised):
//! `0.5 * |w|^2 + c * sum_i log(1 + exp(-t_i (w . x_i + b)))`, `t_i = +1` for positives, `-1`
//! otherwise. It is strictly convex for `c > 0`, so Newton's method with a backtracking line
//! search reaches the unique minimum in a handful of steps; the Hessian is `(D+1) x (D+1)`,
//! solved through its Cholesky factor. Features are not rescaled here (the caller decides).
//!
//! [`Logistic::decision`] is the logit `w . x + b` (scikit-learn's `decision_function`):
//! higher = more likely positive.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::scores::mahalanobis::cholesky;
use crate::scores::par::first_non_finite;

/// Errors of fitting or applying a logistic regression.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LogisticError {
    #[error("{rows} feature rows but {labels} labels")]
    LengthMismatch { rows: usize, labels: usize },
    #[error("need at least one feature row and one feature column")]
    Empty,
    #[error("need examples of both classes ({positives} positive of {rows})")]
    OneClass { positives: usize, rows: usize },
    #[error("inverse regularisation C must be a positive finite number, got {0}")]
    C(f64),
    #[error("feature at row {row}, column {col} is {value} (need finite features)")]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error("features have {found} columns, the model was fitted on {expected}")]
    Dimension { expected: usize, found: usize },
    #[error("Newton's method did not converge in {iterations} steps (gradient norm {gradient:e})")]
    NoConvergence { iterations: usize, gradient: f64 },
}

/// Hyper-parameters of the fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    /// Inverse regularisation strength (scikit-learn's `C`). Default 1.
    pub c: f64,
    /// Newton steps at most.
    pub max_iter: usize,
    /// Stop when the largest gradient entry is below `tol * max(1, objective)`.
    pub tol: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

/// A fitted model: `P(positive | x) = sigmoid(w . x + b)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub weights: Vec<f64>,
    pub intercept: f64,
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl LogisticParams {
    /// Fits on `N x D` features with `N` labels (`true` = positive).
    pub fn fit(&self, x: ArrayView2<f64>, y: &[bool]) -> Result<Logistic, LogisticError> {
        let (n, d) = x.dim();
        if n != y.len() {
            return Err(LogisticError::LengthMismatch {
                rows: n,
                labels: y.len(),
            });
        }
        if n == 0 || d == 0 {
            return Err(LogisticError::Empty);
        }
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(LogisticError::C(self.c));
        }
        let positives = y.iter().filter(|&&t| t).count();
        if positives == 0 || positives == n {
            return Err(LogisticError::OneClass { positives, rows: n });
        }
        check_finite(x)?;
        // theta = (w, b)
        let mut theta = Array1::<f64>::zeros(d + 1);
        let mut f = self.objective(x, y, theta.view());
        let mut gradient = f64::INFINITY;
        for _ in 0..self.max_iter {
            let (g, h) = self.gradient_hessian(x, y, theta.view());
            gradient = g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
            if gradient <= self.tol * f.max(1.0) {
                return Ok(to_model(&theta));
            }
            let step = solve_spd(&h, &g).ok_or(LogisticError::NoConvergence {
                iterations: 0,
                gradient,
            })?;
            // backtracking (Armijo) line search on the convex objective
            let slope = g.dot(&step);
            let mut t = 1.0;
            loop {
                let next = &theta - &(&step * t);
                let f_next = self.objective(x, y, next.view());
                if f_next <= f - 1e-4 * t * slope || t < 1e-10 {
                    theta = next;
                    f = f_next;
                    break;
                }
                t *= 0.5;
            }
        }
        let (g, _) = self.gradient_hessian(x, y, theta.view());
        let last = g.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        if last <= self.tol * f.max(1.0) {
            return Ok(to_model(&theta));
        }
        Err(LogisticError::NoConvergence {
            iterations: self.max_iter,
            gradient: last.min(gradient),
        })
    }

    fn objective(&self, x: ArrayView2<f64>, y: &[bool], theta: ArrayView1<f64>) -> f64 {
        let d = x.ncols();
        let w = theta.slice(ndarray::s![..d]);
        let b = theta[d];
        let loss: f64 = x
            .rows()
            .into_iter()
            .zip(y)
            .map(|(r, &t)| {
                let z = r.dot(&w) + b;
                softplus(if t { -z } else { z })
            })
            .sum();
        0.5 * w.dot(&w) + self.c * loss
    }

    /// Gradient and Hessian of the objective at `theta` (the intercept is the last entry).
    fn gradient_hessian(
        &self,
        x: ArrayView2<f64>,
        y: &[bool],
        theta: ArrayView1<f64>,
    ) -> (Array1<f64>, Array2<f64>) {
        let d = x.ncols();
        let w = theta.slice(ndarray::s![..d]);
        let b = theta[d];
        let mut g = Array1::<f64>::zeros(d + 1);
        let mut h = Array2::<f64>::zeros((d + 1, d + 1));
        let mut xi = vec![1.0; d + 1];
        for (r, &t) in x.rows().into_iter().zip(y) {
            let p = sigmoid(r.dot(&w) + b);
            let resid = p - f64::from(u8::from(t));
            let s = p * (1.0 - p);
            xi[..d].iter_mut().zip(r).for_each(|(a, &v)| *a = v);
            for j in 0..=d {
                g[j] += resid * xi[j];
                for k in 0..=j {
                    h[[j, k]] += s * xi[j] * xi[k];
                }
            }
        }
        g *= self.c;
        h *= self.c;
        for j in 0..=d {
            for k in 0..j {
                h[[k, j]] = h[[j, k]];
            }
        }
        for j in 0..d {
            g[j] += w[j];
            h[[j, j]] += 1.0;
        }
        (g, h)
    }
}

fn to_model(theta: &Array1<f64>) -> Logistic {
    let d = theta.len() - 1;
    Logistic {
        weights: theta.slice(ndarray::s![..d]).to_vec(),
        intercept: theta[d],
    }
}

/// `H^-1 g` for a symmetric positive definite `H`, through its Cholesky factor; `None` when
/// `H` is numerically singular (cannot happen for `c > 0` and finite features, but costs
/// nothing to check).
fn solve_spd(h: &Array2<f64>, g: &Array1<f64>) -> Option<Array1<f64>> {
    let l = cholesky(h).ok()?;
    let n = g.len();
    // L z = g, then L^T s = z
    let mut z = Array1::<f64>::zeros(n);
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[[i, k]] * z[k]).sum();
        z[i] = (g[i] - s) / l[[i, i]];
    }
    let mut s = Array1::<f64>::zeros(n);
    for i in (0..n).rev() {
        let t: f64 = (i + 1..n).map(|k| l[[k, i]] * s[k]).sum();
        s[i] = (z[i] - t) / l[[i, i]];
    }
    Some(s)
}

fn check_finite(x: ArrayView2<f64>) -> Result<(), LogisticError> {
    match first_non_finite(x) {
        Some((row, col)) => Err(LogisticError::NonFinite {
            row,
            col,
            value: x[[row, col]],
        }),
        None => Ok(()),
    }
}

impl Logistic {
    /// The logit `w . x + b` of every row of `N x D` features.
    pub fn decision(&self, x: ArrayView2<f64>) -> Result<Vec<f64>, LogisticError> {
        if x.ncols() != self.weights.len() {
            return Err(LogisticError::Dimension {
                expected: self.weights.len(),
                found: x.ncols(),
            });
        }
        check_finite(x)?;
        let w = ArrayView1::from(&self.weights[..]);
        Ok(x.rows()
            .into_iter()
            .map(|r| r.dot(&w) + self.intercept)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// At the optimum the gradient vanishes: `w = c * X^T (t - p)` and `sum (t - p) = 0`.
    #[test]
    fn optimum_satisfies_the_stationarity_conditions() {
        let x = array![
            [0.0, 1.0],
            [1.0, 3.0],
            [2.0, 0.5],
            [3.0, 2.0],
            [4.0, 1.0],
            [5.0, 4.0]
        ];
        let y = [false, false, true, false, true, true];
        let p = LogisticParams {
            c: 0.7,
            ..Default::default()
        };
        let m = p.fit(x.view(), &y).unwrap();
        let z = m.decision(x.view()).unwrap();
        let r: Vec<f64> = z
            .iter()
            .zip(&y)
            .map(|(&z, &t)| f64::from(u8::from(t)) - sigmoid(z))
            .collect();
        assert!(r.iter().sum::<f64>().abs() < 1e-9);
        for j in 0..2 {
            let g: f64 = x.column(j).iter().zip(&r).map(|(a, b)| a * b).sum();
            assert!((m.weights[j] - 0.7 * g).abs() < 1e-9, "{m:?}");
        }
        assert!(m.weights[0] > 0.0);
    }

    /// Separable data has a finite L2 optimum, and a huge margin does not overflow.
    #[test]
    fn separable_and_extreme_data_converge() {
        let x = array![[-1e3], [-2e3], [1e3], [2e3]];
        let m = LogisticParams::default()
            .fit(x.view(), &[false, false, true, true])
            .unwrap();
        assert!(m.weights[0].is_finite() && m.weights[0] > 0.0);
        assert!(m.intercept.abs() < 1e-6, "{m:?}");
    }

    #[test]
    fn input_errors() {
        let x = array![[1.0], [2.0]];
        let p = LogisticParams::default();
        assert_eq!(
            p.fit(x.view(), &[true]).unwrap_err(),
            LogisticError::LengthMismatch { rows: 2, labels: 1 }
        );
        assert_eq!(
            p.fit(x.view(), &[true, true]).unwrap_err(),
            LogisticError::OneClass {
                positives: 2,
                rows: 2
            }
        );
        for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                LogisticParams { c, ..p }.fit(x.view(), &[true, false]),
                Err(LogisticError::C(_))
            ));
        }
        let bad = array![[1.0], [f64::NAN]];
        assert!(matches!(
            p.fit(bad.view(), &[true, false]).unwrap_err(),
            LogisticError::NonFinite { row: 1, col: 0, .. }
        ));
        let m = p.fit(x.view(), &[true, false]).unwrap();
        assert_eq!(
            m.decision(array![[1.0, 2.0]].view()).unwrap_err(),
            LogisticError::Dimension {
                expected: 1,
                found: 2
            }
        );
    }
}
