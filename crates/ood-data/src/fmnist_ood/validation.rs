//! Validation OOD sets for tuning (never the test sets), after the synthetic validation sets of
//! Outlier Exposure (Hendrycks et al., ICLR 2019) that the energy paper's code of record reuses.
//! Each is made from noise alone or from the ID *validation* split (held out of Fashion-MNIST's
//! training set), pixels in `[0, 1]` scaled to `u8` at the end:
//!
//! | name        | pixel (`p` of an ID image, `q` of a second one, `z ~ N(0,1)`)                      |
//! |-------------|----------------------------------------------------------------------------------|
//! | gaussian    | `clip(0.5 + 0.25 z)` (the code of record's `N(0, 0.5)` in `[-1, 1]` space)         |
//! | rademacher  | `0` or `1` with probability 1/2                                                  |
//! | uniform     | `U(0, 1)`                                                                        |
//! | blobs       | Bernoulli(0.7), Gaussian blur sigma 1, values below 0.75 set to 0                 |
//! | arith_mean  | `(p + q) / 2`                                                                    |
//! | geom_mean   | `sqrt(p q)`                                                                      |
//! | jigsaw      | the 16 tiles (4 x 4 grid of 7 x 7) of `p` randomly permuted                       |
//! | speckle     | `clip(p + p z / 2)`                                                              |
//! | pixelate    | `p` area-shrunk to 7 x 7, enlarged back by pixel repetition                       |
//! | inverted    | `1 - p`                                                                          |
//!
//! The pair means, speckle, inversion and the `u8` rounding are `transforms::corrupt`'s, shared
//! with the CIFAR track's validation sets (the code of record's, with its 32 x 32 parameters).

use ndarray::{s, Array4, ArrayView4};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::SIDE;
use crate::transforms::corrupt::{invert_channels, mean_of_pair, speckle, unit_to_u8};
use crate::transforms::{resize, Filter};

/// Names of the validation OOD sets, in output order.
pub const VALIDATION_SETS: &[&str] = &[
    "gaussian",
    "rademacher",
    "uniform",
    "blobs",
    "arith_mean",
    "geom_mean",
    "jigsaw",
    "speckle",
    "pixelate",
    "inverted",
];

const PIXELS: usize = SIDE * SIDE;

/// Builds the validation OOD set `name` of `n` images from `id_val` (`M x 28 x 28 x 1`).
pub fn build(
    name: &str,
    n: usize,
    id_val: ArrayView4<u8>,
    rng: &mut ChaCha8Rng,
) -> Option<Array4<u8>> {
    let m = id_val.shape()[0];
    let mut out = Array4::<u8>::zeros((n, SIDE, SIDE, 1));
    let id = |i: usize| -> Vec<f32> {
        id_val
            .slice(s![i, .., .., 0])
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect()
    };
    for k in 0..n {
        let img: Vec<f32> = match name {
            "gaussian" => (0..PIXELS)
                .map(|_| {
                    0.5 + 0.25 * {
                        let z: f64 = StandardNormal.sample(rng);
                        z as f32
                    }
                })
                .collect(),
            "rademacher" => (0..PIXELS)
                .map(|_| if rng.random_bool(0.5) { 1.0 } else { 0.0 })
                .collect(),
            "uniform" => (0..PIXELS).map(|_| rng.random::<f32>()).collect(),
            "blobs" => blobs(rng),
            "arith_mean" | "geom_mean" => {
                let (a, b) = (id(rng.random_range(0..m)), id(rng.random_range(0..m)));
                mean_of_pair(&a, &b, name == "geom_mean")
            }
            "jigsaw" => jigsaw(&id(rng.random_range(0..m)), rng),
            "speckle" => {
                let p = id(rng.random_range(0..m));
                speckle(&p, 0.5, rng)
            }
            "pixelate" => {
                let i = rng.random_range(0..m);
                let small = resize(id_val.slice(s![i, .., .., ..]), 7, 7, Filter::Area);
                (0..PIXELS)
                    .map(|p| small[[p / SIDE / 4, p % SIDE / 4, 0]] as f32 / 255.0)
                    .collect()
            }
            "inverted" => invert_channels(&id(rng.random_range(0..m)), 1, 0),
            _ => return None,
        };
        for (d, v) in out.slice_mut(s![k, .., .., 0]).iter_mut().zip(img) {
            *d = unit_to_u8(v);
        }
    }
    Some(out)
}

fn blobs(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let raw: Vec<f32> = (0..PIXELS)
        .map(|_| if rng.random_bool(0.7) { 1.0 } else { 0.0 })
        .collect();
    let blurred = gaussian_blur(&raw, 1.0);
    blurred
        .into_iter()
        .map(|v| if v < 0.75 { 0.0 } else { v })
        .collect()
}

