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

use ndarray::{Array3, ArrayView3, ArrayViewMut3};
use rand::Rng;

// ---------------------------------------------------------------------------------------------
// Resampling

/// Resampling filter of [`resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Filter {
    /// Exact area averaging: each output pixel is the mean of the input area it covers, with
    /// fractional weights at the borders (OpenCV's `INTER_AREA` when shrinking). The right filter
    /// for shrinking photos without aliasing.
    Area,
    /// PIL's antialiased bilinear filter (triangle kernel widened by the shrink factor), which
    /// torchvision's `Resize` uses; plain bilinear interpolation when enlarging. Bit-identical to
    /// `PIL.Image.resize(size, Image.BILINEAR)` of Pillow <= 12 (see `resize_pil_fixed_point`).
    Bilinear,
}

/// Weights of one output coordinate: `out = sum_k weights[k] * in[start + k]`.
struct Taps {
    start: usize,
    weights: Vec<f64>,
}

fn area_taps(n_in: usize, n_out: usize) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let lo = o as f64 * scale;
            let hi = ((o + 1) as f64 * scale).min(n_in as f64);
            let start = (lo.floor() as usize).min(n_in - 1);
            let end = (hi.ceil() as usize).clamp(start + 1, n_in);
            // Normalized in f32, as the area path computes in f32 (kept bit-stable: built
            // datasets record SHA-256 of their arrays).
            let mut weights: Vec<f32> = (start..end)
                .map(|j| (hi.min(j as f64 + 1.0) - lo.max(j as f64)).max(0.0) as f32)
                .collect();
            let total: f32 = weights.iter().sum();
            if total > 0.0 {
                weights.iter_mut().for_each(|v| *v /= total);
            } else {
                weights[0] = 1.0;
            }
            Taps {
                start,
                weights: weights.into_iter().map(f64::from).collect(),
            }
        })
        .collect()
}

fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // triangle support 1, widened when shrinking
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let start = ((center - support + 0.5).floor().max(0.0) as usize).min(n_in - 1);
            let end = ((center + support + 0.5).floor() as usize).clamp(start + 1, n_in);
            let mut weights: Vec<f64> = (start..end)
                .map(|j| {
                    let x = (j as f64 - center + 0.5) / filter_scale;
                    (1.0 - x.abs()).max(0.0)
                })
                .collect();
            normalize_weights(&mut weights);
            Taps { start, weights }
        })
        .collect()
}

fn normalize_weights(w: &mut [f64]) {
    let total: f64 = w.iter().sum();
    if total > 0.0 {
        w.iter_mut().for_each(|v| *v /= total);
    } else if let Some(first) = w.first_mut() {
        *first = 1.0;
    }
}

fn taps(filter: Filter, n_in: usize, n_out: usize) -> Vec<Taps> {
    match filter {
        Filter::Area => area_taps(n_in, n_out),
        Filter::Bilinear => bilinear_taps(n_in, n_out),
    }
}

