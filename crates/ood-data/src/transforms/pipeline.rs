//! Normalization and the seeded augmentation pipeline.

use ndarray::{Array3, ArrayView3};
use rand::Rng;

use super::geometry::*;
use super::resample::*;

/// CIFAR-10/100 per-channel mean (RGB) in `[0, 1]` units: `[125.3, 123.0, 113.9] / 255`, the
/// constants of the paper's code (from Hendrycks et al.'s outlier-exposure code).
pub const CIFAR_MEAN: [f32; 3] = [125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0];
/// CIFAR-10/100 per-channel standard deviation: `[63.0, 62.1, 66.7] / 255`.
pub const CIFAR_STD: [f32; 3] = [63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0];

/// Per-channel normalization `out = (x / 255 - mean[c]) / std[c]` (torchvision's
/// `ToTensor` followed by `Normalize(mean, std)`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// The CIFAR constants ([`CIFAR_MEAN`], [`CIFAR_STD`]).
    pub fn cifar() -> Self {
        Normalize {
            mean: CIFAR_MEAN.to_vec(),
            std: CIFAR_STD.to_vec(),
        }
    }

    /// Only scales to `[0, 1]`.
    pub fn unit(channels: usize) -> Self {
        Normalize {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Per-channel `(scale, shift)` with `out = x * scale + shift` for a `u8` value `x`.
    fn affine(&self, channels: usize) -> Vec<(f32, f32)> {
        assert!(
            self.mean.len() == channels && self.std.len() == channels,
            "Normalize has {} means / {} stds for {channels}-channel images",
            self.mean.len(),
            self.std.len()
        );
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| (1.0 / (255.0 * s), -m / s))
            .collect()
    }

    /// Normalizes an `H x W x C` image into `out` laid out `C x H x W`.
    pub fn apply_into(&self, img: ArrayView3<u8>, out: &mut [f32]) {
        let (h, w, c) = img.dim();
        assert_eq!(out.len(), c * h * w, "output buffer size");
        let aff = self.affine(c);
        for ((y, x, ch), &v) in img.indexed_iter() {
            let (a, b) = aff[ch];
            out[ch * h * w + y * w + x] = v as f32 * a + b;
        }
    }
}

/// One step of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Step {
    Resize {
        height: usize,
        width: usize,
        filter: Filter,
    },
    ResizeShorterSide {
        size: usize,
        filter: Filter,
    },
    CenterCrop {
        height: usize,
        width: usize,
    },
    Grayscale,
    /// Zero-pad every side by `padding`, then crop a uniformly random `height x width` window
    /// (torchvision `RandomCrop(size, padding)`).
    RandomCrop {
        height: usize,
        width: usize,
        padding: usize,
    },
    /// Mirror left-right with probability `p`.
    HorizontalFlip {
        p: f64,
    },
}

impl Step {
    fn is_geometric_random(&self) -> bool {
        matches!(self, Step::RandomCrop { .. } | Step::HorizontalFlip { .. })
    }

    fn out_shape(&self, (h, w, c): (usize, usize, usize)) -> (usize, usize, usize) {
        match *self {
            Step::Resize { height, width, .. } => (height, width, c),
            Step::ResizeShorterSide { size, .. } => {
                let (nh, nw) = shorter_side_size(h, w, size);
                (nh, nw, c)
            }
            Step::CenterCrop { height, width } | Step::RandomCrop { height, width, .. } => {
                (height, width, c)
            }
            Step::Grayscale => (h, w, 1),
            Step::HorizontalFlip { .. } => (h, w, c),
        }
    }

    fn apply(&self, img: ArrayView3<u8>, rng: &mut impl Rng) -> Array3<u8> {
        match *self {
            Step::Resize {
                height,
                width,
                filter,
            } => resize(img, height, width, filter),
            Step::ResizeShorterSide { size, filter } => resize_shorter_side(img, size, filter),
            Step::CenterCrop { height, width } => center_crop(img, height, width),
            Step::Grayscale => to_grayscale(img),
            Step::RandomCrop {
                height,
                width,
                padding,
            } => {
                let (h, w, c) = img.dim();
                let (dy, dx) = draw_crop(rng, h, w, height, width, padding);
                let mut out = Array3::zeros((height, width, c));
                copy_window(
                    img,
                    dy as isize - padding as isize,
                    dx as isize - padding as isize,
                    out.view_mut(),
                );
                out
            }
            Step::HorizontalFlip { p } => {
                if rng.random_bool(p) {
                    hflip(img)
                } else {
                    img.to_owned()
                }
            }
        }
    }
}

/// Offsets of a random crop in the padded image, each uniform over its valid range.
fn draw_crop(
    rng: &mut impl Rng,
    h: usize,
    w: usize,
    ch: usize,
    cw: usize,
    pad: usize,
) -> (usize, usize) {
    let max_y = (h + 2 * pad).saturating_sub(ch);
    let max_x = (w + 2 * pad).saturating_sub(cw);
    (rng.random_range(0..=max_y), rng.random_range(0..=max_x))
}

/// A sequence of transforms followed by normalization to `C x H x W` `f32`.
///
/// Random steps draw from the `rng` given to [`Pipeline::apply_into`], in step order, so a seeded
/// generator reproduces every crop and flip. A trailing run of flips with at most one random crop
/// is fused with normalization (one read per output value, no intermediate image).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    pub steps: Vec<Step>,
    pub normalize: Normalize,
}

