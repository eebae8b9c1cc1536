//! Detector bundles: one self-describing folder (`bundle.json` + a model + the calibrated
//! detector) that turns pixels, or logits/features, into in-/out-of-distribution decisions
//! without libtorch. The model runs through tract (pure Rust); images are brought to the
//! model's input contract with ood-data's transforms; scores and the decision rule are
//! ood-core's. docs/deploy.md describes the format.
//!
//! - [`Bundle::load`] reads and verifies a folder; [`Bundle::decide`] / [`Bundle::decide_logits`]
//!   give one [`Decision`] per input; [`Bundle::self_test`] is `eood bundle check`.
//! - [`create::create`] writes a bundle from a model, a contract and a detector.
//! - Models: ONNX runs here (tract); the libtorch kinds (checkpoint, state_dict, TorchScript)
//!   come through a [`ModelLoader`] that eood's `nn` feature provides ([`Bundle::load_with`]).

pub mod bundle;
pub mod contract;
pub mod create;
pub mod error;
pub mod loader;
pub mod manifest;
pub mod runner;

pub use bundle::{Bundle, Decision};
pub use contract::{InputContract, ResizeRule};
pub use error::{BundleError, Result};
pub use loader::{ModelFiles, ModelLoader, OnnxOnly};
pub use manifest::{Manifest, ModelKind, WrnArch};
pub use runner::{Forward, Model, OnnxModel};
