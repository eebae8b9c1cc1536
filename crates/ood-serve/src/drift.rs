//! OOD-drift monitoring: a rolling window of the last N decisions, and a warning when the accept
//! rate falls below the detector's calibrated target by more than a margin.
//!
//! The detector was calibrated to accept a fraction `target` (its target TPR) of
//! in-distribution inputs. While the traffic stays in-distribution, the number `k` of accepted
//! inputs among the last `n` is Binomial(n, p) with p close to `target`. The warning is raised
//! when both
//! - the observed rate `k / n` is below `p0 = target - margin`, and
//! - the exact one-sided binomial test rejects `H0: p >= p0` at level `alpha`:
//!   `P[X <= k | X ~ Binomial(n, p0)] = sum_{i=0..k} C(n, i) p0^i (1 - p0)^(n - i) < alpha`.
//!
//! The test is exact (no normal approximation), computed in log space so that windows of up to
//! [`MAX_WINDOW`] never underflow (docs/deploy.md gives the same formula).

use std::collections::VecDeque;

use ood_bundle::Decision;
use ood_core::limits::{check_range, LimitError};
use serde::Serialize;

/// Largest window (the test costs O(k) per batch).
pub const MAX_WINDOW: usize = 100_000;

/// `--drift-window`, `--drift-margin`, `--drift-alpha`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftOptions {
    /// Decisions kept (default 1000).
    pub window: usize,
    /// How far below the target the accept rate may fall (default 0.05).
    pub margin: f64,
    /// Level of the binomial test (default 0.01).
    pub alpha: f64,
}

impl Default for DriftOptions {
    fn default() -> Self {
        Self {
            window: 1000,
            margin: 0.05,
            alpha: 0.01,
        }
    }
}

impl DriftOptions {
    pub fn validate(&self) -> Result<(), LimitError> {
        check_range("--drift-window", self.window, 1, MAX_WINDOW)?;
        check_range("--drift-margin", self.margin, 0.0, 1.0)?;
        check_range("--drift-alpha", self.alpha, 1e-12, 0.5)?;
        Ok(())
    }
}

/// `P[X <= k]` for `X ~ Binomial(n, p)`, exact, summed in log space.
pub fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    // log pmf(0) = n ln(1 - p); pmf(i + 1) / pmf(i) = (n - i) / (i + 1) * p / (1 - p)
    let log_odds = p.ln() - (-p).ln_1p();
    let mut log_pmf = n as f64 * (-p).ln_1p();
    let mut log_sum = log_pmf;
    for i in 0..k {
        log_pmf += ((n - i) as f64 / (i + 1) as f64).ln() + log_odds;
        let (hi, lo) = if log_pmf > log_sum {
            (log_pmf, log_sum)
        } else {
            (log_sum, log_pmf)
        };
        log_sum = hi + (lo - hi).exp().ln_1p();
    }
    log_sum.exp().min(1.0)
}

/// What `GET /v1/drift` answers (and /metrics exports as gauges).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    /// Capacity of the window.
    pub window: usize,
    /// Decisions in it now.
    pub count: usize,
    pub accepted: usize,
    /// `accepted / count` (null while empty).
    pub accept_rate: Option<f64>,
    /// The detector's calibrated target TPR.
    pub target: f64,
    pub margin: f64,
    pub alpha: f64,
    /// The binomial test's p-value `P[X <= accepted | Binomial(count, target - margin)]`.
    pub p_value: Option<f64>,
    /// Mean score over the window (null while empty).
    pub mean_score: Option<f64>,
    pub warning: bool,
    /// A sentence for people when `warning` is set.
    pub message: Option<String>,
}

/// The rolling window. One per server, behind a mutex (updated once per model batch).
#[derive(Debug)]
pub struct DriftMonitor {
    opts: DriftOptions,
    target: f64,
    window: VecDeque<(f64, bool)>,
    accepted: usize,
    warning: bool,
}

impl DriftMonitor {
    pub fn new(opts: DriftOptions, target: f64) -> Self {
        Self {
            opts,
            target,
            window: VecDeque::with_capacity(opts.window),
            accepted: 0,
            warning: false,
        }
    }

    /// Add decisions; returns the new warning state when it flipped.
    pub fn record(&mut self, decisions: &[Decision]) -> Option<bool> {
        for d in decisions {
            if self.window.len() == self.opts.window {
                if let Some((_, a)) = self.window.pop_front() {
                    self.accepted -= usize::from(a);
                }
            }
            self.window.push_back((d.score, d.accepted));
            self.accepted += usize::from(d.accepted);
        }
        let now = self.evaluate().0;
        (now != self.warning).then(|| {
            self.warning = now;
            now
        })
    }

    /// (warning, p-value) for the window as it is.
    fn evaluate(&self) -> (bool, Option<f64>) {
        let n = self.window.len();
        if n == 0 {
            return (false, None);
        }
        let p0 = self.target - self.opts.margin;
        let p = binomial_cdf(self.accepted, n, p0);
        let rate = self.accepted as f64 / n as f64;
        (rate < p0 && p < self.opts.alpha, Some(p))
    }

