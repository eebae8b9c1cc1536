//! The registry of named datasets: where each comes from (publisher URLs with SHA-256, a Debian
//! package, the project's `../shared/data`), its license, size, classes and normalization.
//!
//! A file is *verified* when its SHA-256 is one of the recorded whole-file digests or, for a
//! `.gz` file, when the SHA-256 of its decompressed bytes is the recorded content digest. The
//! content digest matters because several copies of the MNIST-style files (Debian's, the ones in
//! `../shared/data`) were recompressed: their `.gz` bytes differ from the publisher's while the
//! data inside is identical. Content digests were computed here from those local copies; the
//! whole-file digests of publisher files are the ones published by widely used loaders
//! (torchvision, Keras, TFDS) and are recorded for a quick check before decompressing.
//!
//! Lookup order of a file: Debian package installed under `/`, Debian package unpacked into the
//! cache, `../shared/data`, then `<cache>/downloads/<dataset>/`. See `docs/datasets.md`.

use std::path::PathBuf;

use crate::cache::Locations;
use crate::download::{self, Digests};

pub use crate::download::Outcome;
pub use fetch::{fetch, fetch_debian};

mod catalog;
mod fetch;

use crate::{Error, Result};
use catalog::REGISTRY;

/// What a registry entry is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A training distribution (Fashion-MNIST, CIFAR).
    InDistribution,
    /// An OOD test set of the paper or of the Fashion-MNIST benchmark.
    OodTest,
    /// An auxiliary outlier set for energy fine-tuning / Outlier Exposure.
    Outliers,
    /// Raw material the Fashion-MNIST OOD benchmark builder crops and resizes.
    Source,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::InDistribution => "in-dist",
            Role::OodTest => "ood-test",
            Role::Outliers => "outliers",
            Role::Source => "source",
        })
    }
}

/// One file of a dataset as its publisher distributes it.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub name: &'static str,
    /// Download URLs, tried in order.
    pub urls: &'static [&'static str],
    /// Accepted SHA-256 digests of the whole file (publisher's copy first).
    pub sha256: &'static [&'static str],
    /// SHA-256 of the decompressed bytes of a `.gz` file.
    pub content_sha256: Option<&'static str>,
    /// Size in bytes of the publisher's file, when known.
    pub size: Option<u64>,
}

impl FileSpec {
    pub fn digests(&self) -> Digests<'static> {
        Digests {
            sha256: self.sha256,
            gunzip_sha256: self.content_sha256,
        }
    }
}

/// Files of a dataset shipped inside a Debian package.
#[derive(Debug, Clone, Copy)]
pub struct DebianSource {
    pub package: &'static str,
    /// Directory inside the package (relative to `/`).
    pub dir: &'static str,
    /// Files (relative to `dir`) that must exist for the source to count as present.
    pub required: &'static [&'static str],
}

/// The Debian package version a source is pinned to, with the SHA-256 of its `.deb` (what
/// `scripts/fetch-sources.sh` downloads and checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebianPin {
    pub package: &'static str,
    pub version: &'static str,
    pub deb_sha256: &'static str,
}

/// Every pinned Debian package.
pub fn debian_pins() -> &'static [DebianPin] {
    catalog::DEBIAN_PINS
}

/// The pin of a Debian package, if it is one of the registry's.
pub fn debian_pin(package: &str) -> Option<&'static DebianPin> {
    catalog::DEBIAN_PINS.iter().find(|p| p.package == package)
}

/// Fashion-MNIST training-set channel mean and standard deviation (pixels scaled to [0, 1]): the
/// one definition (ood-nn's input spec uses these).
pub const FMNIST_MEAN: f32 = 0.2860;
pub const FMNIST_STD: f32 = 0.3530;

/// Per-channel mean and standard deviation of pixels scaled to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: &'static [f32],
    pub std: &'static [f32],
}

/// A named dataset or source.
#[derive(Debug, Clone, Copy)]
pub struct Dataset {
    pub name: &'static str,
    pub title: &'static str,
    pub role: Role,
    pub license: &'static str,
    pub homepage: &'static str,
    pub files: &'static [FileSpec],
    pub debian: Option<DebianSource>,
    /// Sub-folder of `../shared/data` holding copies of `files`.
    pub shared_dir: Option<&'static str>,
    /// Number of images (of the files listed), when fixed.
    pub images: Option<u64>,
    /// `H x W x C` of the images as stored (0 = varies).
    pub shape: [usize; 3],
    pub classes: &'static [&'static str],
    pub normalization: Option<Normalization>,
    /// Total download size in bytes, when known.
    pub size: Option<u64>,
    pub note: &'static str,
}

/// Every registered dataset, in display order.
pub fn all() -> &'static [Dataset] {
    REGISTRY
}

/// The dataset called `name`.
pub fn get(name: &str) -> Result<&'static Dataset> {
    REGISTRY
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| Error::UnknownDataset {
            name: name.to_string(),
            known: REGISTRY
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Where a file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A Debian package installed system-wide.
    System,
    /// A Debian package unpacked into the cache.
    CacheDeb,
    /// `../shared/data`.
    Shared,
    /// `<cache>/downloads/<dataset>`.
    Downloads,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Place::System => "system package",
            Place::CacheDeb => "cached package",
            Place::Shared => "shared data",
            Place::Downloads => "download cache",
        })
    }
}

