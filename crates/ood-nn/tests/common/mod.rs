//! Helpers shared by the ood-nn test binaries: the golden files (tests/golden, recorded by
//! PyTorch), the small random WRN-10-1 they were made with, and the error measure.
#![allow(dead_code)] // each test binary uses its own subset

mod golden;

#[allow(unused_imports)] // each test binary uses its own subset
pub use golden::{golden, max_rel_err, npy};
use ood_nn::model::Classifier;
use ood_nn::tch::Device;
use ood_nn::WrnConfig;

/// The architecture of the golden WRN-10-1 (tests/golden/make_golden.py).
pub fn small_config() -> WrnConfig {
    WrnConfig {
        depth: 10,
        widen_factor: 1,
        dropout: 0.3,
        num_classes: 10,
        in_channels: 3,
    }
}

/// The golden WRN-10-1 from its PyTorch state_dict, on the CPU.
pub fn wrn10() -> Classifier {
    Classifier::from_state_dict(&golden("wrn10_zip.pt"), &small_config(), Device::Cpu).unwrap()
}
