//! SHE, simplified Hopfield energy (Zhang, Fu, Yan et al.: "Out-of-Distribution Detection based
//! on In-Distribution Data Patterns Memorization with Modern Hopfield Energy", ICLR 2023,
//! eq. 7-8, and pytorch-ood 0.4).
//!
//! Fit: for every class c, the stored pattern `s_c` = mean feature of the training samples
//! the head classifies correctly as c. Score: `h . s_{argmax f(h)}` (higher = in-distribution).
//! No hyper-parameters. Labels must be classes of the head (0..K).

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::data::{argmax, Matrix};
use super::{DetectorError, FitData, Head, Inputs};

const KEY: &str = "she";

/// SHE has no parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SheParams;

impl SheParams {
    pub fn fit(&self, data: &FitData) -> Result<She, DetectorError> {
        data.check()?;
        let features = data.features(KEY)?;
        let labels = data.labels(KEY)?;
        let head = data.head(KEY)?;
        let k = head.classes();
        let logits = head.logits(features);
        let mut sums = Array2::<f64>::zeros((k, features.ncols()));
        let mut counts = vec![0usize; k];
        for (i, &y) in labels.iter().enumerate() {
            if y < 0 || y as usize >= k {
                return Err(DetectorError::Param {
                    name: "SHE training label",
                    value: y as f64,
                    range: "a class of the head (0 to K - 1)",
                });
            }
            if argmax(logits.row(i)) == y as usize {
                counts[y as usize] += 1;
                sums.row_mut(y as usize).scaled_add(1.0, &features.row(i));
            }
        }
        for (c, &n) in counts.iter().enumerate() {
            if n == 0 {
                return Err(DetectorError::EmptyClass {
                    method: KEY,
                    class: c as i64,
                    why: "classified correctly",
                });
            }
            sums.row_mut(c).mapv_inplace(|v| v / n as f64);
        }
        Ok(She {
            head: head.clone(),
            patterns: Matrix(sums),
        })
    }
}

/// A fitted SHE detector: the head and one stored pattern per class (rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct She {
    pub head: Head,
    pub patterns: Matrix,
}

impl She {
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(Some(&self.head))?;
        let f = x.features(KEY)?;
        let logits = self.head.logits(f);
        Ok(f.rows()
            .into_iter()
            .zip(logits.rows())
            .map(|(h, l)| h.dot(&self.patterns.0.row(argmax(l))))
            .collect())
    }
}
