//! Validation OOD sets as the code of record makes them: the image corruptions of Outlier
//! Exposure's `CIFAR/test.py --validate` (Hendrycks et al., ICLR 2019), which energy_ood's
//! `CIFAR/test.py` reuses unchanged, and the pixel helpers the Fashion-MNIST benchmark's own
//! validation sets (`fmnist_ood::validation`) share with them.
//!
//! CIFAR sets ([`CifarValSet`]), each from images of the *other* CIFAR test set (CIFAR-100's for
//! CIFAR-10 and vice versa), `x` an image as `ToTensor` gives it (pixels / 255, `C x H x W`):
//!
//! | set        | the code of record                                                             |
//! |------------|-------------------------------------------------------------------------------|
//! | uniform    | `np.random.uniform(-1, 1)` fed as the *normalized* tensor: pixel `mean + std u`   |
//! | arith_mean | `x_i / 2 + x_j / 2`, `j != i` uniform                                          |
//! | geom_mean  | `sqrt(x_i x_j)`, `j != i` uniform                                              |
//! | jigsaw     | a fixed rearrangement of quadrants and half-quadrants ([`jigsaw_32`])          |
//! | speckle    | `clamp(x + x z, 0, 1)`, `z ~ N(0, 1)` per value                               |
//! | pixelate   | PIL `resize((6, 6), BOX)` then `resize((32, 32), BOX)` (`int(32 * 0.2) = 6`)     |
//! | rgb_shift  | channels (G mirrored left-right, B, R)                                         |
//! | inverted   | channel 0 kept, `1 - x` on channels 1 and 2 ("not done on all channels")       |
//!
//! Stored as `u8` like every image set here: values are rounded to the nearest 1/255 (the code of
//! record keeps floats; the difference is at most half a grey level). The code of record's NumPy
//! draws cannot be reproduced; ours are ChaCha8, one stream per set, so a seed fixes each set
//! independently of the others.

use ndarray::{s, Array3, Array4, ArrayView3, ArrayView4};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::resample::{resize, Filter};
use crate::{Error, Result};

/// A pixel value in `[0, 1]` (clamped) as `u8`.
pub fn unit_to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// `(p + q) / 2` (arithmetic) or `sqrt(p q)` (geometric), element by element.
pub fn mean_of_pair(a: &[f32], b: &[f32], geometric: bool) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| {
            if geometric {
                (p * q).sqrt()
            } else {
                (p + q) / 2.0
            }
        })
        .collect()
}

/// Speckle noise `p + p * scale * z`, one `z ~ N(0, 1)` per value in order (unclamped).
pub fn speckle(x: &[f32], scale: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    x.iter()
        .map(|&p| {
            let z: f64 = StandardNormal.sample(rng);
            p + p * scale * z as f32
        })
        .collect()
}

/// `1 - p` on the channels `>= first` of interleaved (`H x W x C`) values, the others kept.
pub fn invert_channels(x: &[f32], channels: usize, first: usize) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &p)| if i % channels >= first { 1.0 - p } else { p })
        .collect()
}

/// The code of record's jigsaw of a 32 x 32 image (`H x W x C`), a fixed permutation of pixels:
/// output top-left = the input's top-left quadrant with its two 8-row halves swapped; top-right =
/// the bottom-left quadrant; bottom-left = the bottom-right quadrant; bottom-right = the top-right
/// quadrant with its two 8-column halves swapped.
pub fn jigsaw_32(img: ArrayView3<u8>) -> Array3<u8> {
    Array3::from_shape_fn(img.dim(), |(y, x, c)| {
        let (sy, sx) = match (y < 16, x < 16) {
            (true, true) => ((y + 8) % 16, x),
            (true, false) => (y + 16, x - 16),
            (false, true) => (y, x + 16),
            (false, false) => (y - 16, if x < 24 { x + 8 } else { x - 8 }),
        };
        img[[sy, sx, c]]
    })
}

/// The code of record's RGB shift: output channels (G mirrored left-right, B, R).
pub fn rgb_shift(img: ArrayView3<u8>) -> Array3<u8> {
    let w = img.dim().1;
    Array3::from_shape_fn(img.dim(), |(y, x, c)| match c {
        0 => img[[y, w - 1 - x, 1]],
        1 => img[[y, x, 2]],
        _ => img[[y, x, 0]],
    })
}

