//! The build itself, as stages over one [`Build`] context: in-distribution split, OOD test sets,
//! validation OOD sets, auxiliary outliers, manifest. Each stage draws from its own named ChaCha8
//! stream, so stages are independent of each other's order and the same seed gives the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use ndarray::{concatenate, s, Array1, Array3, Array4, Axis};
use rand::seq::SliceRandom;

use super::crops::{sample_crops, CropSpec, CropStats, Scales};
use super::dedupe::{PerceptualHash, HASH_SIDE, MAX_DUPLICATE_DISTANCE};
use super::sources::{self, NamedImage, Sources};
use super::validation::{self, VALIDATION_SETS};
use super::{
    check_disjoint, part_sources, set_kind, stream, BuildConfig, Manifest, Steps, Writer,
    AUX_SCALES, DIR_NAME, FORMAT, OOD_TEST_SETS, PARTS, PHOTO_CROP_SCALES, PHOTO_RESIZE_SCALES,
    SIDE, TEXTURE_SCALES,
};
use crate::cache::Locations;
use crate::transforms::{resize, Filter};
use crate::{Error, Result};

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
    for (part, _, names) in PARTS {
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
        return Err(Error::MissingSources {
            what: DIR_NAME.to_string(),
            lines: missing_lines,
        });
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

/// What the stages share: the sources, the configuration, the writer of arrays, the per-set
/// provenance for the manifest, and every OOD test image (the auxiliary outliers must avoid them).
struct Build<'a, 's> {
    src: &'a mut Sources<'s>,
    cfg: &'a BuildConfig,
    w: Writer,
    sets: BTreeMap<String, serde_json::Value>,
    test_images: HashSet<Vec<u8>>,
    /// The distinct test photos (read once for both Photo-* sets) and what the reading found.
    photos: Option<(Vec<NamedImage>, serde_json::Value)>,
    /// Perceptual hashes of the test photos: no auxiliary source may be the same photo.
    photo_hashes: Vec<(String, PerceptualHash)>,
}

fn build_into(
    src: &mut Sources,
    dir: &Path,
    cfg: &BuildConfig,
    missing: &[String],
    progress: bool,
) -> Result<Manifest> {
    let wants = |part: &str| !missing.iter().any(|m| m == part);
    let mut b = Build {
        src,
        cfg,
        w: Writer {
            dir: dir.to_path_buf(),
            arrays: BTreeMap::new(),
        },
        sets: BTreeMap::new(),
        test_images: HashSet::new(),
        photos: None,
        photo_hashes: Vec::new(),
    };
    let steps = Steps::new(progress, 5 + OOD_TEST_SETS.len() as u64);
    steps.step("Fashion-MNIST");
    let val_x = b.in_distribution()?;
    for set in OOD_TEST_SETS {
        let part = format!("ood_test/{set}");
        steps.step(&part);
        if wants(&part) {
            b.ood_test_set(set, part)?;
        }
    }
    steps.step("ood_val");
    b.validation_sets(&val_x)?;
    steps.step("aux_outliers");
    if wants("aux_outliers") {
        b.aux_outliers()?;
    }
    steps.step("manifest");
    let manifest = b.write_manifest(dir, missing)?;
    steps.done();
    Ok(manifest)
}

impl Build<'_, '_> {
    /// Seeded split of the 60,000 training images into train/val, plus the test set. Returns the
    /// validation images (the validation OOD sets are transforms of them).
    fn in_distribution(&mut self) -> Result<Array4<u8>> {
        let (train_all, train_labels) = self.src.idx(
            "fmnist",
            "train-images-idx3-ubyte.gz",
            Some("train-labels-idx1-ubyte.gz"),
        )?;
        let (test_x, test_y) = self.src.idx(
            "fmnist",
            "t10k-images-idx3-ubyte.gz",
            Some("t10k-labels-idx1-ubyte.gz"),
        )?;
        let train_labels = train_labels.expect("labels requested");
        check_side(&train_all, "fmnist train")?;
        check_side(&test_x, "fmnist test")?;
        let n = train_all.shape()[0];
        if self.cfg.val_size >= n {
            return Err(Error::Invalid {
                what: "val_size",
                reason: format!(
                    "{} must be below the {n} training images",
                    self.cfg.val_size
                ),
            });
        }
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut stream(self.cfg.seed, "split"));
        let mut val_idx = perm[..self.cfg.val_size].to_vec();
        let mut train_idx = perm[self.cfg.val_size..].to_vec();
        val_idx.sort_unstable();
        train_idx.sort_unstable();
        let val_x = train_all.select(Axis(0), &val_idx);
        let as_i64 = |v: &[usize]| Array1::from_iter(v.iter().map(|&i| i as i64));
        let w = &mut self.w;
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
        self.sets.insert(
            "in-distribution".into(),
            serde_json::json!({
                "train": train_idx.len(), "val": val_idx.len(), "test": test_x.shape()[0],
                "split": "seeded permutation of the training set (stream 'split'); indices in train_idx.npy / val_idx.npy",
            }),
        );
        Ok(val_x)
    }

    /// One OOD test set, written as `ood_test/<set>.npy`; its images are remembered.
    fn ood_test_set(&mut self, set: &str, part: String) -> Result<()> {
        let (images, mut info) = match set {
            "mnist" | "notmnist" => self.idx_test_set(set)?,
            "omniglot" => {
                let imgs = self.src.omniglot()?;
                let (x, inverted) = omniglot_to_28(&imgs);
                let info = serde_json::json!({
                    "source": "omniglot-small",
                    "note": "every image of both zips, polarity matched to white-on-black (inverted when the border is bright), area-resized 105 -> 28",
                    "inverted": inverted,
                });
                (x, info)
            }
            "textures" => self.textures(&part)?,
            "photo_crop" | "photo_resize" => self.photo_set(set, &part)?,
            _ => unreachable!("every OOD test set is handled"),
        };
        for img in images.outer_iter() {
            self.test_images.insert(img.iter().copied().collect());
        }
        info["count"] = images.shape()[0].into();
        info["kind"] = set_kind(set).map(|k| k.label()).into();
        self.w.put(&format!("{part}.npy"), &images, "u8")?;
        self.sets.insert(part, info);
        Ok(())
    }

    /// MNIST or notMNIST: every test image, as published.
    fn idx_test_set(&mut self, set: &str) -> Result<(Array4<u8>, serde_json::Value)> {
        let reg = if set == "mnist" {
            "mnist-test"
        } else {
            "notmnist-test"
        };
        let (x, _) = self.src.idx(reg, "t10k-images-idx3-ubyte.gz", None)?;
        check_side(&x, reg)?;
        let info = serde_json::json!({"source": reg, "note": "all test images, as published (white on black)"});
        Ok((x, info))
    }

    /// Multi-scale crops of tileable GIMP patterns and scikit-image textures.
    fn textures(&mut self, part: &str) -> Result<(Array4<u8>, serde_json::Value)> {
        let cfg = self.cfg;
        let gimp = self.src.gimp_patterns()?;
        let sk = self.src.images("skimage-data", sources::SKIMAGE_TEXTURES)?;
        let mut rng = stream(cfg.seed, part);
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
        Ok((concatenate![Axis(0), a, b], info))
    }

    /// Photo crops at the native scale (`photo_crop`) or resized from larger crops (`photo_resize`).
    fn photo_set(&mut self, set: &str, part: &str) -> Result<(Array4<u8>, serde_json::Value)> {
        let cfg = self.cfg;
        if self.photos.is_none() {
            let photos = self.src.distinct_photos(cfg.min_distinct_photos)?;
            self.photo_hashes = photos.hashes;
            self.photos = Some((photos.images, photos.info));
        }
        let (photos, photo_info) = self.photos.as_ref().expect("read above");
        let (scales, count) = if set == "photo_crop" {
            (Scales::Fixed(PHOTO_CROP_SCALES), cfg.photo_crop)
        } else {
            (PHOTO_RESIZE_SCALES, cfg.photo_resize)
        };
        let spec = CropSpec {
            scales,
            tileable: false,
            min_std: cfg.min_crop_std,
        };
        let (x, st) = sample_crops(photos, count, &spec, &mut stream(cfg.seed, part));
        let mut info = photo_info.clone();
        info["crops"] = crop_info(&spec, &st);
        Ok((x, info))
    }

    /// Validation OOD sets: noise, or transforms of the ID validation split.
    fn validation_sets(&mut self, val_x: &Array4<u8>) -> Result<()> {
        for name in VALIDATION_SETS {
            let part = format!("ood_val/{name}");
            let x = validation::build(
                name,
                self.cfg.validation_ood,
                val_x.view(),
                &mut stream(self.cfg.seed, &part),
            )
            .expect("every validation set name is known");
            self.w.put(&format!("{part}.npy"), &x, "u8")?;
            self.sets.insert(
                part,
                serde_json::json!({"count": x.shape()[0], "from": "noise or the ID validation split"}),
            );
        }
        Ok(())
    }

    /// Auxiliary outliers (OpenArena textures and MATE photos), minus any crop identical to an
    /// OOD test image.
    fn aux_outliers(&mut self) -> Result<()> {
        let cfg = self.cfg;
        let oa = self.src.openarena()?;
        let mate = self.src.image_dir("mate-backgrounds")?;
        self.refuse_test_photos_among(&oa)?;
        self.refuse_test_photos_among(&mate)?;
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
                let img: Vec<u8> = all.slice(s![i, .., .., ..]).iter().copied().collect();
                !self.test_images.contains(&img)
            })
            .collect();
        let dropped = all.shape()[0] - keep.len();
        let x = if dropped == 0 {
            all
        } else {
            all.select(Axis(0), &keep)
        };
        self.w.put("aux_outliers.npy", &x, "u8")?;
        self.sets.insert(
            "aux_outliers".into(),
            serde_json::json!({"count": x.shape()[0], "sources": ["openarena-textures", "mate-backgrounds"],
                "openarena": crop_info(&spec, &sa), "mate": crop_info(&spec, &sb),
                "dropped_identical_to_a_test_image": dropped}),
        );
        Ok(())
    }

    /// An auxiliary source that is the same photo as a test photo (perceptual hash, see
    /// [`super::dedupe`]) is an error: the fine-tuned model would have seen the test photo.
    /// Sources smaller than the hash grid are not compared (they never yield a crop of a photo).
    fn refuse_test_photos_among(&self, aux: &[NamedImage]) -> Result<()> {
        if self.photo_hashes.is_empty() {
            return Ok(());
        }
        use rayon::prelude::*;
        let hashes = &self.photo_hashes;
        let clash = aux.par_iter().find_map_first(|a| {
            let (h, w, _) = a.pixels.dim();
            if h.min(w) < HASH_SIDE.max(SIDE) {
                return None;
            }
            let ah = PerceptualHash::of(a.pixels.view());
            hashes
                .iter()
                .find(|(_, t)| t.same_photo(&ah))
                .map(|(t, th)| (a.name.clone(), t.clone(), th.distance(&ah)))
        });
        match clash {
            None => Ok(()),
            Some((a, t, d)) => Err(Error::Invalid {
                what: "fmnist-ood sources",
                reason: format!(
                    "auxiliary source {a} is the same photo as test photo {t} (perceptual distance {d} <= {MAX_DUPLICATE_DISTANCE}); test and auxiliary sources must be disjoint"
                ),
            }),
        }
    }

    fn write_manifest(self, dir: &Path, missing: &[String]) -> Result<Manifest> {
        let parts = part_sources();
        let manifest = Manifest {
            format: FORMAT.to_string(),
            seed: self.cfg.seed,
            config: self.cfg.clone(),
            arrays: self.w.arrays,
            sets: self.sets,
            missing: missing.to_vec(),
            parts,
            sources: self
                .src
                .used
                .iter()
                .map(|s| serde_json::to_value(s).expect("plain data"))
                .collect(),
        };
        check_disjoint(&manifest.parts, &manifest.sources).map_err(|e| Error::Invalid {
            what: "fmnist-ood sources",
            reason: e.to_string(),
        })?;
        let path = dir.join("manifest.json");
        ood_core::io::write_atomic(&path, |f| {
            serde_json::to_writer_pretty(&mut *f, &manifest).map_err(|e| Error::Encode {
                path: path.clone(),
                format: "JSON",
                source: Box::new(e),
            })?;
            std::io::Write::write_all(f, b"\n").map_err(|e| Error::io(&path, e))
        })?;
        Ok(manifest)
    }
}

fn crop_info(spec: &CropSpec, st: &CropStats) -> serde_json::Value {
    serde_json::json!({"spec": spec, "stats": st})
}

fn check_side(x: &Array4<u8>, what: &str) -> Result<()> {
    let s = x.shape();
    if s[1] != SIDE || s[2] != SIDE || s[3] != 1 {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: "28x28 gray",
            found: format!("{}x{}x{}", s[1], s[2], s[3]),
        });
    }
    Ok(())
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
