//! The Fashion-MNIST OOD benchmark: the energy paper's protocol at a scale two CPU cores can run,
//! on real data only, built offline from local sources (see `docs/datasets.md`).
//!
//! # Output (the contract other crates read)
//! A folder (by default `<cache>/fmnist-ood/`) of `.npy` files, images `N x 28 x 28 x 1` `u8`
//! (white-on-black like MNIST for the digit/letter/character sets), labels `i64`:
//! - `train_x.npy`, `train_y.npy` (55,000), `val_x.npy`, `val_y.npy` (5,000): a seeded split of
//!   Fashion-MNIST's 60,000 training images; `train_idx.npy`, `val_idx.npy` (`i64`) are their
//!   indices in the original training file;
//! - `test_x.npy`, `test_y.npy`: Fashion-MNIST's 10,000 test images;
//! - `ood_test/{mnist,notmnist,omniglot,textures,photo_crop,photo_resize}.npy`;
//! - `ood_val/{gaussian,...,inverted}.npy` (see [`validation`]);
//! - `aux_outliers.npy`: multi-scale crops of OpenArena textures and MATE photos;
//! - `manifest.json`: seed, configuration, SHA-256/shape of every array, per-set provenance and
//!   every source file read with its SHA-256.
//!
//! The folder is built in a temporary sibling and renamed into place only when complete, so a
//! failed build never leaves a half-written benchmark (nor destroys a previous one). The same
//! seed and sources give the same bytes: every random choice comes from a ChaCha8 stream derived
//! from `(seed, set name)` and parallel work is merged in a fixed order.

mod build;
pub mod crops;
pub mod sources;
pub mod validation;

pub use build::build;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array4;
use ndarray_npy::WriteNpyExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::{Error, Result};
use crops::Scales;

/// Side of every image of the benchmark.
pub const SIDE: usize = 28;
/// Folder name of the benchmark inside the cache.
pub const DIR_NAME: &str = "fmnist-ood";
/// Names of the OOD test sets (`ood_test/<name>.npy`), in order.
pub const OOD_TEST_SETS: &[&str] = &[
    "mnist",
    "notmnist",
    "omniglot",
    "textures",
    "photo_crop",
    "photo_resize",
];
pub use validation::VALIDATION_SETS;
/// Version of the output layout, recorded in the manifest.
pub const FORMAT: &str = "energy-ood/fmnist-ood/1";

/// Sizes and seed of a build. `Default` is the benchmark as documented; tests shrink it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct BuildConfig {
    pub seed: u64,
    /// Images of Fashion-MNIST's training set held out for validation.
    pub val_size: usize,
    /// Textures test set: crops of GIMP patterns (tileable, so windows may wrap).
    pub textures_gimp: usize,
    /// Textures test set: crops of scikit-image's brick, grass and gravel.
    pub textures_skimage: usize,
    pub photo_crop: usize,
    pub photo_resize: usize,
    /// Images per validation OOD set.
    pub validation_ood: usize,
    /// Auxiliary outliers from the OpenArena textures.
    pub aux_openarena: usize,
    /// Auxiliary outliers from the MATE nature photos.
    pub aux_mate: usize,
    /// Crops with a pixel standard deviation (0-255 scale) below this are dropped as near-constant.
    pub min_crop_std: f32,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            seed: 0,
            val_size: 5_000,
            textures_gimp: 4_000,
            textures_skimage: 1_000,
            photo_crop: 5_000,
            photo_resize: 5_000,
            validation_ood: 2_000,
            aux_openarena: 40_000,
            aux_mate: 20_000,
            min_crop_std: 10.0,
        }
    }
}

/// Window sides of the Textures crops: 1x to 4x the output side.
pub const TEXTURE_SCALES: &[usize] = &[28, 42, 56, 84, 112];
/// Photo-Crop takes native-resolution 28x28 windows.
pub const PHOTO_CROP_SCALES: &[usize] = &[28];
/// Photo-Resize windows (log-uniform side, shrunk to 28x28).
pub const PHOTO_RESIZE_SCALES: Scales = Scales::LogUniform { min: 56, max: 512 };
/// Auxiliary outlier windows (log-uniform side, shrunk to 28x28).
pub const AUX_SCALES: Scales = Scales::LogUniform { min: 28, max: 512 };

