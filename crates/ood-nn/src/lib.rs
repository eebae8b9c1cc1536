//! ood-nn: the neural layer on tch (libtorch): the WideResNet of the energy-OOD code of record,
//! reading PyTorch checkpoints, our own checkpoints, training and fine-tuning.
//! See docs/neural.md and docs/architecture.md.
pub mod checkpoint;
mod cuda_link;
pub mod data;
pub mod error;
pub mod extract;
pub mod losses;
pub mod mahalanobis_ensemble;
pub mod mahalanobis_input;
pub mod margin_search;
pub mod model;
pub mod odin;
pub mod pytorch;
pub mod sgd;
pub mod state_dict;
pub mod train;
pub mod validation;
pub mod wrn;

pub use cuda_link::LINKS_TORCH_CUDA;
pub use error::{Error, Result, StateDictMismatch};
pub use tch;
pub use wrn::{WideResNet, WrnConfig, WrnOutput};
