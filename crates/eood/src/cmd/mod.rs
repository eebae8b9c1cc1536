//! One module per subcommand. Each exposes `Args` (clap) and `run(Args)`.
pub mod bundle;
pub mod calibrate;
pub mod data;
pub mod detect;
pub mod detect_bundle;
pub mod fit;
pub mod fit_args;
pub mod metrics;
pub mod score;
pub mod serve;

#[cfg(feature = "nn")]
pub mod bench;
#[cfg(feature = "nn")]
pub mod bundle_torch;
#[cfg(feature = "nn")]
pub mod extract;
#[cfg(feature = "nn")]
pub mod extract_method;
#[cfg(feature = "nn")]
pub mod extract_onnx;
#[cfg(feature = "nn")]
pub mod finetune;
#[cfg(feature = "nn")]
pub mod train;
