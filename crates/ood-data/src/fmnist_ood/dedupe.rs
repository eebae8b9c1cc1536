//! Counting distinct pictures: the same photo at two resolutions (or re-encoded) counts once.
//!
//! The rule (also in `docs/datasets.md`): a picture's *perceptual hash* is its gray image
//! area-resized to 16x16 (aspect ratio ignored), one bit per pixel set when the pixel is above
//! the mean of the 256. Two pictures are the same photo when their hashes differ in at most
//! [`MAX_DUPLICATE_DISTANCE`] of the 256 bits. On the real sources, copies of one photo (a
//! wallpaper and its screenshot, GCompris' monuments in two activities) differ in 0-6 bits and
//! the closest distinct photos in 13, so 8 separates them.

use ndarray::ArrayView3;

use super::sources::NamedImage;
use crate::transforms::{resize, Filter};

/// Side of the downscaled image the hash is taken from.
pub const HASH_SIDE: usize = 16;
/// Most differing bits (of 256) between two hashes of the same photo.
pub const MAX_DUPLICATE_DISTANCE: u32 = 8;

/// 256-bit perceptual hash (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerceptualHash([u64; 4]);

impl PerceptualHash {
    /// The hash of a gray `H x W x 1` image (an empty image hashes to all zeros).
    pub fn of(img: ArrayView3<u8>) -> Self {
        let (h, w, _) = img.dim();
        if h == 0 || w == 0 {
            return PerceptualHash([0; 4]);
        }
        let small = resize(img, HASH_SIDE, HASH_SIDE, Filter::Area);
        let px: Vec<u32> = small.iter().map(|&v| v as u32).collect();
        let sum: u32 = px.iter().sum();
        let mut bits = [0u64; 4];
        for (i, &v) in px.iter().enumerate() {
            // v > mean, in integers: v * 256 > sum.
            if v * (HASH_SIDE * HASH_SIDE) as u32 > sum {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        PerceptualHash(bits)
    }

    /// Number of differing bits.
    pub fn distance(&self, other: &Self) -> u32 {
        self.0
            .iter()
            .zip(other.0)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// Whether the two hashes are of the same photo (distance at most [`MAX_DUPLICATE_DISTANCE`]).
    pub fn same_photo(&self, other: &Self) -> bool {
        self.distance(other) <= MAX_DUPLICATE_DISTANCE
    }

    /// Hex, for the manifest.
    pub fn hex(&self) -> String {
        self.0.iter().map(|w| format!("{w:016x}")).collect()
    }
}

/// A picture dropped as a copy of an earlier one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Duplicate {
    pub dropped: String,
    pub kept: String,
    pub distance: u32,
}

/// Keeps the first of every group of the same photo, in input order; returns the kept images
/// with their hashes and the dropped ones.
pub fn dedupe(images: Vec<NamedImage>) -> (Vec<(NamedImage, PerceptualHash)>, Vec<Duplicate>) {
    use rayon::prelude::*;
    let hashes: Vec<PerceptualHash> = images
        .par_iter()
        .map(|i| PerceptualHash::of(i.pixels.view()))
        .collect();
    let mut kept: Vec<(NamedImage, PerceptualHash)> = Vec::new();
    let mut dropped = Vec::new();
    for (img, h) in images.into_iter().zip(hashes) {
        match kept.iter().find(|(_, k)| k.same_photo(&h)) {
            Some((k, kh)) => dropped.push(Duplicate {
                dropped: img.name,
                kept: k.name.clone(),
                distance: kh.distance(&h),
            }),
            None => kept.push((img, h)),
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn photo(h: usize, w: usize, seed: usize) -> NamedImage {
        NamedImage {
            name: format!("{seed}-{h}x{w}"),
            pixels: Array3::from_shape_fn((h, w, 1), |(y, x, _)| {
                // Smooth, seed-dependent structure: survives resizing.
                let (fy, fx) = (y as f64 / h as f64, x as f64 / w as f64);
                let v =
                    ((fy * (3 + seed) as f64).sin() + (fx * (2 + 2 * seed) as f64).cos()) * 60.0;
                (128.0 + v) as u8
            }),
        }
    }

    #[test]
    fn the_same_photo_at_two_resolutions_counts_once() {
        let imgs = vec![
            photo(640, 480, 1),
            photo(200, 150, 1),
            photo(640, 480, 2),
            photo(64, 48, 2),
            photo(300, 300, 5),
        ];
        let (kept, dropped) = dedupe(imgs);
        let names: Vec<&str> = kept.iter().map(|(i, _)| i.name.as_str()).collect();
        assert_eq!(names, ["1-640x480", "2-640x480", "5-300x300"]);
        assert_eq!(dropped.len(), 2);
        assert_eq!(
            (dropped[0].dropped.as_str(), dropped[0].kept.as_str()),
            ("1-200x150", "1-640x480")
        );
        assert!(dropped.iter().all(|d| d.distance <= MAX_DUPLICATE_DISTANCE));
        // Distinct photos are far apart; an inverted photo is the farthest.
        assert!(kept[0].1.distance(&kept[1].1) > 3 * MAX_DUPLICATE_DISTANCE);
        let mut inv = photo(640, 480, 1);
        inv.pixels.mapv_inplace(|v| 255 - v);
        let hi = PerceptualHash::of(inv.pixels.view());
        assert!(hi.distance(&kept[0].1) > 200);
        assert_eq!(kept[0].1.hex().len(), 64);
    }
}
