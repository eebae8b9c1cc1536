//! KL-matching (Hendrycks, Basart, Mazeika et al.: "Scaling Out-of-Distribution Detection for
//! Real-World Settings", ICML 2022, section 4).
//!
//! Fit: for every class c predicted (argmax) on the fitting data, the mean softmax
//! `d_c = mean{softmax(f(x)) : argmax f(x) = c}`. Score: `-min_c KL(p || d_c)` with
//! `KL(p || d) = sum_k p_k ln(p_k / d_k)` (higher = in-distribution), as pytorch-ood 0.4.
//! The paper fits on held-out validation data; here the fit sees the training data it is
//! given. No hyper-parameters.

use serde::{Deserialize, Serialize};

use super::data::{argmax, per_softmax_row, softmax_into, Matrix};
use super::entropy::sum_p_ln_p;
use super::{DetectorError, FitData, Head, Inputs};
use ndarray::Array2;

const KEY: &str = "klm";

/// KL-matching has no parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KlmParams;

impl KlmParams {
    /// Class templates from the fitting logits (given, or from features and head).
    pub fn fit(&self, data: &FitData) -> Result<Klm, DetectorError> {
        data.check()?;
        let logits = data.logits(KEY)?;
        let k = logits.ncols();
        let mut sums = Array2::<f64>::zeros((k, k));
        let mut counts = vec![0usize; k];
        let mut p = Vec::new();
        for r in logits.rows() {
            let c = argmax(r);
            softmax_into(r, &mut p);
            counts[c] += 1;
            sums.row_mut(c)
                .iter_mut()
                .zip(&p)
                .for_each(|(s, q)| *s += q);
        }
        let classes: Vec<usize> = (0..k).filter(|&c| counts[c] > 0).collect();
        let mut dists = Array2::<f64>::zeros((classes.len(), k));
        for (i, &c) in classes.iter().enumerate() {
            dists.row_mut(i).assign(&(&sums.row(c) / counts[c] as f64));
        }
        Ok(Klm {
            head: data.head.cloned(),
            classes,
            dists: Matrix(dists),
        })
    }
}

/// Fitted KL-matching: the predicted classes seen and their mean posteriors (rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Klm {
    /// Kept when given at fit, so that features can be scored too.
    pub head: Option<Head>,
    pub classes: Vec<usize>,
    pub dists: Matrix,
}

impl Klm {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(self.head.as_ref())?;
        let logits = x.logits(KEY, self.head.as_ref())?;
        let d = &self.dists.0;
        if logits.ncols() != d.ncols() {
            return Err(DetectorError::Dimension {
                what: "logits",
                found: logits.ncols(),
                against: "the fitted KL-matching templates",
                expected: d.ncols(),
            });
        }
        // ln d with zeros mapped to the most negative float, as pytorch-ood
        let log_d = d.mapv(|v| if v > 0.0 { v.ln() } else { f64::MIN });
        Ok(per_softmax_row(logits.view(), |p| {
            let plogp = sum_p_ln_p(p);
            let kl_min = log_d
                .rows()
                .into_iter()
                .map(|ld| plogp - p.iter().zip(ld).map(|(q, l)| q * l).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            -kl_min
        }))
    }
}