/// The code of record's pixelate: PIL BOX down to `int(side * 0.2)` and back.
pub fn pixelate(img: ArrayView3<u8>) -> Array3<u8> {
    let (h, w, _) = img.dim();
    let (sh, sw) = ((h as f64 * 0.2) as usize, (w as f64 * 0.2) as usize);
    let small = resize(img, sh.max(1), sw.max(1), Filter::Box);
    resize(small.view(), h, w, Filter::Box)
}

/// The CIFAR validation OOD sets of the code of record, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarValSet {
    Uniform,
    ArithMean,
    GeomMean,
    Jigsaw,
    Speckle,
    Pixelate,
    RgbShift,
    Inverted,
}

impl CifarValSet {
    pub const ALL: [CifarValSet; 8] = [
        CifarValSet::Uniform,
        CifarValSet::ArithMean,
        CifarValSet::GeomMean,
        CifarValSet::Jigsaw,
        CifarValSet::Speckle,
        CifarValSet::Pixelate,
        CifarValSet::RgbShift,
        CifarValSet::Inverted,
    ];

    /// File stem of the set (`ood_val/<name>.npy`).
    pub fn name(self) -> &'static str {
        match self {
            CifarValSet::Uniform => "uniform",
            CifarValSet::ArithMean => "arith_mean",
            CifarValSet::GeomMean => "geom_mean",
            CifarValSet::Jigsaw => "jigsaw",
            CifarValSet::Speckle => "speckle",
            CifarValSet::Pixelate => "pixelate",
            CifarValSet::RgbShift => "rgb_shift",
            CifarValSet::Inverted => "inverted",
        }
    }

    /// `n` images of this set made from `source` (`M x 32 x 32 x 3`, the other CIFAR test set).
    /// Base images are a seeded permutation of `source` (cycled when `n > M`), as the code of
    /// record takes the first images of a shuffled loader; `uniform` ignores `source`'s pixels
    /// and un-normalizes `U(-1, 1)` with `mean`/`std` (the normalization the model is fed with).
    pub fn build(
        self,
        n: usize,
        source: ArrayView4<u8>,
        mean: &[f32],
        std: &[f32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Array4<u8>> {
        let (m, h, w, c) = source.dim();
        if (h, w, c) != (32, 32, 3) || m < 2 || mean.len() != 3 || std.len() != 3 {
            return Err(Error::Invalid {
                what: "CIFAR validation source",
                reason: format!(
                    "needs at least 2 images of 32x32x3 and 3 means/stds, got {m} of {h}x{w}x{c}"
                ),
            });
        }
        ood_core::limits::check_alloc("validation OOD images", n as u128, (h * w * c) as u128)?;
        let order = rand::seq::index::sample(rng, m, m).into_vec();
        let unit = |i: usize| -> Vec<f32> {
            source
                .slice(s![i, .., .., ..])
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect()
        };
        let mut out = Array4::<u8>::zeros((n, h, w, c));
        for k in 0..n {
            let i = order[k % m];
            let img = source.slice(s![i, .., .., ..]);
            let values: Vec<f32> = match self {
                CifarValSet::Uniform => (0..h * w * c)
                    .map(|p| {
                        let u = rng.random::<f32>() * 2.0 - 1.0;
                        mean[p % c] + std[p % c] * u
                    })
                    .collect(),
                CifarValSet::ArithMean | CifarValSet::GeomMean => {
                    // `j != i`, uniform over the others.
                    let j = (i + 1 + rng.random_range(0..m - 1)) % m;
                    mean_of_pair(&unit(i), &unit(j), self == CifarValSet::GeomMean)
                }
                CifarValSet::Speckle => speckle(&unit(i), 1.0, rng),
                CifarValSet::Inverted => invert_channels(&unit(i), c, 1),
                CifarValSet::Jigsaw | CifarValSet::Pixelate | CifarValSet::RgbShift => {
                    let moved = match self {
                        CifarValSet::Jigsaw => jigsaw_32(img),
                        CifarValSet::Pixelate => pixelate(img),
                        _ => rgb_shift(img),
                    };
                    out.slice_mut(s![k, .., .., ..]).assign(&moved);
                    continue;
                }
            };
            for (d, v) in out.slice_mut(s![k, .., .., ..]).iter_mut().zip(values) {
                *d = unit_to_u8(v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
