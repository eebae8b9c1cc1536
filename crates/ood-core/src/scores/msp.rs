//! Maximum softmax probability (Hendrycks & Gimpel: "A Baseline for Detecting Misclassified and
//! Out-of-Distribution Examples in Neural Networks", ICLR 2017), with the temperature of
//! Liang, Li & Srikant (ODIN, ICLR 2018; no input perturbation here).
//!
//! `MSP(x) = max_i softmax(f(x) / T)_i = 1 / sum_j exp((f_j - max_i f_i) / T)`, in (0, 1].
//! Higher = more in-distribution. T = 1 is the plain baseline.

use super::LogitScore;

/// Softmax confidence `max_i softmax(logits / T)_i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Msp {
    /// Temperature T > 0 (baseline: 1; ODIN uses 1000).
    pub temperature: f64,
}

impl Default for Msp {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl LogitScore for Msp {
    fn name(&self) -> &'static str {
        "msp"
    }

    fn temperature(&self) -> Option<f64> {
        Some(self.temperature)
    }

    fn score_row(&self, logits: &[f64]) -> f64 {
        let t = self.temperature;
        let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        1.0 / logits.iter().map(|v| ((v - m) / t).exp()).sum::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let s = Msp::default();
        assert!((s.score_row(&[0.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-15);
        // softmax([ln 3, 0]) = [3/4, 1/4]
        assert!((s.score_row(&[3f64.ln(), 0.0]) - 0.75).abs() < 1e-15);
        // temperature flattens: T = 2 on [2 ln 3, 0] is the same as T = 1 on [ln 3, 0]
        assert!((Msp { temperature: 2.0 }.score_row(&[2.0 * 3f64.ln(), 0.0]) - 0.75).abs() < 1e-15);
        // stable for huge logits
        assert_eq!(s.score_row(&[1e6, 0.0]), 1.0);
    }
}
