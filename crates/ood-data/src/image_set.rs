//! The common in-memory form of an image dataset.

use ndarray::{Array1, Array4};

/// Images as `N x H x W x C` `u8` (C = 1 gray or 3 RGB), with optional integer labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    pub images: Array4<u8>,
    pub labels: Option<Array1<i64>>,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.images.shape()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(H, W, C)` of every image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        let s = self.images.shape();
        (s[1], s[2], s[3])
    }
}
