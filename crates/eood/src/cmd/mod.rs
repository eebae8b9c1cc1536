//! One module per subcommand. Each exposes `Args` (clap) and `run(Args)`.
pub mod bundle;
pub mod calibrate;
pub mod data;
pub mod detect;
pub mod detect_bundle;
pub mod mahalanobis;
pub mod metrics;
pub mod score;

#[cfg(feature = "nn")]
pub mod bench;
#[cfg(feature = "nn")]
pub mod bundle_torch;
#[cfg(feature = "nn")]
pub mod extract;
#[cfg(feature = "nn")]
pub mod extract_onnx;
#[cfg(feature = "nn")]
pub mod finetune;
#[cfg(feature = "nn")]
pub mod train;