/// Resizes to `height x width` with a separable filter. [`Filter::Bilinear`] reproduces PIL's
/// fixed-point arithmetic exactly (see `resize_pil_fixed_point`); [`Filter::Area`] computes a
/// horizontal pass in `f32`, then the vertical one, rounding to nearest once at the end.
///
/// # Panics
/// If the image or the target size is empty.
pub fn resize(img: ArrayView3<u8>, height: usize, width: usize, filter: Filter) -> Array3<u8> {
    let (h, w, c) = img.dim();
    assert!(
        h > 0 && w > 0 && height > 0 && width > 0,
        "resize of an empty image or to an empty size"
    );
    if (h, w) == (height, width) {
        return img.to_owned();
    }
    let src = img.as_standard_layout();
    let src = src.as_slice().expect("standard layout");
    if filter == Filter::Bilinear {
        return resize_pil_fixed_point(src, (h, w, c), height, width);
    }
    let xt = taps(filter, w, width);
    let yt = taps(filter, h, height);
    // Horizontal pass: h x width x c.
    let mut tmp = vec![0f32; h * width * c];
    for y in 0..h {
        let row = &src[y * w * c..(y + 1) * w * c];
        for (ox, t) in xt.iter().enumerate() {
            let out = &mut tmp[(y * width + ox) * c..(y * width + ox + 1) * c];
            for (k, &wt) in t.weights.iter().enumerate() {
                let px = &row[(t.start + k) * c..(t.start + k + 1) * c];
                for ch in 0..c {
                    out[ch] += wt as f32 * px[ch] as f32;
                }
            }
        }
    }
    // Vertical pass.
    let mut dst = vec![0u8; height * width * c];
    let mut acc = vec![0f32; width * c];
    for (oy, t) in yt.iter().enumerate() {
        acc.iter_mut().for_each(|v| *v = 0.0);
        for (k, &wt) in t.weights.iter().enumerate() {
            let row = &tmp[(t.start + k) * width * c..(t.start + k + 1) * width * c];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += wt as f32 * v;
            }
        }
        for (d, &a) in dst[oy * width * c..(oy + 1) * width * c]
            .iter_mut()
            .zip(&acc)
        {
            *d = (a + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
    Array3::from_shape_vec((height, width, c), dst).expect("sized above")
}

/// PIL's 8-bit resampling arithmetic (`ImagingResample`): weights in fixed point with 22
/// fractional bits, rounded `(int)(0.5 + w * 2^22)`; a horizontal pass (only if the width changes)
/// rounded and clipped to `u8`, then a vertical pass (only if the height changes) likewise. This
/// makes [`Filter::Bilinear`] bit-identical to `PIL.Image.resize(..., BILINEAR)` of Pillow up to
/// 12 (checked against 11.3.0). Pillow 13 runs the vertical pass first when the height shrinks
/// much more than the width, which can move values by 1; we keep the classic order of the paper's era.
fn resize_pil_fixed_point(
    src: &[u8],
    (h, w, c): (usize, usize, usize),
    height: usize,
    width: usize,
) -> Array3<u8> {
    const PRECISION_BITS: u32 = 32 - 8 - 2;
    let fixed = |t: &[Taps]| -> Vec<(usize, Vec<i64>)> {
        t.iter()
            .map(|t| {
                let k = t
                    .weights
                    .iter()
                    .map(|&w| (0.5 + w * (1u64 << PRECISION_BITS) as f64) as i64)
                    .collect();
                (t.start, k)
            })
            .collect()
    };
    let clip8 = |ss: i64| -> u8 { (ss >> PRECISION_BITS).clamp(0, 255) as u8 };
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut cur = src.to_vec();
    let mut cur_w = w;
    if width != w {
        let xt = fixed(&bilinear_taps(w, width));
        let mut out = vec![0u8; h * width * c];
        for y in 0..h {
            let row = &cur[y * w * c..(y + 1) * w * c];
            for (ox, (start, k)) in xt.iter().enumerate() {
                for ch in 0..c {
                    let ss = k.iter().enumerate().fold(half, |ss, (i, &kk)| {
                        ss + row[(start + i) * c + ch] as i64 * kk
                    });
                    out[(y * width + ox) * c + ch] = clip8(ss);
                }
            }
        }
        cur = out;
        cur_w = width;
    }
    if height != h {
        let yt = fixed(&bilinear_taps(h, height));
        let mut out = vec![0u8; height * cur_w * c];
        let stride = cur_w * c;
        for (oy, (start, k)) in yt.iter().enumerate() {
            for j in 0..stride {
                let ss = k.iter().enumerate().fold(half, |ss, (i, &kk)| {
                    ss + cur[(start + i) * stride + j] as i64 * kk
                });
                out[oy * stride + j] = clip8(ss);
            }
        }
        cur = out;
    }
    Array3::from_shape_vec((height, width, c), cur).expect("sized above")
}

/// The size torchvision's `Resize(size)` gives: the shorter side becomes `size`, the longer one
/// `trunc(size * long / short)`.
pub fn shorter_side_size(height: usize, width: usize, size: usize) -> (usize, usize) {
    if height <= width {
        (size, ((size * width) / height).max(1))
    } else {
        (((size * height) / width).max(1), size)
    }
}

/// Resizes so that the shorter side is `size`, keeping the aspect ratio.
pub fn resize_shorter_side(img: ArrayView3<u8>, size: usize, filter: Filter) -> Array3<u8> {
    let (h, w, _) = img.dim();
    let (nh, nw) = shorter_side_size(h, w, size);
    resize(img, nh, nw, filter)
}

/// Python's `round` (half to even) of a non-negative half-integer or integer `n / 2`.
fn half_round_even(n: usize) -> usize {
    let q = n / 2;
    if n % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// Crops the central `height x width` window (offset rounded half-to-even as torchvision does).
/// A window larger than the image is padded with zeros on both sides, as torchvision does.
pub fn center_crop(img: ArrayView3<u8>, height: usize, width: usize) -> Array3<u8> {
    let (h, w, c) = img.dim();
    let mut out = Array3::<u8>::zeros((height, width, c));
    // Signed offset of the window in the image: top = round((h - height) / 2).
    let off = |img_len: usize, win: usize| -> isize {
        if img_len >= win {
            half_round_even(img_len - win) as isize
        } else {
            -(((win - img_len) / 2) as isize)
        }
    };
    let (top, left) = (off(h, height), off(w, width));
    copy_window(img, top, left, out.view_mut());
    out
}

/// Copies `src[top + y, left + x]` into `dst[y, x]` where inside `src`, leaving the rest untouched.
fn copy_window(src: ArrayView3<u8>, top: isize, left: isize, mut dst: ArrayViewMut3<u8>) {
    let (h, w, _) = src.dim();
    let (dh, dw, _) = dst.dim();
    for y in 0..dh {
        let sy = top + y as isize;
        if sy < 0 || sy >= h as isize {
            continue;
        }
        for x in 0..dw {
            let sx = left + x as isize;
            if sx < 0 || sx >= w as isize {
                continue;
            }
            dst.slice_mut(ndarray::s![y, x, ..])
                .assign(&src.slice(ndarray::s![sy as usize, sx as usize, ..]));
        }
    }
}

/// Gray (`C = 1`) from RGB(A) by ITU-R 601-2 luma, in PIL's fixed point:
/// `L = (19595 R + 38470 G + 7471 B + 2^15) >> 16`. One-channel input is copied; two-channel
/// (gray + alpha) input keeps its gray channel.
pub fn to_grayscale(img: ArrayView3<u8>) -> Array3<u8> {
    let (h, w, c) = img.dim();
    if c < 3 {
        return img.slice(ndarray::s![.., .., 0..1]).to_owned();
    }
    Array3::from_shape_fn((h, w, 1), |(y, x, _)| {
        let (r, g, b) = (
            img[[y, x, 0]] as u32,
            img[[y, x, 1]] as u32,
            img[[y, x, 2]] as u32,
        );
        ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8
    })
}

/// RGB (`C = 3`) by replicating a gray image's first channel; RGB input is copied.
pub fn gray_to_rgb(img: ArrayView3<u8>) -> Array3<u8> {
    let (h, w, c) = img.dim();
    if c >= 3 {
        return img.slice(ndarray::s![.., .., 0..3]).to_owned();
    }
    Array3::from_shape_fn((h, w, 3), |(y, x, _)| img[[y, x, 0]])
}

/// Horizontal mirror.
pub fn hflip(img: ArrayView3<u8>) -> Array3<u8> {
    img.slice(ndarray::s![.., ..;-1, ..]).to_owned()
}

// ---------------------------------------------------------------------------------------------
// Normalization and the augmentation pipeline

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