impl Dataset {
    /// Directories to look in for this dataset's files, in lookup order.
    pub fn search_dirs(&self, loc: &Locations) -> Vec<(PathBuf, Place)> {
        let mut dirs = Vec::new();
        if let Some(deb) = &self.debian {
            dirs.push((loc.system_root.join(deb.dir), Place::System));
            dirs.push((
                loc.cache.deb_package(deb.package).join(deb.dir),
                Place::CacheDeb,
            ));
        }
        if let (Some(shared), Some(sub)) = (&loc.shared_data, self.shared_dir) {
            dirs.push((shared.join(sub), Place::Shared));
        }
        if !self.files.is_empty() {
            dirs.push((loc.cache.downloads(self.name), Place::Downloads));
        }
        dirs
    }

    /// The directory holding this dataset: the first search directory in which every listed
    /// file (or, for a Debian source, every required file) exists.
    pub fn locate(&self, loc: &Locations) -> Option<(PathBuf, Place)> {
        let needed: Vec<&str> = if self.files.is_empty() {
            self.debian.map(|d| d.required.to_vec()).unwrap_or_default()
        } else {
            self.files.iter().map(|f| f.name).collect()
        };
        self.search_dirs(loc)
            .into_iter()
            .find(|(dir, _)| dir.is_dir() && needed.iter().all(|f| dir.join(f).is_file()))
    }

    /// Like [`Dataset::locate`], but a missing dataset is an error that says where it was looked
    /// for and how to get it.
    pub fn require(&self, loc: &Locations) -> Result<(PathBuf, Place)> {
        self.locate(loc).ok_or_else(|| Error::MissingSource {
            name: self.name.to_string(),
            tried: self.search_dirs(loc),
            how: self.how_to_get(),
        })
    }

    /// One line saying how to obtain this dataset.
    pub fn how_to_get(&self) -> String {
        match (&self.debian, self.files.is_empty()) {
            (Some(deb), true) => format!(
                "run scripts/fetch-sources.sh or `eood data fetch {}` (Debian package {}; needs apt-get and dpkg-deb)",
                self.name, deb.package
            ),
            (Some(deb), false) => format!(
                "run scripts/fetch-sources.sh (Debian package {}) or `eood data fetch {}` (publisher: {})",
                deb.package, self.name, self.homepage
            ),
            (None, _) => format!("run `eood data fetch {}` (publisher: {})", self.name, self.homepage),
        }
    }

    /// Checks every listed file of the dataset (where it is found) against its digests.
    /// Debian sources are checked for their required files (apt verifies the package itself).
    pub fn verify(&self, loc: &Locations) -> Result<Vec<FileCheck>> {
        let (dir, place) = self.require(loc)?;
        if self.files.is_empty() {
            return Ok(self
                .debian
                .iter()
                .flat_map(|d| d.required.iter())
                .map(|f| FileCheck {
                    path: dir.join(f),
                    place,
                    outcome: Outcome::Present,
                })
                .collect());
        }
        self.files
            .iter()
            .map(|f| {
                let path = dir.join(f.name);
                let outcome = download::verify_file(&path, &f.digests())?;
                Ok(FileCheck {
                    path,
                    place,
                    outcome,
                })
            })
            .collect()
    }
}

/// The result of checking one file.
#[derive(Debug, Clone)]
pub struct FileCheck {
    pub path: PathBuf,
    pub place: Place,
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_digests_well_formed() {
        let mut names: Vec<_> = all().iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
        for d in all() {
            for f in d.files {
                for s in f.sha256.iter().chain(f.content_sha256.iter()) {
                    assert_eq!(s.len(), 64, "{}/{}", d.name, f.name);
                    assert!(s
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                }
                assert!(!f.urls.is_empty(), "{}/{} has no URL", d.name, f.name);
            }
            assert!(
                !d.files.is_empty() || d.debian.is_some(),
                "{} has no origin",
                d.name
            );
            // every entry names its identity and note (the catalog's `..EMPTY` leaves them blank)
            let identity = [d.name, d.title, d.license, d.homepage, d.note];
            assert!(identity.iter().all(|s| !s.is_empty()), "{identity:?}");
        }
    }

    #[test]
    fn every_debian_source_is_pinned_and_fetched_by_the_script() {
        let script = include_str!("../../../../scripts/fetch-sources.sh");
        for d in all() {
            let Some(deb) = d.debian else { continue };
            let pin = debian_pin(deb.package).unwrap_or_else(|| panic!("{} unpinned", deb.package));
            assert_eq!(pin.deb_sha256.len(), 64);
            let line = format!("{} {} {}", pin.package, pin.version, pin.deb_sha256);
            assert!(script.contains(&line), "fetch-sources.sh lacks `{line}`");
        }
        // ...and the script pins nothing else.
        let script_pins = script
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|t| {
                t.len() == 3 && t[2].len() == 64 && t[2].bytes().all(|b| b.is_ascii_hexdigit())
            })
            .count();
        assert_eq!(script_pins, debian_pins().len());
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let e = get("nope").unwrap_err().to_string();
        assert!(
            e.contains("nope") && e.contains("fmnist") && e.contains("mnist-test"),
            "{e}"
        );
    }
}