/// Separable Gaussian blur (truncated at 4 sigma, borders reflected as scipy's `gaussian_filter`).
fn gaussian_blur(img: &[f32], sigma: f32) -> Vec<f32> {
    let r = (4.0 * sigma).round() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let n = SIDE as isize;
    // scipy's default "reflect": d c b a | a b c d | d c b a
    let idx = |i: isize| -> usize {
        let mut i = i;
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return i as usize;
            }
        }
    };
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut dst = vec![0f32; PIXELS];
        for y in 0..SIDE {
            for x in 0..SIDE {
                let mut acc = 0.0;
                for (j, &w) in k.iter().enumerate() {
                    let o = j as isize - r;
                    let (sy, sx) = if horizontal {
                        (y, idx(x as isize + o))
                    } else {
                        (idx(y as isize + o), x)
                    };
                    acc += w * src[sy * SIDE + sx];
                }
                dst[y * SIDE + x] = acc;
            }
        }
        dst
    };
    pass(&pass(img, true), false)
}

fn jigsaw(img: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    const GRID: usize = 4;
    const TILE: usize = SIDE / GRID;
    let mut order: Vec<usize> = (0..GRID * GRID).collect();
    order.shuffle(rng);
    let mut out = vec![0f32; PIXELS];
    for (dst_tile, &src_tile) in order.iter().enumerate() {
        let (dy, dx) = (dst_tile / GRID * TILE, dst_tile % GRID * TILE);
        let (sy, sx) = (src_tile / GRID * TILE, src_tile % GRID * TILE);
        for y in 0..TILE {
            for x in 0..TILE {
                out[(dy + y) * SIDE + dx + x] = img[(sy + y) * SIDE + sx + x];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id_images() -> Array4<u8> {
        Array4::from_shape_fn((5, SIDE, SIDE, 1), |(i, y, x, _)| {
            ((i * 40 + y * 3 + x) % 256) as u8
        })
    }

    #[test]
    fn every_set_has_the_right_shape_and_is_seeded() {
        let id = id_images();
        for name in VALIDATION_SETS {
            let a = build(name, 6, id.view(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            let b = build(name, 6, id.view(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
            assert_eq!(a.shape(), &[6, SIDE, SIDE, 1]);
            assert_eq!(a, b, "{name}");
        }
        assert!(build("nope", 1, id.view(), &mut ChaCha8Rng::seed_from_u64(1)).is_none());
    }

    #[test]
    fn transforms_of_id_images_are_exact() {
        let id = id_images();
        let inv = build("inverted", 20, id.view(), &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        for k in 0..20 {
            let img = inv.slice(s![k, .., .., 0]);
            // Some ID image i satisfies 255 - id[i] == img.
            assert!((0..5).any(|i| id
                .slice(s![i, .., .., 0])
                .iter()
                .zip(img.iter())
                .all(|(&a, &b)| 255 - a == b)));
        }
        let rad = build(
            "rademacher",
            3,
            id.view(),
            &mut ChaCha8Rng::seed_from_u64(2),
        )
        .unwrap();
        assert!(rad.iter().all(|&v| v == 0 || v == 255));
        let jig = build("jigsaw", 10, id.view(), &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        for k in 0..10 {
            let mut a: Vec<u8> = jig.slice(s![k, .., .., 0]).iter().copied().collect();
            a.sort();
            // A permutation of tiles keeps the multiset of pixels of one ID image.
            assert!((0..5).any(|i| {
                let mut b: Vec<u8> = id.slice(s![i, .., .., 0]).iter().copied().collect();
                b.sort();
                a == b
            }));
        }
        let pix = build("pixelate", 4, id.view(), &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        for k in 0..4 {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    assert_eq!(pix[[k, y, x, 0]], pix[[k, y / 4 * 4, x / 4 * 4, 0]]);
                }
            }
        }
    }

    #[test]
    fn gaussian_blur_preserves_a_constant_and_its_mass() {
        let flat = vec![0.5f32; PIXELS];
        assert!(gaussian_blur(&flat, 1.0)
            .iter()
            .all(|v| (v - 0.5).abs() < 1e-5));
        let mut dot = vec![0f32; PIXELS];
        dot[14 * SIDE + 14] = 1.0;
        let b = gaussian_blur(&dot, 1.0);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        assert!(
            (b[14 * SIDE + 14] - 0.15915).abs() < 1e-3,
            "{}",
            b[14 * SIDE + 14]
        ); // 1 / (2 pi)
    }
}
