//! The raw material of the benchmark: which registry entry each set reads, which files inside
//! it, and how they are decoded (always to gray, `H x W x 1`).

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4};
use rayon::prelude::*;

use super::dedupe::{dedupe, PerceptualHash, HASH_SIDE, MAX_DUPLICATE_DISTANCE};
use super::PHOTO_SOURCES;
use crate::cache::Locations;
use crate::formats::{gimp_pat, idx, image_file, qt_rcc, zip_images, ColorMode};
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

/// Which images of a GCompris resource archive are photographs (checked by eye: drawings,
/// renders, paintings, cut-out fish and the alphabet/number blocks are left out).
#[derive(Debug, Clone, Copy)]
pub struct RccPhotos {
    /// Archive file in the registry entry's directory.
    pub archive: &'static str,
    /// Entry paths starting with this are taken (`.webp`, `.jpg`, `.png` only)...
    pub prefix: &'static str,
    /// ...unless they contain one of these.
    pub exclude: &'static [&'static str],
    /// When not empty, only these file names (after `prefix`) are taken.
    pub only: &'static [&'static str],
}

/// GCompris' photographs (registry entry `gcompris-photos`): 274 files, 271 distinct photos.
pub const GCOMPRIS_PHOTOS: &[RccPhotos] = &[
    RccPhotos {
        archive: "categorization.rcc",
        prefix: "gcompris/src/activities/categorization/resource/images/",
        exclude: &["/alphabets/", "/numbers/"],
        only: &[],
    },
    RccPhotos {
        archive: "clickgame.rcc",
        prefix: "gcompris/src/activities/clickgame/resource/sea",
        exclude: &[],
        only: &[],
    },
    RccPhotos {
        archive: "details.rcc",
        prefix: "gcompris/src/activities/details/resource/image/",
        exclude: &[],
        only: &[
            "Chenonceau_background.webp",
            "EgeskovSlotSpejling_background.webp",
            "EilanDonanCastle_background.webp",
            "FanoeWindmill_background.webp",
            "GizahPyramids_background.webp",
            "Louvre_2007_02_24_c_background.webp",
            "NDP_background.webp",
            "Nagoya_background.webp",
            "Neuschwanstein_background.webp",
            "OperaSidney_background.webp",
            "TajMahal_background.webp",
            "TourEiffel_background.webp",
            "TowerBridgeLondon_background.webp",
        ],
    },
    RccPhotos {
        archive: "erase.rcc",
        prefix: "gcompris/src/activities/erase/resource/",
        exclude: &[],
        only: &[],
    },
    RccPhotos {
        archive: "explore_farm_animals.rcc",
        prefix: "gcompris/src/activities/explore_farm_animals/resource/animals/",
        exclude: &[],
        only: &[],
    },
    RccPhotos {
        archive: "explore_monuments.rcc",
        prefix: "gcompris/src/activities/explore_monuments/resource/",
        exclude: &[],
        only: &[],
    },
    RccPhotos {
        archive: "explore_world_animals.rcc",
        prefix: "gcompris/src/activities/explore_world_animals/resource/animals/",
        exclude: &[],
        only: &[],
    },
    RccPhotos {
        archive: "explore_world_music.rcc",
        prefix: "gcompris/src/activities/explore_world_music/resource/music/",
        exclude: &[],
        only: &[],
    },
];

/// Lomiri (Ubuntu Touch 16.04) wallpapers that are photographs (`umang`, a render, is left out).
pub const LOMIRI_PHOTOS: &[&str] = &[
    "Bridge_by_Sander_Klootwijk.jpg",
    "Dragonfly_by_Bolly.jpg",
    "Picture_0B_by_freespace.jpg",
    "Picture_1A_by_freespace.jpg",
    "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg",
    "analogpattern_by_Peter_Nerlich.jpg",
    "free_by_Peter_Nerlich.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "greentock_by_Peter_Nerlich.jpg",
    "life_by_Aitzol_Berasategi.jpg",
    "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg",
    "sunset_by_Aitzol_Berasategi.jpg",
];

/// Plasma wallpapers that are photographs, one resolution each (every `images/*.jpg` of a
/// wallpaper is the same 2560x1600 picture; `Autumn`, a painting, and the renders are left out).
pub const PLASMA_PHOTOS: &[&str] = &[
    "BytheWater/contents/images/2560x1600.jpg",
    "ColdRipple/contents/images/2560x1600.jpg",
    "ColorfulCups/contents/images/2560x1600.jpg",
    "DarkestHour/contents/images/2560x1600.jpg",
    "EveningGlow/contents/images/2560x1600.jpg",
    "FallenLeaf/contents/images/2560x1600.jpg",
    "Grey/contents/images/2560x1600.jpg",
    "Kite/contents/images/2560x1600.jpg",
    "OneStandsOut/contents/images/2560x1600.jpg",
    "Path/contents/images/2560x1600.jpg",
    "summer_1am/contents/images/2560x1600.jpg",
];
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

