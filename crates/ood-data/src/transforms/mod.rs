//! Image transforms on `H x W x C` `u8` arrays, and the seeded augmentation pipeline that turns
//! them into normalized `C x H x W` `f32` tensors for training.
//!
//! Deterministic transforms: [`resize`] (area or bilinear), [`resize_shorter_side`],
//! [`center_crop`], [`to_grayscale`], [`gray_to_rgb`]. Random transforms (drawn from the `rng`
//! the caller passes, so a seed reproduces them exactly): random crop with zero padding and
//! horizontal flip, applied through a [`Pipeline`] that ends with per-channel [`Normalize`].
//!
//! Conventions follow torchvision/PIL, which the paper's code uses: `Resize(32)` scales the
//! shorter side to 32 and truncates the longer one, `CenterCrop` rounds the offset half-to-even,
//! `RandomCrop(32, padding=4)` pads with zeros *before* normalization, and gray conversion is
//! ITU-R 601-2 luma in PIL's fixed point.

pub mod corrupt;
mod geometry;
mod pipeline;
mod resample;

pub use geometry::{
    center_crop, gray_to_rgb, hflip, resize_shorter_side, shorter_side_size, to_grayscale,
};
pub use pipeline::{Normalize, Pipeline, Step, CIFAR_MEAN, CIFAR_STD};
pub use resample::{resize, Filter};
