//! Maximum logit (Hendrycks, Basart, Mazeika et al.: "Scaling Out-of-Distribution Detection for
//! Real-World Settings", ICML 2022): `MaxLogit(x) = max_i f_i(x)`. Higher = more
//! in-distribution. It is the T -> 0 limit of `T * logsumexp(f / T)`, i.e. of the energy score.

use super::LogitScore;

/// The largest logit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaxLogit;

impl LogitScore for MaxLogit {
    fn name(&self) -> &'static str {
        "maxlogit"
    }

    fn temperature(&self) -> Option<f64> {
        None
    }

    fn score_row(&self, logits: &[f64]) -> f64 {
        logits.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::Energy;

    #[test]
    fn max_and_energy_limit() {
        let x = [0.5, 3.0, -1.0];
        assert_eq!(MaxLogit.score_row(&x), 3.0);
        // energy with small T approaches the max logit from above
        let e = Energy { temperature: 1e-3 }.score_row(&x);
        assert!(e >= 3.0 && e - 3.0 < 1e-9);
    }
}
