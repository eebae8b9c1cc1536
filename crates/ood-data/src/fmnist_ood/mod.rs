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
//! - `manifest.json`: seed, configuration, SHA-256/shape of every array, per-set provenance
//!   (with each OOD test set's [`SetKind`]), the registry entries and Debian packages of every
//!   part by role ([`PARTS`]) and every source file read with its SHA-256.
//!
//! Test, auxiliary and in-distribution/validation sources are disjoint: no registry entry,
//! package, source file (SHA-256) or photo (perceptual hash, [`dedupe`]) is in two roles; the
//! build refuses sources that break this and [`check_disjoint`] checks a built manifest.
//!
//! The folder is built in a temporary sibling and renamed into place only when complete, so a
//! failed build never leaves a half-written benchmark (nor destroys a previous one). The same
//! seed and sources give the same bytes: every random choice comes from a ChaCha8 stream derived
//! from `(seed, set name)` and parallel work is merged in a fixed order.

mod build;
pub mod crops;
pub mod dedupe;
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

/// Whether an OOD test set is of the same kind as the auxiliary outliers (textures and
/// photographs: *near*) or not (strokes on black: digits, letters, handwritten characters:
/// *far*). The rule, as in `docs/datasets.md`: a set is near when its images are crops of
/// textures or photographs, the raw material of the auxiliary outliers; far otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    Near,
    Far,
}

impl SetKind {
    pub fn label(self) -> &'static str {
        match self {
            SetKind::Near => "near",
            SetKind::Far => "far",
        }
    }
}

/// The kind of each OOD test set of [`OOD_TEST_SETS`].
pub const OOD_TEST_KINDS: &[(&str, SetKind)] = &[
    ("mnist", SetKind::Far),
    ("notmnist", SetKind::Far),
    ("omniglot", SetKind::Far),
    ("textures", SetKind::Near),
    ("photo_crop", SetKind::Near),
    ("photo_resize", SetKind::Near),
];

/// The kind of an OOD test set of this benchmark, by name.
pub fn set_kind(set: &str) -> Option<SetKind> {
    OOD_TEST_KINDS.iter().find(|(n, _)| *n == set).map(|p| p.1)
}
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
    /// The build fails when the photo test sets would draw from fewer distinct photos.
    #[serde(default = "default_min_photos")]
    pub min_distinct_photos: usize,
}

/// Distinct source photos the Photo-* test sets need (issue 12: crops of 11 photos flattered).
pub const MIN_DISTINCT_PHOTOS: usize = 200;

fn default_min_photos() -> usize {
    MIN_DISTINCT_PHOTOS
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
            min_distinct_photos: MIN_DISTINCT_PHOTOS,
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

/// What a part of the benchmark is for; sources of two roles must be disjoint. The validation
/// OOD sets are noise or transforms of the in-distribution validation split, so they share the
/// in-distribution role (Fashion-MNIST is their only source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartRole {
    InDistribution,
    Test,
    Auxiliary,
}

/// Registry entries each part of the benchmark reads, with the part's role.
pub const PARTS: &[(&str, PartRole, &[&str])] = &[
    ("in-distribution", PartRole::InDistribution, &["fmnist"]),
    ("ood_val", PartRole::InDistribution, &["fmnist"]),
    ("ood_test/mnist", PartRole::Test, &["mnist-test"]),
    ("ood_test/notmnist", PartRole::Test, &["notmnist-test"]),
    ("ood_test/omniglot", PartRole::Test, &["omniglot-small"]),
    (
        "ood_test/textures",
        PartRole::Test,
        &["gimp-patterns", "skimage-data"],
    ),
    ("ood_test/photo_crop", PartRole::Test, PHOTO_SOURCES),
    ("ood_test/photo_resize", PartRole::Test, PHOTO_SOURCES),
    (
        "aux_outliers",
        PartRole::Auxiliary,
        &["openarena-textures", "mate-backgrounds"],
    ),
];

/// Registry entries of the Photo-Crop / Photo-Resize test sets.
pub const PHOTO_SOURCES: &[&str] = &[
    "skimage-data",
    "sklearn-images",
    "gcompris-photos",
    "lomiri-photos",
    "plasma-photos",
];

/// One part as recorded in the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PartSources {
    pub role: PartRole,
    /// Registry entries.
    pub datasets: Vec<String>,
    /// Debian packages of those entries.
    pub packages: Vec<String>,
}

/// [`PARTS`] as recorded in the manifest (part -> role, entries, packages).
pub fn part_sources() -> BTreeMap<String, PartSources> {
    PARTS
        .iter()
        .map(|(part, role, names)| {
            let packages = names
                .iter()
                .filter_map(|n| {
                    crate::registry::get(n)
                        .ok()?
                        .debian
                        .map(|d| d.package.to_string())
                })
                .collect();
            (
                part.to_string(),
                PartSources {
                    role: *role,
                    datasets: names.iter().map(|n| n.to_string()).collect(),
                    packages,
                },
            )
        })
        .collect()
}

