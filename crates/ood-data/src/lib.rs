//! Framework-free data layer of energy-ood: dataset readers, a registry of named datasets with
//! verified downloads and a cache, seeded transforms, batching with background prefetch, and the
//! builder of the Fashion-MNIST OOD benchmark. It yields `u8`/`f32` pixels and labels; the neural
//! layer (`ood-nn`) turns them into tensors.

pub mod batch;
pub mod cache;
pub mod download;
pub mod error;
pub mod fmnist_ood;
pub mod formats;
pub mod image_set;
pub mod montage;
pub mod registry;
pub mod transforms;

pub use error::{Error, Result};
pub use image_set::ImageSet;