impl Pipeline {
    /// The paper's CIFAR training augmentation: random crop 32 with 4-pixel zero padding,
    /// horizontal flip (p = 0.5), CIFAR normalization.
    pub fn cifar_train() -> Self {
        Pipeline {
            steps: vec![
                Step::RandomCrop {
                    height: 32,
                    width: 32,
                    padding: 4,
                },
                Step::HorizontalFlip { p: 0.5 },
            ],
            normalize: Normalize::cifar(),
        }
    }

    /// CIFAR evaluation: normalization only.
    pub fn cifar_test() -> Self {
        Pipeline {
            steps: vec![],
            normalize: Normalize::cifar(),
        }
    }

    /// `H x W x C` output shape for an input shape.
    pub fn output_hwc(&self, input: (usize, usize, usize)) -> (usize, usize, usize) {
        self.steps.iter().fold(input, |s, step| step.out_shape(s))
    }

    /// Applies the steps (u8 in, u8 out), drawing random parameters from `rng`.
    pub fn apply_u8(&self, img: ArrayView3<u8>, rng: &mut impl Rng) -> Array3<u8> {
        let mut cur = img.to_owned();
        for step in &self.steps {
            cur = step.apply(cur.view(), rng);
        }
        cur
    }

    /// Applies the steps and normalization, writing `C x H x W` values into `out`.
    pub fn apply_into(&self, img: ArrayView3<u8>, rng: &mut impl Rng, out: &mut [f32]) {
        // Split off the fusable suffix: flips and at most one random crop.
        let mut split = self.steps.len();
        let mut crops = 0;
        while split > 0 && self.steps[split - 1].is_geometric_random() {
            if matches!(self.steps[split - 1], Step::RandomCrop { .. }) {
                if crops == 1 {
                    break;
                }
                crops += 1;
            }
            split -= 1;
        }
        let owned;
        let mut src = img;
        if split > 0 {
            let mut cur = img.to_owned();
            for step in &self.steps[..split] {
                cur = step.apply(cur.view(), rng);
            }
            owned = cur;
            src = owned.view();
        }
        self.fused_tail(src, &self.steps[split..], rng, out);
    }

    /// Composes the flips and crop of `tail` into one affine index map
    /// `out (y, x) -> src (y + oy, sx * x + ox)` and normalizes through it; source positions
    /// outside the image are the zero padding.
    fn fused_tail(&self, src: ArrayView3<u8>, tail: &[Step], rng: &mut impl Rng, out: &mut [f32]) {
        let (sh, sw, c) = src.dim();
        let (mut h, mut w) = (sh, sw);
        let (mut oy, mut ox, mut sx) = (0isize, 0isize, 1isize);
        for step in tail {
            match *step {
                Step::RandomCrop {
                    height,
                    width,
                    padding,
                } => {
                    let (dy, dx) = draw_crop(rng, h, w, height, width, padding);
                    // new (y, x) -> current (y + dy - p, x + dx - p)
                    let (ty, tx) = (
                        dy as isize - padding as isize,
                        dx as isize - padding as isize,
                    );
                    oy += ty;
                    ox += sx * tx;
                    h = height;
                    w = width;
                }
                Step::HorizontalFlip { p } => {
                    if rng.random_bool(p) {
                        // new (y, x) -> current (y, w - 1 - x)
                        ox += sx * (w as isize - 1);
                        sx = -sx;
                    }
                }
                _ => unreachable!("only flips and crops are fused"),
            }
        }
        assert_eq!(out.len(), c * h * w, "output buffer size");
        let aff = self.normalize.affine(c);
        let src = src.as_standard_layout();
        let data = src.as_slice().expect("standard layout");
        // Output columns whose source column is inside the image: `0 <= sx * x + ox < sw`.
        let (x_lo, x_hi) = if sx > 0 {
            (-ox, sw as isize - ox)
        } else {
            (ox - sw as isize + 1, ox + 1)
        };
        let (x_lo, x_hi) = (
            x_lo.clamp(0, w as isize) as usize,
            x_hi.clamp(0, w as isize) as usize,
        );
        for (ch, &(a, b)) in aff.iter().enumerate() {
            let plane = &mut out[ch * h * w..(ch + 1) * h * w];
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let syy = y as isize + oy;
                if syy < 0 || syy >= sh as isize || x_lo >= x_hi {
                    row.fill(b); // zero padding, normalized
                    continue;
                }
                row[..x_lo].fill(b);
                row[x_hi..].fill(b);
                let src_row = &data[syy as usize * sw * c..(syy as usize + 1) * sw * c];
                let inside = &mut row[x_lo..x_hi];
                if sx > 0 {
                    let start = (x_lo as isize + ox) as usize;
                    for (o, px) in inside.iter_mut().zip(src_row[start * c..].chunks_exact(c)) {
                        *o = px[ch] as f32 * a + b;
                    }
                } else {
                    for (k, o) in inside.iter_mut().enumerate() {
                        let sxx = (ox - (x_lo + k) as isize) as usize;
                        *o = src_row[sxx * c + ch] as f32 * a + b;
                    }
                }
            }
        }
    }
}