/// A source in two roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is a source of both {a:?} and {b:?} parts (test, auxiliary and in-distribution sources must be disjoint)")]
pub struct OverlapError {
    /// "registry entry", "Debian package" or "source file".
    pub what: &'static str,
    pub name: String,
    pub a: PartRole,
    pub b: PartRole,
}

/// Checks that no registry entry, Debian package or source file (by SHA-256) of a manifest
/// serves two roles. `parts` and `sources` are the manifest's.
pub fn check_disjoint(
    parts: &BTreeMap<String, PartSources>,
    sources: &[serde_json::Value],
) -> std::result::Result<(), OverlapError> {
    let mut seen: BTreeMap<(&'static str, String), PartRole> = BTreeMap::new();
    let mut role_of_dataset: BTreeMap<&str, PartRole> = BTreeMap::new();
    let mut note = |what: &'static str, name: &str, role: PartRole| match seen
        .insert((what, name.to_string()), role)
    {
        Some(prev) if prev != role => Err(OverlapError {
            what,
            name: name.to_string(),
            a: prev,
            b: role,
        }),
        _ => Ok(()),
    };
    for p in parts.values() {
        for d in &p.datasets {
            note("registry entry", d, p.role)?;
            role_of_dataset.insert(d.as_str(), p.role);
        }
        for k in &p.packages {
            note("Debian package", k, p.role)?;
        }
    }
    for s in sources {
        let (Some(ds), Some(sha)) = (s["dataset"].as_str(), s["sha256"].as_str()) else {
            continue;
        };
        if let Some(&role) = role_of_dataset.get(ds) {
            note("source file", sha, role)?;
        }
    }
    Ok(())
}

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
    /// Sources of each part, by role (empty in manifests written before it was recorded).
    #[serde(default)]
    pub parts: BTreeMap<String, PartSources>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_source_lists_keep_test_auxiliary_and_validation_apart() {
        let parts = part_sources();
        check_disjoint(&parts, &[]).unwrap();
        let of = |role| -> Vec<&String> {
            parts
                .values()
                .filter(|p| p.role == role)
                .flat_map(|p| p.datasets.iter().chain(&p.packages))
                .collect()
        };
        let (test, aux, id) = (
            of(PartRole::Test),
            of(PartRole::Auxiliary),
            of(PartRole::InDistribution),
        );
        for t in &test {
            assert!(
                !aux.contains(t) && !id.contains(t),
                "{t} is a test source and another role's"
            );
        }
        assert!(aux.iter().all(|a| !id.contains(a)));
        // The photo sets draw from the photo collections and never from the MATE backgrounds.
        for set in ["ood_test/photo_crop", "ood_test/photo_resize"] {
            let p = &parts[set];
            assert_eq!(p.datasets, PHOTO_SOURCES);
            assert!(
                p.packages.contains(&"gcompris-qt-data".to_string()),
                "{p:?}"
            );
            assert!(!p.packages.contains(&"mate-backgrounds".to_string()));
        }
        assert_eq!(
            parts["aux_outliers"].packages,
            ["openarena-081-textures", "mate-backgrounds"]
        );
        // Every source is a registry entry with a Debian package or publisher files.
        for p in parts.values() {
            for d in &p.datasets {
                crate::registry::get(d).unwrap();
            }
        }
    }

    #[test]
    fn an_entry_package_or_file_in_two_roles_is_refused() {
        let mut parts = part_sources();
        check_disjoint(&parts, &[]).unwrap();
        let mut p = parts["aux_outliers"].clone();
        p.datasets.push("lomiri-photos".into());
        parts.insert("aux_outliers".into(), p);
        let e = check_disjoint(&parts, &[]).unwrap_err();
        assert_eq!(
            (e.what, e.name.as_str()),
            ("registry entry", "lomiri-photos")
        );

        let parts = part_sources();
        let file = |ds: &str| serde_json::json!({"dataset": ds, "sha256": "ab".repeat(32)});
        check_disjoint(&parts, &[file("gcompris-photos"), file("lomiri-photos")]).unwrap();
        let e = check_disjoint(&parts, &[file("gcompris-photos"), file("mate-backgrounds")])
            .unwrap_err();
        assert_eq!(e.what, "source file");
        assert_eq!((e.a, e.b), (PartRole::Test, PartRole::Auxiliary));
    }

    #[test]
    fn every_test_set_is_near_or_far() {
        let kinds: Vec<&str> = OOD_TEST_KINDS.iter().map(|k| k.0).collect();
        assert_eq!(kinds, OOD_TEST_SETS);
        assert_eq!(set_kind("mnist"), Some(SetKind::Far));
        assert_eq!(set_kind("photo_crop"), Some(SetKind::Near));
        assert_eq!(set_kind("svhn"), None);
    }
}
