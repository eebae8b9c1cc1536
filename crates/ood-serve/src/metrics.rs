//! Prometheus metrics, kept in memory and written in the text exposition format (version
//! 0.0.4) by `GET /metrics`. Written by hand: a few counters and two histograms do not need a
//! metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::drift::DriftReport;

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Model batch-size buckets, inputs.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
];

/// A cumulative histogram with fixed upper bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {cum}", self.sum);
    }
}

/// Everything /metrics reports, shared by the handlers and the batch worker.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<Histogram>,
    batch: Mutex<Histogram>,
    accepted: AtomicU64,
    refused: AtomicU64,
    model_calls: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Mutex::new(Histogram::new(LATENCY_BUCKETS)),
            batch: Mutex::new(Histogram::new(BATCH_BUCKETS)),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            model_calls: AtomicU64::new(0),
        }
    }
}

/// A poisoned lock only means a panic elsewhere while counting: keep counting.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One answered request. `route` is one of the server's routes or `other` (bounded labels).
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route, status)).or_default() += 1;
        lock(&self.latency).observe(seconds);
    }

    /// One model call on `n` inputs.
    pub fn model_call(&self, n: usize) {
        self.model_calls.fetch_add(1, Ordering::Relaxed);
        lock(&self.batch).observe(n as f64);
    }

    pub fn decisions(&self, accepted: usize, refused: usize) {
        self.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
        self.refused.fetch_add(refused as u64, Ordering::Relaxed);
    }

    pub fn model_calls(&self) -> u64 {
        self.model_calls.load(Ordering::Relaxed)
    }

    /// The exposition text.
    pub fn render(&self, queue_depth: usize, drift: &DriftReport) -> String {
        let mut o = String::with_capacity(4096);
        o.push_str("# HELP eood_http_requests_total HTTP requests answered, by route and status.\n# TYPE eood_http_requests_total counter\n");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                o,
                "eood_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        o.push_str("# HELP eood_inputs_total Inputs decided, by decision (accepted = in-distribution).\n# TYPE eood_inputs_total counter\n");
        let _ = writeln!(
            o,
            "eood_inputs_total{{decision=\"accepted\"}} {}\neood_inputs_total{{decision=\"refused\"}} {}",
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed)
        );
        lock(&self.latency).write(
            &mut o,
            "eood_request_duration_seconds",
            "Time from request arrival to answer.",
        );
        lock(&self.batch).write(&mut o, "eood_batch_size", "Inputs per model call.");
        let gauge = |o: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let _ = writeln!(
            o,
            "# HELP eood_model_calls_total Model calls (batches).\n# TYPE eood_model_calls_total counter\neood_model_calls_total {}",
            self.model_calls()
        );
        gauge(
            &mut o,
            "eood_queue_depth",
            "Requests waiting for the model.",
            queue_depth as f64,
        );
        gauge(
            &mut o,
            "eood_drift_window_count",
            "Decisions in the drift window.",
            drift.count as f64,
        );
        let nan = f64::NAN;
        gauge(
            &mut o,
            "eood_drift_accept_rate",
            "Accept rate over the drift window (NaN while empty).",
            drift.accept_rate.unwrap_or(nan),
        );
        gauge(
            &mut o,
            "eood_drift_target_rate",
            "The detector's calibrated target TPR.",
            drift.target,
        );
        gauge(
            &mut o,
            "eood_drift_mean_score",
            "Mean score over the drift window (NaN while empty).",
            drift.mean_score.unwrap_or(nan),
        );
        gauge(
            &mut o,
            "eood_drift_p_value",
            "One-sided binomial p-value of rate >= target - margin (NaN while empty).",
            drift.p_value.unwrap_or(nan),
        );
        gauge(
            &mut o,
            "eood_drift_warning",
            "1 while the drift warning is raised.",
            f64::from(u8::from(drift.warning)),
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::{DriftMonitor, DriftOptions};

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let m = Metrics::default();
        m.request("/v1/detect", 200, 0.003);
        m.request("/v1/detect", 200, 0.2);
        m.request("other", 404, 0.0001);
        m.model_call(3);
        m.model_call(40);
        m.decisions(5, 2);
        let drift = DriftMonitor::new(DriftOptions::default(), 0.95).report();
        let t = m.render(7, &drift);
        for line in [
            "eood_http_requests_total{route=\"/v1/detect\",status=\"200\"} 2",
            "eood_http_requests_total{route=\"other\",status=\"404\"} 1",
            "eood_inputs_total{decision=\"accepted\"} 5",
            "eood_inputs_total{decision=\"refused\"} 2",
            "eood_request_duration_seconds_bucket{le=\"0.0005\"} 1",
            "eood_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "eood_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "eood_request_duration_seconds_count 3",
            "eood_batch_size_bucket{le=\"2\"} 0",
            "eood_batch_size_bucket{le=\"4\"} 1",
            "eood_batch_size_bucket{le=\"64\"} 2",
            "eood_batch_size_sum 43",
            "eood_model_calls_total 2",
            "eood_queue_depth 7",
            "eood_drift_target_rate 0.95",
            "eood_drift_accept_rate NaN",
            "eood_drift_warning 0",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }
}