/// The distinct test photos ([`Sources::distinct_photos`]).
pub struct Photos {
    pub images: Vec<NamedImage>,
    /// What was read and dropped, for the manifest.
    pub info: serde_json::Value,
    /// The perceptual hash of each photo, by name.
    pub hashes: Vec<(String, PerceptualHash)>,
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

    /// The listed image files of a registry entry's directory, gray (decoded in parallel,
    /// returned in the order listed).
    pub fn images(&mut self, name: &str, files: &[&str]) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir(name)?;
        let mut paths = Vec::new();
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
            paths.push((f, p));
        }
        paths
            .into_par_iter()
            .map(|(f, p)| {
                Ok(NamedImage {
                    name: f.to_string(),
                    pixels: image_file::read_image(&p, ColorMode::Gray)?,
                })
            })
            .collect()
    }

    /// The photographs `sel` picks from resource archives of a registry entry, gray, in
    /// selection order then entry path; each image is named `archive:entry`.
    pub fn rcc_photos(&mut self, name: &str, sel: &[RccPhotos]) -> Result<Vec<NamedImage>> {
        let (ds, dir, place) = self.dir(name)?;
        let mut out = Vec::new();
        for s in sel {
            let p = dir.join(s.archive);
            self.record(ds, &p, place)?;
            let entries = qt_rcc::read_rcc_where(&p, |n| s.selects(n))?;
            let decoded: Result<Vec<NamedImage>> = entries
                .into_par_iter()
                .map(|e| {
                    let label = format!("{}:{}", s.archive, e.name);
                    let pixels =
                        image_file::decode_image(&e.bytes, Path::new(&label), ColorMode::Gray)?;
                    Ok(NamedImage {
                        name: label,
                        pixels,
                    })
                })
                .collect();
            out.extend(decoded?);
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

    /// The test photos of every collection of [`PHOTO_SOURCES`], in that order, with copies of one
    /// photo dropped ([`dedupe`]); fewer than `min_distinct` distinct photos is an error.
    pub fn distinct_photos(&mut self, min_distinct: usize) -> Result<Photos> {
        let mut all = Vec::new();
        let mut read = serde_json::Map::new();
        for &name in PHOTO_SOURCES {
            let imgs = match name {
                "skimage-data" => self.images(name, SKIMAGE_PHOTOS)?,
                "sklearn-images" => self.images(name, SKLEARN_PHOTOS)?,
                "gcompris-photos" => self.rcc_photos(name, GCOMPRIS_PHOTOS)?,
                "lomiri-photos" => self.images(name, LOMIRI_PHOTOS)?,
                "plasma-photos" => self.images(name, PLASMA_PHOTOS)?,
                _ => unreachable!("every photo source is handled"),
            };
            read.insert(name.to_string(), imgs.len().into());
            all.extend(imgs.into_iter().map(|i| NamedImage {
                name: format!("{name}/{}", i.name),
                pixels: i.pixels,
            }));
        }
        let (kept, dropped) = dedupe(all);
        if kept.len() < min_distinct {
            return Err(Error::Invalid {
                what: "photo test sources",
                reason: format!(
                    "{} distinct photos, at least {min_distinct} needed (see docs/datasets.md)",
                    kept.len()
                ),
            });
        }
        let info = serde_json::json!({
            "sources": PHOTO_SOURCES,
            "photos_read": read,
            "distinct_photos": kept.len(),
            "duplicates_dropped": dropped,
            "dedupe": format!("gray area-resized to {HASH_SIDE}x{HASH_SIDE}, bit = pixel above the mean; same photo when at most {MAX_DUPLICATE_DISTANCE} of 256 bits differ; the first in source order is kept"),
        });
        let hashes = kept.iter().map(|(i, h)| (i.name.clone(), *h)).collect();
        Ok(Photos {
            images: kept.into_iter().map(|(i, _)| i).collect(),
            info,
            hashes,
        })
    }
}

impl RccPhotos {
    /// Whether the archive entry `name` is one of the photographs this selection takes.
    pub fn selects(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.prefix) else {
            return false;
        };
        let lower = rest.to_ascii_lowercase();
        [".webp", ".jpg", ".jpeg", ".png"]
            .iter()
            .any(|e| lower.ends_with(e))
            && !self.exclude.iter().any(|x| name.contains(x))
            && (self.only.is_empty() || self.only.contains(&rest))
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
