//! The golden files of crates/ood-nn/tests/golden (tiny models and the outputs PyTorch recorded
//! for them) and the error measure their tests use. Framework-free, so that the eood CLI tests
//! include this file too (`#[path]` in crates/eood/tests/common/nn.rs).
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use ndarray::ArrayD;

/// A file of crates/ood-nn/tests/golden, from either crate's tests.
pub fn golden(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ood-nn/tests/golden"
    ))
    .join(name)
}

pub fn npy(path: &Path) -> ArrayD<f32> {
    ndarray_npy::read_npy(path).unwrap()
}

/// max |a - b| / max(|b|, 1e-3) over all elements.
pub fn max_rel_err(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-3))
        .fold(0.0, f32::max)
}
