//! Negative free energy (Liu, Wang, Owens, Li: "Energy-based Out-of-distribution Detection",
//! NeurIPS 2020, eq. 5 and 7).
//!
//! With logits f(x) in R^K, the free energy is `E(x; f) = -T * log sum_i exp(f_i(x) / T)`.
//! The score is `-E(x; f) = T * logsumexp(f(x) / T)`: it is aligned with log p(x) up to a
//! constant, so higher means more in-distribution. The paper uses T = 1.
//! Computed as `m + T * ln sum_i exp((f_i - m) / T)` with `m = max_i f_i`, which never
//! overflows and is exact for a single dominant logit.

use super::LogitScore;

/// Negative energy score `T * logsumexp(logits / T)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Energy {
    /// Temperature T > 0 (paper default: 1).
    pub temperature: f64,
}

impl Default for Energy {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl LogitScore for Energy {
    fn name(&self) -> &'static str {
        "energy"
    }

    fn temperature(&self) -> Option<f64> {
        Some(self.temperature)
    }

    fn score_row(&self, logits: &[f64]) -> f64 {
        let t = self.temperature;
        let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m + t * logits.iter().map(|v| ((v - m) / t).exp()).sum::<f64>().ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive `T * ln(sum exp(x / T))`, fine for moderate logits.
    fn naive(x: &[f64], t: f64) -> f64 {
        t * x.iter().map(|v| (v / t).exp()).sum::<f64>().ln()
    }

    #[test]
    fn known_values_and_stability() {
        let e = Energy::default();
        // logsumexp([0, 0]) = ln 2
        assert!((e.score_row(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-15);
        // no overflow for huge logits: 1000 + ln 2
        assert!((e.score_row(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        // T -> large: T * ln K dominates; T = 2 checked against the naive formula
        let x = [1.0, -2.0, 3.5];
        assert!((Energy { temperature: 2.0 }.score_row(&x) - naive(&x, 2.0)).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn equals_naive_logsumexp(x in prop::collection::vec(-30.0f64..30.0, 1..20), t in 0.5f64..10.0) {
            let fast = Energy { temperature: t }.score_row(&x);
            let slow = naive(&x, t);
            prop_assert!((fast - slow).abs() <= 1e-9 * slow.abs().max(1.0), "{fast} vs {slow}");
        }
    }
}
