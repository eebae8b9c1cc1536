//! The data a benchmark run reads: a folder in the `fmnist-ood` layout (see
//! [`BenchData::from_layout`]), seeded subsets written as small `.npy` files for the steps that
//! do not need whole sets, and an in-memory subset view for training loaders.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ood_data::batch::ImageSource;
use ood_data::formats::npy_images::NpyImages;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::{create_dir, BenchError, Result};
use ood_core::io::IoError;

/// The six OOD test sets of the Fashion-MNIST benchmark, in table order.
pub const FMNIST_OOD_TEST: &[&str] = ood_data::fmnist_ood::OOD_TEST_SETS;

/// Paths of one benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchData {
    pub name: String,
    pub train_x: PathBuf,
    pub train_y: PathBuf,
    pub test_x: PathBuf,
    pub test_y: PathBuf,
    /// In-distribution validation images (hyper-parameter selection, calibration).
    pub val_x: PathBuf,
    /// Labels of `val_x` when the folder has them (`val_y.npy`): the margin search's accuracy floor.
    pub val_y: Option<PathBuf>,
    /// OOD test sets, in table order.
    pub ood_test: Vec<(String, PathBuf)>,
    /// Validation OOD sets (hyper-parameters are chosen on these only).
    pub ood_val: Vec<(String, PathBuf)>,
    /// Auxiliary outliers for fine-tuning (unlabelled).
    pub outliers: PathBuf,
}

impl BenchData {
    /// A folder in the `fmnist-ood` layout: `train_x/train_y/test_x/test_y/val_x.npy`,
    /// `ood_test/<set>.npy`, `ood_val/<set>.npy`, `aux_outliers.npy`. `test_sets` fixes the order
    /// of the OOD test sets (every one must exist); `None` takes every `ood_test/*.npy` by name.
    pub fn from_layout(name: &str, dir: &Path, test_sets: Option<&[&str]>) -> Result<Self> {
        let need = |p: PathBuf| -> Result<PathBuf> {
            if p.is_file() {
                Ok(p)
            } else {
                Err(BenchError::Missing {
                    path: p,
                    benchmark: name.into(),
                    dir: dir.to_path_buf(),
                })
            }
        };
        let ood_test = match test_sets {
            Some(names) => names
                .iter()
                .map(|n| {
                    Ok((
                        n.to_string(),
                        need(dir.join("ood_test").join(format!("{n}.npy")))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
            None => list_npy(&dir.join("ood_test"))?,
        };
        let ood_val = list_npy(&dir.join("ood_val"))?;
        if ood_test.is_empty() || ood_val.is_empty() {
            return Err(BenchError::NoOodSets {
                dir: dir.to_path_buf(),
            });
        }
        Ok(Self {
            name: name.to_string(),
            train_x: need(dir.join("train_x.npy"))?,
            train_y: need(dir.join("train_y.npy"))?,
            test_x: need(dir.join("test_x.npy"))?,
            test_y: need(dir.join("test_y.npy"))?,
            val_x: need(dir.join("val_x.npy"))?,
            val_y: Some(dir.join("val_y.npy")).filter(|p| p.is_file()),
            ood_test,
            ood_val,
            outliers: need(dir.join("aux_outliers.npy"))?,
        })
    }
}

/// `(stem, path)` of every `.npy` in `dir`, sorted by name.
fn list_npy(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = std::fs::read_dir(dir).map_err(|e| IoError::new(dir, e))?;
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "npy"))
        .filter_map(|p| Some((p.file_stem()?.to_string_lossy().into_owned(), p)))
        .collect();
    out.sort();
    Ok(out)
}

/// `k` distinct indices out of `n` (all of them when `k >= n`), sorted, from a seeded stream.
pub fn choose(n: usize, k: usize, seed: u64) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = rand::seq::index::sample(&mut rng, n, k).into_vec();
    v.sort_unstable();
    v
}

/// Writes rows `rows` of the `uint8` image array `src` to `dst` (a `.npy`, atomically); with
/// `rows == None` or all rows, returns `src` itself without copying.
pub fn subset_file(src: &Path, rows: Option<&[usize]>, dst: &Path) -> Result<PathBuf> {
    let images = NpyImages::open(src)?;
    let rows = match rows {
        Some(r) if r.len() < images.len() => r,
        _ => return Ok(src.to_path_buf()),
    };
    let (h, w, c) = images.image_shape();
    let mut bytes =
        ood_core::io::npy::header_bytes(ood_core::io::npy::Dtype::U8, &[rows.len(), h, w, c]);
    for &i in rows {
        if i >= images.len() {
            return Err(BenchError::RowOutOfRange {
                path: src.to_path_buf(),
                row: i,
                len: images.len(),
            });
        }
        bytes.extend(images.image(i)?.iter());
    }
    if let Some(d) = dst.parent() {
        create_dir(d)?;
    }
    ood_core::io::write_atomic::<BenchError>(dst, |f| {
        use std::io::Write;
        f.write_all(&bytes).map_err(|e| IoError::new(dst, e).into())
    })?;
    Ok(dst.to_path_buf())
}

/// A view of some rows of another image source (training on part of a set).
pub struct Subset {
    pub source: Arc<dyn ImageSource>,
    pub rows: Vec<usize>,
}

impl ImageSource for Subset {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        self.source.image_shape()
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> ood_data::Result<()> {
        self.source.read_image(self.rows[index], out)
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.source.label(self.rows[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_is_seeded_sorted_and_distinct() {
        let a = choose(100, 10, 5);
        assert_eq!(a, choose(100, 10, 5));
        assert_ne!(a, choose(100, 10, 6));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.len() == 10 && a[9] < 100);
        assert_eq!(choose(3, 10, 1), vec![0, 1, 2]);
    }

    #[test]
    fn subset_files_hold_the_chosen_rows() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("x.npy");
        let mut bytes =
            ood_core::io::npy::header_bytes(ood_core::io::npy::Dtype::U8, &[5, 2, 2, 1]);
        bytes.extend((0..20u8).collect::<Vec<_>>());
        std::fs::write(&src, bytes).unwrap();
        let dst = subset_file(&src, Some(&[1, 4]), &dir.path().join("sub/y.npy")).unwrap();
        let y = NpyImages::open(&dst).unwrap();
        assert_eq!((y.len(), y.image_shape()), (2, (2, 2, 1)));
        assert_eq!(
            y.image(0).unwrap().iter().copied().collect::<Vec<u8>>(),
            vec![4, 5, 6, 7]
        );
        assert_eq!(
            y.image(1).unwrap().iter().copied().collect::<Vec<u8>>(),
            vec![16, 17, 18, 19]
        );
        // all rows: no copy
        assert_eq!(
            subset_file(&src, Some(&[0, 1, 2, 3, 4]), &dir.path().join("z.npy")).unwrap(),
            src
        );
        assert!(subset_file(&src, Some(&[7]), &dir.path().join("w.npy")).is_err());
    }
}
