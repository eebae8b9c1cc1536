//! The input contract: what one model input is (height, width, channels, mean/std) and how an
//! image of any size and colour layout is brought to it.
//!
//! Pixel pipeline for one `H x W x C` u8 image: channels first (gray <- RGB by ITU-R 601-2 luma,
//! RGB <- gray by replication; ood-data's transforms), then the resize rule when the size differs
//! from the contract's, then `(x / 255 - mean[c]) / std[c]` into `C x H x W` f32. An image that
//! already has the contract's size is not resampled, so it gives exactly the tensor
//! `eood extract` builds.

use ndarray::{Array3, Array4, ArrayView3};
use ood_data::transforms::{
    center_crop, gray_to_rgb, resize, resize_shorter_side, to_grayscale, Filter, Normalize,
};
use serde::{Deserialize, Serialize};

use crate::error::{BundleError, Result};

/// Largest side and channel count a contract may declare (a hostile manifest must not make us
/// allocate from its numbers).
pub const MAX_SIDE: usize = 4096;

/// How an image of another size is brought to the contract's height and width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeRule {
    /// Resize to exactly `height x width` (aspect ratio not kept).
    Stretch,
    /// torchvision's `Resize(max(height, width))` then `CenterCrop(height, width)`: the
    /// shorter side is scaled, the longer one cropped around the centre.
    ShorterSideCenterCrop,
}

/// Input of the model, as `bundle.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputContract {
    pub height: usize,
    pub width: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    pub resize: ResizeRule,
    /// Resampling filter of the resize rule (PIL-exact bilinear, or area averaging).
    pub filter: Filter,
    /// Per-channel mean and standard deviation in `[0, 1]` units.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl InputContract {
    /// Checks the numbers of a contract read from a file; `Err` holds what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SIDE).contains(&self.height) || !(1..=MAX_SIDE).contains(&self.width) {
            return Err(format!(
                "input size {}x{} is outside 1..={MAX_SIDE}",
                self.height, self.width
            ));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(format!("channels must be 1 or 3, got {}", self.channels));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err(format!(
                "{} means and {} stds for {} channels",
                self.mean.len(),
                self.std.len(),
                self.channels
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err("mean must be finite and std positive and finite".into());
        }
        Ok(())
    }

    /// `[C, H, W]` of one model input.
    pub fn chw(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// One `H x W x C` image in the contract's channels and size (u8, before normalisation).
    pub fn conform(&self, index: usize, img: ArrayView3<u8>) -> Result<Array3<u8>> {
        let (h, w, c) = img.dim();
        if h == 0 || w == 0 {
            return Err(BundleError::BadInput {
                index,
                what: format!("image is {h}x{w}"),
            });
        }
        let img = match (c, self.channels) {
            (a, b) if a == b => img.to_owned(),
            (3, 1) => to_grayscale(img),
            (1, 3) => gray_to_rgb(img),
            _ => {
                return Err(BundleError::BadInput {
                    index,
                    what: format!("{c} channels (the bundle takes 1 or 3)"),
                })
            }
        };
        if (h, w) == (self.height, self.width) {
            return Ok(img);
        }
        Ok(match self.resize {
            ResizeRule::Stretch => resize(img.view(), self.height, self.width, self.filter),
            ResizeRule::ShorterSideCenterCrop => {
                let side = self.height.max(self.width);
                let scaled = resize_shorter_side(img.view(), side, self.filter);
                center_crop(scaled.view(), self.height, self.width)
            }
        })
    }

    /// A batch of images, each of any size, as the model's normalised `N x C x H x W` input.
    pub fn preprocess(&self, images: &[ArrayView3<u8>]) -> Result<Array4<f32>> {
        let [c, h, w] = self.chw();
        ood_core::limits::check_alloc("image batch", (images.len() * c * h * w) as u128, 4)?;
        let mut out = Array4::<f32>::zeros((images.len(), c, h, w));
        let norm = Normalize {
            mean: self.mean.clone(),
            std: self.std.clone(),
        };
        for (i, (img, mut slot)) in images.iter().zip(out.outer_iter_mut()).enumerate() {
            let img = self.conform(i, *img)?;
            let slot = slot.as_slice_mut().expect("fresh array is contiguous");
            norm.apply_into(img.view(), slot);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn gray28() -> InputContract {
        InputContract {
            height: 28,
            width: 28,
            channels: 1,
            resize: ResizeRule::ShorterSideCenterCrop,
            filter: Filter::Bilinear,
            mean: vec![0.286],
            std: vec![0.353],
        }
    }

    #[test]
    fn same_size_gray_is_only_normalised() {
        let img = Array3::from_shape_fn((28, 28, 1), |(y, x, _)| (y * 7 + x) as u8);
        let t = gray28().preprocess(&[img.view()]).unwrap();
        assert_eq!(t.dim(), (1, 1, 28, 28));
        let expect = |v: u8| (v as f32 / 255.0 - 0.286) / 0.353;
        assert!((t[[0, 0, 3, 5]] - expect(3 * 7 + 5)).abs() < 1e-6);
        assert!((t[[0, 0, 27, 27]] - expect(27 * 7 + 27)).abs() < 1e-6);
    }

    #[test]
    fn rgb_and_larger_images_are_conformed() {
        // a uniform RGB 56x84 image: luma of (100, 100, 100) is 100, any resize keeps it
        let img = Array3::from_elem((56, 84, 3), 100u8);
        let c = gray28();
        let u8s = c.conform(0, img.view()).unwrap();
        assert_eq!(u8s.dim(), (28, 28, 1));
        assert!(u8s.iter().all(|&v| v == 100));
        let stretch = InputContract {
            resize: ResizeRule::Stretch,
            ..gray28()
        };
        assert_eq!(stretch.conform(0, img.view()).unwrap().dim(), (28, 28, 1));
    }

    #[test]
    fn refuses_bad_contracts_and_images() {
        let mut c = gray28();
        c.std = vec![0.0];
        assert!(c.validate().unwrap_err().contains("std"));
        c = gray28();
        c.height = 1 << 20;
        assert!(c.validate().unwrap_err().contains("outside"));
        let two = Array3::<u8>::zeros((28, 28, 2));
        let e = gray28().conform(4, two.view()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input 4: 2 channels (the bundle takes 1 or 3)"
        );
        let empty = Array3::<u8>::zeros((0, 28, 1));
        assert!(gray28().conform(0, empty.view()).is_err());
    }
}
