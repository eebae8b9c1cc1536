//! Deterministic geometry and color: shorter-side resize, center crop, flips, grayscale.

use ndarray::{Array3, ArrayView3, ArrayViewMut3};

use super::resample::{resize, Filter};

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
pub(super) fn copy_window(
    src: ArrayView3<u8>,
    top: isize,
    left: isize,
    mut dst: ArrayViewMut3<u8>,
) {
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