    pub fn report(&self) -> DriftReport {
        let n = self.window.len();
        let (warning, p_value) = self.evaluate();
        let rate = (n > 0).then(|| self.accepted as f64 / n as f64);
        let mean = (n > 0).then(|| self.window.iter().map(|s| s.0).sum::<f64>() / n as f64);
        DriftReport {
            window: self.opts.window,
            count: n,
            accepted: self.accepted,
            accept_rate: rate,
            target: self.target,
            margin: self.opts.margin,
            alpha: self.opts.alpha,
            p_value,
            mean_score: mean,
            warning,
            message: warning.then(|| {
                format!(
                    "accept rate {:.4} over the last {n} inputs is below the calibrated target {} minus margin {} (binomial p = {:.3e} < {}): the input distribution may have moved",
                    rate.unwrap_or(0.0),
                    self.target,
                    self.opts.margin,
                    p_value.unwrap_or(0.0),
                    self.opts.alpha
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-300)
    }

    #[test]
    fn binomial_cdf_matches_known_values() {
        // 56 / 1024 exactly; the others from scipy.stats.binom.cdf
        assert!(close(binomial_cdf(2, 10, 0.5), 0.0546875, 1e-12));
        assert!(close(binomial_cdf(15, 20, 0.9), 0.04317449528446335, 1e-10));
        assert!(close(binomial_cdf(40, 50, 0.9), 0.02453793570459139, 1e-10));
        assert!(close(
            binomial_cdf(870, 1000, 0.9),
            0.001341398370873421,
            1e-8
        ));
        assert!(close(
            binomial_cdf(880, 1000, 0.9),
            0.021996144965794173,
            1e-8
        ));
        assert!(close(binomial_cdf(0, 1, 0.9), 0.1, 1e-12));
        // (1 - p)^n underflows f64 here: the log-space sum does not
        let tiny = binomial_cdf(85_000, 100_000, 0.9);
        assert!((0.0..1e-200).contains(&tiny), "{tiny}");
        assert_eq!(binomial_cdf(10, 10, 0.9), 1.0);
        assert_eq!(binomial_cdf(3, 10, 0.0), 1.0);
        assert_eq!(binomial_cdf(3, 10, 1.0), 0.0);
    }

    fn decisions(accepted: usize, refused: usize) -> Vec<Decision> {
        let d = |a: bool| Decision {
            accepted: a,
            score: if a { 9.0 } else { 3.0 },
            class: 0,
            label: "x".into(),
            confidence: 1.0,
        };
        (0..accepted)
            .map(|_| d(true))
            .chain((0..refused).map(|_| d(false)))
            .collect()
    }

    #[test]
    fn warning_needs_the_margin_and_the_test() {
        let opts = DriftOptions {
            window: 1000,
            margin: 0.05,
            alpha: 0.01,
        };
        // 880 of 1000 at p0 = 0.90: below p0 but p = 0.022 > 0.01 -> no warning
        let mut m = DriftMonitor::new(opts, 0.95);
        assert_eq!(m.record(&decisions(880, 120)), None);
        let r = m.report();
        assert_eq!((r.count, r.accepted, r.warning), (1000, 880, false));
        assert!(close(r.p_value.unwrap(), 0.021996144965794173, 1e-8));
        assert!(close(
            r.mean_score.unwrap(),
            (880.0 * 9.0 + 120.0 * 3.0) / 1000.0,
            1e-12
        ));
        // ten more refusals push ten acceptances out: 870 / 1000, p = 0.0013 -> warning flips on
        assert_eq!(m.record(&decisions(0, 10)), Some(true));
        let r = m.report();
        assert_eq!((r.accepted, r.warning), (870, true));
        assert!(r.message.unwrap().contains("0.8700"));
        // back to normal traffic: the window refills with acceptances, the warning flips off
        assert_eq!(m.record(&decisions(1000, 0)), Some(false));
        assert_eq!(m.report().accept_rate, Some(1.0));
    }

    #[test]
    fn small_windows_do_not_warn_on_noise() {
        // 0 of 1 accepted: p = 0.1 at p0 = 0.9 is not below alpha
        let mut m = DriftMonitor::new(DriftOptions::default(), 0.95);
        assert_eq!(m.record(&decisions(0, 1)), None);
        assert_eq!(m.report().accept_rate, Some(0.0));
        // 0 of 3: p = 0.001 < 0.01 -> warns
        assert_eq!(m.record(&decisions(0, 2)), Some(true));
        let empty = DriftMonitor::new(DriftOptions::default(), 0.95).report();
        assert_eq!(
            (empty.accept_rate, empty.p_value, empty.warning),
            (None, None, false)
        );
    }

    #[test]
    fn options_are_range_checked() {
        DriftOptions::default().validate().unwrap();
        let bad = |o: DriftOptions| o.validate().unwrap_err().to_string();
        let d = DriftOptions::default();
        assert!(bad(DriftOptions { window: 0, ..d }).contains("--drift-window"));
        assert!(bad(DriftOptions {
            margin: f64::NAN,
            ..d
        })
        .contains("--drift-margin"));
        assert!(bad(DriftOptions { alpha: 0.7, ..d }).contains("--drift-alpha"));
    }
}
