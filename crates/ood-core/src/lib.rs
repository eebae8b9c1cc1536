//! Framework-free core of energy-ood: OOD scores, detection metrics, the paper's evaluation
//! protocol, the calibrated detector, and .npy I/O. No deep-learning dependency: everything
//! works on plain arrays of logits and features, so it serves models from any framework.
//!
//! Convention: every score means "higher = more in-distribution".

pub mod finite;
pub mod io;
pub mod metrics;
pub mod scores;

pub use metrics::{Convention, Metrics, MetricsConfig, MetricsError};
