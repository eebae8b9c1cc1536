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

pub mod crops;
pub mod sources;
pub mod validation;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use ndarray::{concatenate, s, Array1, Array3, Array4, Axis};
use ndarray_npy::WriteNpyExt;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::cache::Locations;
use crate::transforms::{resize, Filter};
use crate::{Error, Result};
use crops::{sample_crops, CropSpec, CropStats, Scales};
use sources::{NamedImage, Sources};

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
            arr.write_npy(w)
                .map_err(|e| Error::Other(format!("{}: writing .npy: {e}", path.display())))
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

/// Builds the benchmark into `out` (see the module documentation). Without `allow_missing`, any
/// missing source is an error listing every missing source and how to get it; with it, parts
/// whose sources are missing are skipped and listed in the manifest (Fashion-MNIST is required).
pub fn build(
    loc: &Locations,
    out: &Path,
    cfg: &BuildConfig,
    allow_missing: bool,
    progress: bool,
) -> Result<Manifest> {
    let mut src = Sources::new(loc);
    let mut missing_parts = Vec::new();
    let mut missing_lines = Vec::new();
    for (part, names) in PARTS {
        let lines = src.missing(names);
        if !lines.is_empty() {
            if *part == "in-distribution" || !allow_missing {
                missing_lines.extend(lines);
            }
            missing_parts.push(part.to_string());
        }
    }
    missing_lines.dedup();
    if !missing_lines.is_empty() {
        return Err(Error::Other(format!(
            "cannot build {DIR_NAME}: {} missing source(s):\n  {}",
            missing_lines.len(),
            missing_lines.join("\n  ")
        )));
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DIR_NAME.into());
    let tmp = parent.join(format!(".{name}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = build_into(&mut src, &tmp, cfg, &missing_parts, progress).and_then(|manifest| {
        replace_dir(&tmp, out)?;
        Ok(manifest)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn build_into(
    src: &mut Sources,
    dir: &Path,
    cfg: &BuildConfig,
    missing: &[String],
    progress: bool,
) -> Result<Manifest> {
    let wants = |part: &str| !missing.iter().any(|m| m == part);
    let mut w = Writer {
        dir: dir.to_path_buf(),
        arrays: BTreeMap::new(),
    };
    let mut sets: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let steps = Steps::new(progress, 5 + OOD_TEST_SETS.len() as u64);

    // In-distribution: seeded split of the 60,000 training images.
    steps.step("Fashion-MNIST");
    let (train_all, train_labels) = src.idx(
        "fmnist",
        "train-images-idx3-ubyte.gz",
        Some("train-labels-idx1-ubyte.gz"),
    )?;
    let (test_x, test_y) = src.idx(
        "fmnist",
        "t10k-images-idx3-ubyte.gz",
        Some("t10k-labels-idx1-ubyte.gz"),
    )?;
    let train_labels = train_labels.expect("labels requested");
    check_side(&train_all, "fmnist train")?;
    check_side(&test_x, "fmnist test")?;
    let n = train_all.shape()[0];
    if cfg.val_size >= n {
        return Err(Error::Other(format!(
            "val_size {} must be below the {n} training images",
            cfg.val_size
        )));
    }
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut stream(cfg.seed, "split"));
    let mut val_idx = perm[..cfg.val_size].to_vec();
    let mut train_idx = perm[cfg.val_size..].to_vec();
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    let val_x = train_all.select(Axis(0), &val_idx);
    let as_i64 = |v: &[usize]| Array1::from_iter(v.iter().map(|&i| i as i64));
    w.put("train_x.npy", &train_all.select(Axis(0), &train_idx), "u8")?;
    w.put(
        "train_y.npy",
        &train_labels.select(Axis(0), &train_idx),
        "i64",
    )?;
    w.put("train_idx.npy", &as_i64(&train_idx), "i64")?;
    w.put("val_x.npy", &val_x, "u8")?;
    w.put("val_y.npy", &train_labels.select(Axis(0), &val_idx), "i64")?;
    w.put("val_idx.npy", &as_i64(&val_idx), "i64")?;
    w.put("test_x.npy", &test_x, "u8")?;
    w.put("test_y.npy", &test_y.expect("labels requested"), "i64")?;
    sets.insert(
        "in-distribution".into(),
        serde_json::json!({
            "train": train_idx.len(), "val": val_idx.len(), "test": test_x.shape()[0],
            "split": "seeded permutation of the training set (stream 'split'); indices in train_idx.npy / val_idx.npy",
        }),
    );

    // OOD test sets.
    let mut test_images: HashSet<Vec<u8>> = HashSet::new();
    let mut remember = |a: &Array4<u8>| {
        for img in a.outer_iter() {
            test_images.insert(img.iter().copied().collect());
        }
    };
    for set in OOD_TEST_SETS {
        let part = format!("ood_test/{set}");
        steps.step(&part);
        if !wants(&part) {
            continue;
        }
        let (images, info) = match *set {
            "mnist" | "notmnist" => {
                let reg = if *set == "mnist" {
                    "mnist-test"
                } else {
                    "notmnist-test"
                };
                let (x, _) = src.idx(reg, "t10k-images-idx3-ubyte.gz", None)?;
                check_side(&x, reg)?;
                let info = serde_json::json!({"source": reg, "note": "all test images, as published (white on black)"});
                (x, info)
            }
            "omniglot" => {
                let imgs = src.omniglot()?;
                let (x, inverted) = omniglot_to_28(&imgs);
                let info = serde_json::json!({
                    "source": "omniglot-small",
                    "note": "every image of both zips, polarity matched to white-on-black (inverted when the border is bright), area-resized 105 -> 28",
                    "inverted": inverted,
                });
                (x, info)
            }
            "textures" => {
                let gimp = src.gimp_patterns()?;
                let sk = src.images("skimage-data", sources::SKIMAGE_TEXTURES)?;
                let mut rng = stream(cfg.seed, &part);
                let tile = CropSpec {
                    scales: Scales::Fixed(TEXTURE_SCALES),
                    tileable: true,
                    min_std: cfg.min_crop_std,
                };
                let flat = CropSpec {
                    tileable: false,
                    ..tile
                };
                let (a, sa) = sample_crops(&gimp, cfg.textures_gimp, &tile, &mut rng);
                let (b, sb) = sample_crops(&sk, cfg.textures_skimage, &flat, &mut rng);
                let info = serde_json::json!({"sources": ["gimp-patterns", "skimage-data"], "scales": TEXTURE_SCALES,
                    "gimp": crop_info(&tile, &sa), "skimage": crop_info(&flat, &sb)});
                (concatenate![Axis(0), a, b], info)
            }
            "photo_crop" | "photo_resize" => {
                let photos = photos(src)?;
                let scales = if *set == "photo_crop" {
                    Scales::Fixed(PHOTO_CROP_SCALES)
                } else {
                    PHOTO_RESIZE_SCALES
                };
                let count = if *set == "photo_crop" {
                    cfg.photo_crop
                } else {
                    cfg.photo_resize
                };
                let spec = CropSpec {
                    scales,
                    tileable: false,
                    min_std: cfg.min_crop_std,
                };
                let (x, st) = sample_crops(&photos, count, &spec, &mut stream(cfg.seed, &part));
                (
                    x,
                    serde_json::json!({"sources": ["skimage-data", "sklearn-images"], "crops": crop_info(&spec, &st)}),
                )
            }
            _ => unreachable!("every OOD test set is handled"),
        };
        remember(&images);
        let mut info = info;
        info["count"] = images.shape()[0].into();
        w.put(&format!("{part}.npy"), &images, "u8")?;
        sets.insert(part, info);
    }

    // Validation OOD sets: noise, or transforms of the ID validation split.
    steps.step("ood_val");
    for name in VALIDATION_SETS {
        let part = format!("ood_val/{name}");
        let x = validation::build(
            name,
            cfg.validation_ood,
            val_x.view(),
            &mut stream(cfg.seed, &part),
        )
        .expect("every validation set name is known");
        w.put(&format!("{part}.npy"), &x, "u8")?;
        sets.insert(
            part,
            serde_json::json!({"count": x.shape()[0], "from": "noise or the ID validation split"}),
        );
    }

    // Auxiliary outliers, disjoint from every test set.
    steps.step("aux_outliers");
    if wants("aux_outliers") {
        let oa = src.openarena()?;
        let mate = src.image_dir("mate-backgrounds")?;
        let mut rng = stream(cfg.seed, "aux_outliers");
        let spec = CropSpec {
            scales: AUX_SCALES,
            tileable: false,
            min_std: cfg.min_crop_std,
        };
        let (a, sa) = sample_crops(&oa, cfg.aux_openarena, &spec, &mut rng);
        let (b, sb) = sample_crops(&mate, cfg.aux_mate, &spec, &mut rng);
        let all = concatenate![Axis(0), a, b];
        let keep: Vec<usize> = (0..all.shape()[0])
            .filter(|&i| {
                !test_images.contains(
                    &all.slice(s![i, .., .., ..])
                        .iter()
                        .copied()
                        .collect::<Vec<u8>>(),
                )
            })
            .collect();
        let dropped = all.shape()[0] - keep.len();
        let x = if dropped == 0 {
            all
        } else {
            all.select(Axis(0), &keep)
        };
        w.put("aux_outliers.npy", &x, "u8")?;
        sets.insert(
            "aux_outliers".into(),
            serde_json::json!({"count": x.shape()[0], "sources": ["openarena-textures", "mate-backgrounds"],
                "openarena": crop_info(&spec, &sa), "mate": crop_info(&spec, &sb),
                "dropped_identical_to_a_test_image": dropped}),
        );
    }

    steps.step("manifest");
    let manifest = Manifest {
        format: FORMAT.to_string(),
        seed: cfg.seed,
        config: cfg.clone(),
        arrays: w.arrays,
        sets,
        missing: missing.to_vec(),
        sources: src
            .used
            .iter()
            .map(|s| serde_json::to_value(s).expect("plain data"))
            .collect(),
    };
    let path = dir.join("manifest.json");
    ood_core::io::write_atomic(&path, |f| {
        serde_json::to_writer_pretty(&mut *f, &manifest)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        std::io::Write::write_all(f, b"\n").map_err(|e| Error::io(&path, e))
    })?;
    steps.done();
    Ok(manifest)
}

fn crop_info(spec: &CropSpec, st: &CropStats) -> serde_json::Value {
    serde_json::json!({"spec": spec, "stats": st})
}

fn check_side(x: &Array4<u8>, what: &str) -> Result<()> {
    let s = x.shape();
    if s[1] != SIDE || s[2] != SIDE || s[3] != 1 {
        return Err(Error::Other(format!(
            "{what}: expected 28x28 gray images, found {}x{}x{}",
            s[1], s[2], s[3]
        )));
    }
    Ok(())
}

fn photos(src: &mut Sources) -> Result<Vec<NamedImage>> {
    let mut p = src.images("skimage-data", sources::SKIMAGE_PHOTOS)?;
    p.extend(src.images("sklearn-images", sources::SKLEARN_PHOTOS)?);
    Ok(p)
}

/// Omniglot strokes are black on white; MNIST's are white on black. An image whose border is
/// bright (mean of the outermost pixels above 127) is inverted, then area-resized to 28x28.
fn omniglot_to_28(imgs: &[NamedImage]) -> (Array4<u8>, usize) {
    let mut out = Array4::<u8>::zeros((imgs.len(), SIDE, SIDE, 1));
    let mut inverted = 0;
    for (k, img) in imgs.iter().enumerate() {
        let mut px: Array3<u8> = img.pixels.clone();
        if border_mean(&px) > 127.0 {
            px.mapv_inplace(|v| 255 - v);
            inverted += 1;
        }
        out.slice_mut(s![k, .., .., ..])
            .assign(&resize(px.view(), SIDE, SIDE, Filter::Area));
    }
    (out, inverted)
}

fn border_mean(img: &Array3<u8>) -> f32 {
    let (h, w, _) = img.dim();
    let mut sum = 0f64;
    let mut n = 0usize;
    for y in 0..h {
        for x in 0..w {
            if y == 0 || x == 0 || y + 1 == h || x + 1 == w {
                sum += img[[y, x, 0]] as f64;
                n += 1;
            }
        }
    }
    (sum / n.max(1) as f64) as f32
}

/// Moves the finished `tmp` folder to `out`, replacing any previous build only once the new one
/// is complete.
fn replace_dir(tmp: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        let old = out.with_file_name(format!(
            ".{}.old-{}",
            out.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
    }
    Ok(())
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
