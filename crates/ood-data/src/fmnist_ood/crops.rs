//! Seeded multi-scale square crops of gray source images, shrunk to 28x28 with area averaging.
//!
//! Crop parameters are drawn sequentially from one ChaCha8 stream and the crops computed in
//! parallel, then accepted in draw order, so the result is the same for any number of threads.
//! Crops whose standard deviation is below `min_std` (near-constant: sky, black space, flat
//! walls) are dropped and redrawn.

use ndarray::{s, Array3, Array4, ArrayView3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::sources::NamedImage;
use super::SIDE;
use crate::transforms::{resize, Filter};

/// Window sides (in source pixels) a crop is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Scales {
    /// One of these sides, uniformly among those that fit.
    Fixed(&'static [usize]),
    /// Log-uniform in `[min, max]` (capped by the source's shorter side).
    LogUniform { min: usize, max: usize },
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CropSpec {
    pub scales: Scales,
    /// The sources tile seamlessly (GIMP patterns): windows may wrap around and exceed the image.
    pub tileable: bool,
    /// Crops with a pixel standard deviation (0-255 scale) below this are dropped.
    pub min_std: f32,
}

/// What happened while sampling, for the manifest.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CropStats {
    pub sources_used: usize,
    /// Sources too small for the smallest window.
    pub sources_too_small: Vec<String>,
    pub drawn: usize,
    pub rejected_near_constant: usize,
    /// Crops kept from each source, by name.
    pub per_source: Vec<(String, usize)>,
}

/// Draws `total` crops spread evenly over `sources` (a source that keeps producing near-constant
/// crops gives its share to the others). Output `total x 28 x 28 x 1`, grouped by source in
/// source order. Fewer than `total` only if every source is exhausted.
pub fn sample_crops(
    sources: &[NamedImage],
    total: usize,
    spec: &CropSpec,
    rng: &mut ChaCha8Rng,
) -> (Array4<u8>, CropStats) {
    let min_scale = match spec.scales {
        Scales::Fixed(v) => v.iter().copied().min().unwrap_or(SIDE),
        Scales::LogUniform { min, .. } => min,
    };
    let mut stats = CropStats::default();
    let eligible: Vec<&NamedImage> = sources
        .iter()
        .filter(|s| {
            let (h, w, _) = s.pixels.dim();
            let ok = spec.tileable || h.min(w) >= min_scale;
            if !ok {
                stats.sources_too_small.push(s.name.clone());
            }
            ok && h > 0 && w > 0
        })
        .collect();
    stats.sources_used = eligible.len();
    let mut kept: Vec<Vec<Array3<u8>>> = vec![Vec::new(); eligible.len()];
    let mut exhausted = vec![false; eligible.len()];
    // Attempts allowed per crop wanted from a source before it counts as exhausted.
    const ATTEMPTS_PER_CROP: usize = 20;
    loop {
        let have: usize = kept.iter().map(Vec::len).sum();
        let live: Vec<usize> = (0..eligible.len()).filter(|&i| !exhausted[i]).collect();
        if have >= total || live.is_empty() {
            break;
        }
        let remaining = total - have;
        for (rank, &i) in live.iter().enumerate() {
            let quota = remaining / live.len() + usize::from(rank < remaining % live.len());
            if quota == 0 {
                continue;
            }
            let target = kept[i].len() + quota;
            let mut attempts = 0;
            while kept[i].len() < target {
                if attempts >= quota * ATTEMPTS_PER_CROP {
                    exhausted[i] = true;
                    break;
                }
                let want = target - kept[i].len();
                let batch = (want + want / 2 + 4).min(quota * ATTEMPTS_PER_CROP - attempts);
                let params: Vec<Window> = (0..batch)
                    .map(|_| draw_window(&eligible[i].pixels, spec, rng))
                    .collect();
                attempts += batch;
                stats.drawn += batch;
                let crops: Vec<(Array3<u8>, f32)> = params
                    .par_iter()
                    .map(|w| {
                        let c = extract(eligible[i].pixels.view(), w, spec.tileable);
                        let sd = std_dev(c.as_slice().expect("standard layout"));
                        (c, sd)
                    })
                    .collect();
                for (c, sd) in crops {
                    if kept[i].len() >= target {
                        break;
                    }
                    if sd < spec.min_std {
                        stats.rejected_near_constant += 1;
                    } else {
                        kept[i].push(c);
                    }
                }
            }
        }
    }
    let n: usize = kept.iter().map(Vec::len).sum::<usize>().min(total);
    let mut out = Array4::<u8>::zeros((n, SIDE, SIDE, 1));
    let mut k = 0;
    for (i, crops) in kept.into_iter().enumerate() {
        stats
            .per_source
            .push((eligible[i].name.clone(), crops.len()));
        for c in crops {
            if k < n {
                out.slice_mut(s![k, .., .., ..]).assign(&c);
                k += 1;
            }
        }
    }
    (out, stats)
}

#[derive(Debug, Clone, Copy)]
struct Window {
    top: usize,
    left: usize,
    side: usize,
}

fn draw_window(img: &Array3<u8>, spec: &CropSpec, rng: &mut ChaCha8Rng) -> Window {
    let (h, w, _) = img.dim();
    let short = h.min(w);
    let side = match spec.scales {
        Scales::Fixed(v) => {
            let fits: Vec<usize> = v
                .iter()
                .copied()
                .filter(|&s| spec.tileable || s <= short)
                .collect();
            fits[rng.random_range(0..fits.len())]
        }
        Scales::LogUniform { min, max } => {
            let hi = if spec.tileable { max } else { max.min(short) }.max(min);
            let (a, b) = ((min as f64).ln(), (hi as f64).ln());
            let v = if b > a {
                rng.random_range(a..=b).exp().round() as usize
            } else {
                min
            };
            v.clamp(min, hi)
        }
    };
    let (top, left) = if spec.tileable {
        (rng.random_range(0..h), rng.random_range(0..w))
    } else {
        (
            rng.random_range(0..=h - side),
            rng.random_range(0..=w - side),
        )
    };
    Window { top, left, side }
}

fn extract(img: ArrayView3<u8>, w: &Window, wrap: bool) -> Array3<u8> {
    let (h, wd, c) = img.dim();
    let window = if wrap {
        Array3::from_shape_fn((w.side, w.side, c), |(y, x, ch)| {
            img[[(w.top + y) % h, (w.left + x) % wd, ch]]
        })
    } else {
        img.slice(s![w.top..w.top + w.side, w.left..w.left + w.side, ..])
            .to_owned()
    };
    let out = resize(window.view(), SIDE, SIDE, Filter::Area);
    out.as_standard_layout().into_owned()
}

/// Population standard deviation of pixel values.
pub fn std_dev(px: &[u8]) -> f32 {
    if px.is_empty() {
        return 0.0;
    }
    let n = px.len() as f64;
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(h: usize, w: usize) -> NamedImage {
        NamedImage {
            name: format!("{h}x{w}"),
            pixels: Array3::from_shape_fn((h, w, 1), |(y, x, _)| ((y * 7 + x * 13) % 256) as u8),
        }
    }

    #[test]
    fn same_seed_same_crops_and_flat_sources_give_their_share_away() {
        let flat = NamedImage {
            name: "flat".into(),
            pixels: Array3::from_elem((64, 64, 1), 9u8),
        };
        let sources = vec![ramp(100, 80), flat, ramp(60, 200), ramp(10, 10)];
        let spec = CropSpec {
            scales: Scales::LogUniform { min: 28, max: 90 },
            tileable: false,
            min_std: 4.0,
        };
        let (a, sa) = sample_crops(&sources, 50, &spec, &mut ChaCha8Rng::seed_from_u64(3));
        let (b, _) = sample_crops(&sources, 50, &spec, &mut ChaCha8Rng::seed_from_u64(3));
        let (c, _) = sample_crops(&sources, 50, &spec, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.shape(), &[50, 28, 28, 1]);
        assert_eq!(sa.sources_too_small, vec!["10x10".to_string()]);
        let per: Vec<usize> = sa.per_source.iter().map(|p| p.1).collect();
        assert_eq!(per[1], 0, "a constant image yields no crop");
        assert_eq!(per.iter().sum::<usize>(), 50);
        assert!(sa.rejected_near_constant >= 20 * 17, "{sa:?}");
        for i in 0..50 {
            let img = a.slice(s![i, .., .., ..]).to_owned();
            assert!(std_dev(img.as_slice().unwrap()) >= 4.0);
        }
    }

    #[test]
    fn tileable_windows_wrap_around() {
        let src = ramp(8, 8);
        let w = Window {
            top: 6,
            left: 5,
            side: 28,
        };
        let out = extract(src.pixels.view(), &w, true);
        assert_eq!(out.dim(), (28, 28, 1));
        assert_eq!(out[[0, 0, 0]], src.pixels[[6, 5, 0]]);
        assert_eq!(out[[3, 4, 0]], src.pixels[[1, 1, 0]]);
    }
}
