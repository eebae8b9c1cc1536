//! Montages: a PNG grid of sample images of a set, to check by eye what a dataset looks like
//! (polarity, crops, scale).

use std::path::Path;

use ndarray::{s, ArrayView4};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{Error, Result};

/// Layout of a montage.
#[derive(Debug, Clone, Copy)]
pub struct MontageSpec {
    /// Images per row.
    pub cols: usize,
    /// Maximum number of images (a seeded sample when the set is larger).
    pub max_images: usize,
    /// Each pixel becomes `scale x scale`.
    pub scale: usize,
    /// Gap between images, in output pixels (drawn mid-gray so black and white images both show).
    pub gap: usize,
    pub seed: u64,
}

impl Default for MontageSpec {
    fn default() -> Self {
        MontageSpec {
            cols: 16,
            max_images: 256,
            scale: 2,
            gap: 2,
            seed: 0,
        }
    }
}

/// The indices shown: all images when they fit, else a seeded sample in increasing order.
pub fn pick(n: usize, spec: &MontageSpec) -> Vec<usize> {
    if n <= spec.max_images {
        return (0..n).collect();
    }
    let mut idx = sample(
        &mut ChaCha8Rng::seed_from_u64(spec.seed),
        n,
        spec.max_images,
    )
    .into_vec();
    idx.sort_unstable();
    idx
}

/// Renders images (`N x H x W x C`, C = 1 or 3) into an RGB grid.
pub fn render(images: ArrayView4<u8>, spec: &MontageSpec) -> Result<image::RgbImage> {
    let (n, h, w, c) = images.dim();
    if n == 0 {
        return Err(Error::Invalid {
            what: "montage",
            reason: "nothing to show: the set is empty".into(),
        });
    }
    if c != 1 && c != 3 {
        return Err(Error::Invalid {
            what: "montage",
            reason: format!("cannot show images with {c} channels"),
        });
    }
    let idx = pick(n, spec);
    let cols = spec.cols.clamp(1, idx.len());
    let rows = idx.len().div_ceil(cols);
    let (cell_w, cell_h) = (w * spec.scale + spec.gap, h * spec.scale + spec.gap);
    let (out_w, out_h) = (cols * cell_w + spec.gap, rows * cell_h + spec.gap);
    let mut out =
        image::RgbImage::from_pixel(out_w as u32, out_h as u32, image::Rgb([128, 128, 128]));
    for (k, &i) in idx.iter().enumerate() {
        let img = images.slice(s![i, .., .., ..]);
        let (x0, y0) = (
            spec.gap + (k % cols) * cell_w,
            spec.gap + (k / cols) * cell_h,
        );
        for y in 0..h * spec.scale {
            for x in 0..w * spec.scale {
                let (sy, sx) = (y / spec.scale, x / spec.scale);
                let px = if c == 1 {
                    let v = img[[sy, sx, 0]];
                    [v, v, v]
                } else {
                    [img[[sy, sx, 0]], img[[sy, sx, 1]], img[[sy, sx, 2]]]
                };
                out.put_pixel((x0 + x) as u32, (y0 + y) as u32, image::Rgb(px));
            }
        }
    }
    Ok(out)
}

/// Renders a montage and writes it as PNG (atomically).
pub fn write_png(images: ArrayView4<u8>, spec: &MontageSpec, path: &Path) -> Result<()> {
    let img = render(images, spec)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    ood_core::io::write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(|e| Error::Encode {
                path: path.to_path_buf(),
                format: "PNG",
                source: Box::new(e),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn grid_places_each_image_in_its_cell() {
        let imgs = Array4::from_shape_fn((5, 2, 3, 1), |(i, _, _, _)| (i * 50) as u8);
        let spec = MontageSpec {
            cols: 2,
            max_images: 10,
            scale: 1,
            gap: 1,
            seed: 0,
        };
        let m = render(imgs.view(), &spec).unwrap();
        // 2 columns of (3 + 1) plus a leading gap; 3 rows of (2 + 1) plus a leading gap.
        assert_eq!((m.width(), m.height()), (9, 10));
        assert_eq!(m.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(m.get_pixel(5, 1).0, [50, 50, 50]);
        assert_eq!(m.get_pixel(1, 4).0, [100, 100, 100]);
        assert_eq!(m.get_pixel(1, 7).0, [200, 200, 200]);
        assert_eq!(m.get_pixel(0, 0).0, [128, 128, 128]);
    }

    #[test]
    fn large_sets_are_sampled_reproducibly() {
        let spec = MontageSpec {
            max_images: 10,
            ..Default::default()
        };
        let a = pick(1000, &spec);
        assert_eq!(a.len(), 10);
        assert_eq!(a, pick(1000, &spec));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }
}