/// Registry entries each part of the benchmark reads.
pub const PARTS: &[(&str, &[&str])] = &[
    ("in-distribution", &["fmnist"]),
    ("ood_test/mnist", &["mnist-test"]),
    ("ood_test/notmnist", &["notmnist-test"]),
    ("ood_test/omniglot", &["omniglot-small"]),
    ("ood_test/textures", &["gimp-patterns", "skimage-data"]),
    ("ood_test/photo_crop", &["skimage-data", "sklearn-images"]),
    ("ood_test/photo_resize", &["skimage-data", "sklearn-images"]),
    ("aux_outliers", &["openarena-textures", "mate-backgrounds"]),
];

/// One built array, as recorded in the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ArrayEntry {
    pub shape: Vec<usize>,
    pub dtype: String,
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub seed: u64,
    pub config: BuildConfig,
    /// Relative path -> shape, dtype, SHA-256 of the `.npy` file.
    pub arrays: BTreeMap<String, ArrayEntry>,
    /// Per-set description: what it is made of and how many images.
    pub sets: BTreeMap<String, serde_json::Value>,
    /// Parts not built because a source is missing (only with `allow_missing`).
    pub missing: Vec<String>,
    /// Every source file read.
    pub sources: Vec<serde_json::Value>,
}

/// The ChaCha8 stream of one part of the build.
fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// Writes arrays into the temporary build folder and records them.
struct Writer {
    dir: PathBuf,
    arrays: BTreeMap<String, ArrayEntry>,
}

impl Writer {
    fn put<A, D>(&mut self, rel: &str, arr: &ndarray::Array<A, D>, dtype: &str) -> Result<()>
    where
        A: ndarray_npy::WritableElement,
        D: ndarray::Dimension,
    {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        ood_core::io::write_atomic(&path, |w| {
            arr.write_npy(w).map_err(|e| Error::Encode {
                path: path.clone(),
                format: ".npy",
                source: Box::new(e),
            })
        })?;
        self.arrays.insert(
            rel.to_string(),
            ArrayEntry {
                shape: arr.shape().to_vec(),
                dtype: dtype.to_string(),
                sha256: crate::download::sha256_file(&path)?,
            },
        );
        Ok(())
    }
}

/// Prints build steps (a progress bar on a terminal).
struct Steps(Option<indicatif::ProgressBar>);

impl Steps {
    fn new(progress: bool, total: u64) -> Self {
        Steps(progress.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("[{pos}/{len}] {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }))
    }
    fn step(&self, msg: &str) {
        if let Some(b) = &self.0 {
            b.set_message(msg.to_string());
            b.inc(1);
        }
    }
    fn done(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Reads `manifest.json` of a built benchmark.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(&path, 0, format!("bad manifest: {e}")))
}

/// Re-hashes every array of a built benchmark against its manifest; returns the arrays checked.
pub fn verify_built(dir: &Path) -> Result<Vec<String>> {
    let m = read_manifest(dir)?;
    for (rel, entry) in &m.arrays {
        let path = dir.join(rel);
        let actual = crate::download::sha256_file(&path)?;
        if actual != entry.sha256 {
            return Err(Error::Checksum {
                path,
                expected: entry.sha256.clone(),
                actual,
            });
        }
    }
    Ok(m.arrays.keys().cloned().collect())
}

/// Reads one built `u8` image array (`N x 28 x 28 x 1`), e.g. `ood_test/mnist.npy`.
pub fn read_images(path: &Path) -> Result<Array4<u8>> {
    use ndarray_npy::ReadNpyExt;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Array4::<u8>::read_npy(std::io::BufReader::new(f))
        .map_err(|e| Error::format(path, 0, format!("not a 4-d u8 .npy: {e}")))
}
