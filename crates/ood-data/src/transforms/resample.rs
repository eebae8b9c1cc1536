//! Resampling (area and bilinear), with PIL's fixed-point arithmetic where the paper's code
//! relies on it.

use ndarray::{Array3, ArrayView3};

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
    /// PIL's box filter (`Image.BOX`) in PIL's fixed point: each output pixel the plain mean of
    /// the input pixels whose centres fall in its box (`-0.5 < x <= 0.5` after scaling), nearest
    /// neighbour when enlarging. The code of record's `pixelate` validation set uses it.
    Box,
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

/// PIL's `precompute_coeffs` for a filter of `support` (at scale 1) and kernel `f`.
fn pil_taps(n_in: usize, n_out: usize, support: f64, f: fn(f64) -> f64) -> Vec<Taps> {
    let scale = n_in as f64 / n_out as f64;
    let filter_scale = scale.max(1.0);
    let support = support * filter_scale;
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            // PIL truncates toward zero (`(int)`), then clamps to the image.
            let start = ((center - support + 0.5).max(0.0) as usize).min(n_in - 1);
            let end = ((center + support + 0.5) as usize).clamp(start + 1, n_in);
            let mut weights: Vec<f64> = (start..end)
                .map(|j| f((j as f64 - center + 0.5) / filter_scale))
                .collect();
            normalize_weights(&mut weights);
            Taps { start, weights }
        })
        .collect()
}

/// Pillow's `box_filter`.
fn box_kernel(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
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
        Filter::Box => pil_taps(n_in, n_out, 0.5, box_kernel),
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
    if filter != Filter::Area {
        return resize_pil_fixed_point(src, (h, w, c), height, width, filter);
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
    filter: Filter,
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
        let xt = fixed(&taps(filter, w, width));
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
        let yt = fixed(&taps(filter, h, height));
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
