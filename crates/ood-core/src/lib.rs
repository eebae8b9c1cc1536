//! Framework-free core of energy-ood: OOD scores, detection metrics, the paper's evaluation
//! protocol, the calibrated detector, and .npy I/O. No deep-learning dependency: everything
//! works on plain arrays of logits and features, so it serves models from any framework.
//!
//! Convention: every score means "higher = more in-distribution".
//!
//! - [`scores`]: energy (Liu et al. 2020), MSP, max-logit, Mahalanobis.
//! - [`metrics`]: FPR at a TPR, AUROC, AUPR-In/Out, detection error, from one sort.
//! - [`protocol`]: the paper's repeated OOD draws (mean and std) and multi-set tables.
//! - [`detectors`]: the post-hoc detector zoo (ReAct, ASH, SCALE, DICE, GEN, KNN, ViM, ...),
//!   one params -> fit -> score API.
//! - [`detector`]: the calibrated threshold detector G(x) and its JSON artifact.
//! - [`logistic`]: L2 logistic regression (Newton), the Mahalanobis layer ensemble's combiner.
//! - [`selection`]: hyper-parameters chosen on validation data (mean FPR95, best of a grid).
//! - [`io`]: atomic writes, `.npy` files, input/output guards ([`io::guard`]);
//!   [`finite`]: NaN/inf policy helpers; [`limits`]: sizes checked before allocating.

pub mod detector;
pub mod detectors;
pub mod finite;
pub mod io;
pub mod limits;
pub mod logistic;
pub mod metrics;
pub mod protocol;
pub mod scores;
pub mod selection;
pub mod sort;

pub use detector::Detector;
pub use metrics::{Convention, Metrics, MetricsConfig, MetricsError};
pub use protocol::{ProtocolConfig, Summary, Table};
