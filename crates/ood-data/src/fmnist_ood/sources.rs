//! The raw material of the benchmark: which registry entry each set reads, which files inside
//! it, and how they are decoded (always to gray, `H x W x 1`).

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4};
use rayon::prelude::*;

use crate::cache::Locations;
use crate::formats::{gimp_pat, idx, image_file, zip_images, ColorMode};
use crate::registry::{self, Dataset, Place};
use crate::{Error, Result};

/// scikit-image texture images (Textures set).
pub const SKIMAGE_TEXTURES: &[&str] = &["brick.png", "grass.png", "gravel.png"];
/// scikit-image natural photos (Photo-Crop / Photo-Resize). Synthetic, microscopy, document and
/// tiny images of `skimage/data` are left out on purpose.
pub const SKIMAGE_PHOTOS: &[&str] = &[
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "hubble_deep_field.jpg",
    "moon.png",
    "motorcycle_left.png",
    "rocket.jpg",
];
/// scikit-learn sample photos (Photo-Crop / Photo-Resize).
pub const SKLEARN_PHOTOS: &[&str] = &["china.jpg", "flower.jpg"];
/// The OpenArena texture archive (auxiliary outliers).
pub const OPENARENA_PK3: &str = "pak4-textures.pk3";

/// A source file the build read, for the manifest.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceFile {
    /// Registry entry it belongs to.
    pub dataset: String,
    pub path: PathBuf,
    pub sha256: String,
    /// Where it was found (system package, cached package, shared data, download cache).
    pub place: String,
}

/// A gray image with the name it came from.
#[derive(Debug, Clone)]
pub struct NamedImage {
    pub name: String,
    /// `H x W x 1`.
    pub pixels: Array3<u8>,
}

/// Locates the sources of the benchmark and records every file read.
pub struct Sources<'a> {
    loc: &'a Locations,
    pub used: Vec<SourceFile>,
}

impl<'a> Sources<'a> {
    pub fn new(loc: &'a Locations) -> Self {
        Sources {
            loc,
            used: Vec::new(),
        }
    }

    /// Which of `names` (registry entries) are missing, each as a ready-to-print line.
    pub fn missing(&self, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .filter_map(|n| registry::get(n).ok())
            .filter_map(|d| d.require(self.loc).err().map(|e| e.to_string()))
            .collect()
    }

    fn dir(&self, name: &str) -> Result<(&'static Dataset, PathBuf, Place)> {
        let ds = registry::get(name)?;
        let (dir, place) = ds.require(self.loc)?;
        Ok((ds, dir, place))
    }

    fn record(&mut self, ds: &Dataset, path: &Path, place: Place) -> Result<()> {
        self.used.push(SourceFile {
            dataset: ds.name.to_string(),
            path: path.to_path_buf(),
            sha256: crate::download::sha256_file(path)?,
            place: place.to_string(),
        });
        Ok(())
    }

    /// An IDX image file (and optionally its labels) of a registry entry.
    pub fn idx(
        &mut self,
        name: &str,
        images: &str,
        labels: Option<&str>,
    ) -> Result<(Array4<u8>, Option<ndarray::Array1<i64>>)> {
        let (ds, dir, place) = self.dir(name)?;
        let ip = dir.join(images);
        self.record(ds, &ip, place)?;
        let x = idx::read_images(&ip)?;
        let y = match labels {
            Some(l) => {
                let lp = dir.join(l);
                self.record(ds, &lp, place)?;
                let y = idx::read_labels(&lp)?;
                if y.len() != x.shape()[0] {
                    return Err(Error::format(
                        &lp,
                        0,
                        format!("{} labels for {} images", y.len(), x.shape()[0]),
                    ));
                }
                Some(y)
            }
            None => None,
        };
        Ok((x, y))
    }

    /// Every image of the Omniglot zips, gray, sorted by archive then path.
    pub fn omniglot(&mut self) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir("omniglot-small")?;
        let mut out = Vec::new();
        for f in ds.files {
            let p = dir.join(f.name);
            self.record(ds, &p, place)?;
            for z in zip_images::read_zip_images(&p, ColorMode::Gray)? {
                out.push(NamedImage {
                    name: format!("{}/{}", f.name, z.name),
                    pixels: z.image,
                });
            }
        }
        Ok(out)
    }

    /// Every GIMP pattern, gray, sorted by path.
    pub fn gimp_patterns(&mut self) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir("gimp-patterns")?;
        let mut paths = Vec::new();
        collect_files(
            &dir,
            &mut |p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("pat")),
            &mut paths,
        )?;
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            self.record(ds, &p, place)?;
            let pat = gimp_pat::read_pat(&p)?;
            let name = p.strip_prefix(&dir).unwrap_or(&p).display().to_string();
            out.push(NamedImage {
                name,
                pixels: pat.pixels(ColorMode::Gray),
            });
        }
        Ok(out)
    }

    /// The listed image files of a registry entry's directory, gray.
    pub fn images(&mut self, name: &str, files: &[&str]) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir(name)?;
        let mut out = Vec::new();
        for f in files {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(Error::MissingSource {
                    name: format!("{name}: {f}"),
                    tried: vec![(p, place)],
                    how: ds.how_to_get(),
                });
            }
            self.record(ds, &p, place)?;
            out.push(NamedImage {
                name: f.to_string(),
                pixels: image_file::read_image(&p, ColorMode::Gray)?,
            });
        }
        Ok(out)
    }

    /// Every image file directly in a registry entry's directory, gray, sorted by name.
    pub fn image_dir(&mut self, name: &str) -> Result<Vec<NamedImage>> {
        let (_, dir, _) = self.dir(name)?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| image_file::is_image_name(n))
            .collect();
        names.sort();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.images(name, &refs)
    }

    /// Every image of the OpenArena texture archive, gray, sorted by path.
    pub fn openarena(&mut self) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir("openarena-textures")?;
        let p = dir.join(OPENARENA_PK3);
        self.record(ds, &p, place)?;
        Ok(zip_images::read_zip_images(&p, ColorMode::Gray)?
            .into_par_iter()
            .map(|z| NamedImage {
                name: z.name,
                pixels: z.image,
            })
            .collect())
    }
}

fn collect_files(
    dir: &Path,
    keep: &mut impl FnMut(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if p.is_dir() {
            collect_files(&p, keep, out)?;
        } else if keep(&p) {
            out.push(p);
        }
    }
    Ok(())
}
