//! `eood data show`: PNG montages of a dataset, a built fmnist-ood array, or a `.npy` file.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ndarray::{Array3, Array4};
use ood_data::cache::Locations;
use ood_data::fmnist_ood;
use ood_data::formats::{gimp_pat, idx, image_file, zip_images, ColorMode};
use ood_data::montage::{self, MontageSpec};
use ood_data::registry::{self, Dataset};
use ood_data::transforms::{center_crop, resize_shorter_side, Filter};

use super::built_dir;

pub(super) fn show(
    loc: &Locations,
    name: &str,
    out: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    spec: &MontageSpec,
) -> anyhow::Result<()> {
    let whole_benchmark = name == fmnist_ood::DIR_NAME;
    match (whole_benchmark, &out, &out_dir) {
        (true, Some(_), _) => bail!(
            "`data show {name}` writes one PNG per built array: give --out-dir DIR, not --out"
        ),
        (false, _, Some(_)) => {
            bail!("`data show {name}` writes one PNG: give --out FILE, not --out-dir")
        }
        _ => {}
    }
    let default_out = |label: &str| {
        loc.cache
            .root()
            .join("montages")
            .join(format!("{}.png", label.replace('/', "_")))
    };
    // A .npy file.
    if name.ends_with(".npy") && Path::new(name).is_file() {
        let x = fmnist_ood::read_images(Path::new(name))?;
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return write_one(&x, &out.unwrap_or_else(|| default_out(&stem)), spec);
    }
    // The built benchmark, whole or one array.
    if let Some(rest) = name.strip_prefix(fmnist_ood::DIR_NAME) {
        let dir = built_dir(loc)?;
        let manifest = fmnist_ood::read_manifest(&dir)?;
        let rest = rest.trim_start_matches('/');
        if rest.is_empty() {
            let folder = out_dir
                .unwrap_or_else(|| loc.cache.root().join("montages").join(fmnist_ood::DIR_NAME));
            for (rel, a) in &manifest.arrays {
                if a.shape.len() == 4 {
                    let x = fmnist_ood::read_images(&dir.join(rel))?;
                    let png = folder.join(format!(
                        "{}.png",
                        rel.trim_end_matches(".npy").replace('/', "_")
                    ));
                    write_one(&x, &png, spec)?;
                }
            }
            return Ok(());
        }
        let rel = if rest.ends_with(".npy") {
            rest.to_string()
        } else {
            format!("{rest}.npy")
        };
        let rel = if manifest.arrays.contains_key(&rel) {
            rel
        } else {
            rel.replace(".npy", "_x.npy")
        };
        if !manifest.arrays.contains_key(&rel) {
            let known: Vec<&str> = manifest
                .arrays
                .keys()
                .map(|k| k.trim_end_matches(".npy"))
                .collect();
            bail!("{name}: no such built array (known: {})", known.join(", "));
        }
        let x = fmnist_ood::read_images(&dir.join(&rel))?;
        return write_one(&x, &out.unwrap_or_else(|| default_out(name)), spec);
    }
    // A registry dataset or source.
    let ds = registry::get(name)?;
    let x = dataset_samples(ds, loc, spec.max_images)?;
    write_one(&x, &out.unwrap_or_else(|| default_out(name)), spec)
}

fn write_one(x: &Array4<u8>, png: &Path, spec: &MontageSpec) -> anyhow::Result<()> {
    montage::write_png(x.view(), spec, png)?;
    println!(
        "{} ({} images, showing {})",
        png.display(),
        x.shape()[0],
        montage::pick(x.shape()[0], spec).len()
    );
    Ok(())
}

/// Images of a registry entry for a montage: IDX files as stored; variable-size sources shrunk
/// (shorter side 64, center 64x64), at most `max` of them.
fn dataset_samples(ds: &Dataset, loc: &Locations, max: usize) -> anyhow::Result<Array4<u8>> {
    let (dir, _) = ds.require(loc)?;
    if let Some(f) = ds.files.iter().find(|f| f.name.contains("images-idx3")) {
        return Ok(idx::read_images(&dir.join(f.name))?);
    }
    let mut imgs: Vec<Array3<u8>> = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    match ds.name {
        "omniglot-small" => {
            for f in ds.files {
                imgs.extend(
                    zip_images::read_zip_images(&dir.join(f.name), ColorMode::Gray)?
                        .into_iter()
                        .map(|z| z.image),
                );
            }
        }
        "openarena-textures" => {
            let pk3 = dir.join(fmnist_ood::sources::OPENARENA_PK3);
            let names = zip_images::image_names(&pk3)?;
            let step = (names.len() / max.max(1)).max(1);
            let keep: std::collections::HashSet<&String> = names.iter().step_by(step).collect();
            imgs.extend(
                zip_images::read_zip_images_where(&pk3, ColorMode::Rgb, |n| {
                    keep.contains(&n.to_string())
                })?
                .into_iter()
                .map(|z| z.image),
            );
        }
        "skimage-data" => {
            let used = fmnist_ood::sources::SKIMAGE_TEXTURES
                .iter()
                .chain(fmnist_ood::sources::SKIMAGE_PHOTOS);
            for f in used {
                imgs.push(image_file::read_image(&dir.join(f), ColorMode::Rgb)?);
            }
        }
        "gimp-patterns" => {
            collect(&dir, "pat", &mut files)?;
            for p in &files {
                imgs.push(gimp_pat::read_pat(p)?.pixels(ColorMode::Rgb));
            }
        }
        _ if ds.files.is_empty() => {
            for ext in ["png", "jpg"] {
                collect(&dir, ext, &mut files)?;
            }
            files.sort();
            for p in files.iter().take(max) {
                imgs.push(image_file::read_image(p, ColorMode::Rgb)?);
            }
        }
        _ => bail!(
            "{}: no montage for this format yet (try a built .npy)",
            ds.name
        ),
    }
    if imgs.is_empty() {
        bail!("{}: no images found in {}", ds.name, dir.display());
    }
    Ok(montage_array(&imgs, max))
}

/// At most `4 * max` images as one array: as they are when all share a size, else each shrunk
/// (shorter side 64, center 64x64); gray ones made RGB when others are colour.
fn montage_array(imgs: &[Array3<u8>], max: usize) -> Array4<u8> {
    let side = 64;
    let c = imgs.iter().map(|i| i.dim().2).max().unwrap_or(1);
    let uniform = imgs.iter().all(|i| i.dim() == imgs[0].dim());
    let n = imgs.len().min(max.max(1) * 4);
    let (h, w) = if uniform {
        (imgs[0].dim().0, imgs[0].dim().1)
    } else {
        (side, side)
    };
    let mut out = Array4::<u8>::zeros((n, h, w, c));
    for (k, img) in imgs.iter().take(n).enumerate() {
        let img = if uniform {
            img.clone()
        } else {
            center_crop(
                resize_shorter_side(img.view(), side, Filter::Area).view(),
                side,
                side,
            )
        };
        let img = if img.dim().2 == c {
            img
        } else {
            ood_data::transforms::gray_to_rgb(img.view())
        };
        out.slice_mut(ndarray::s![k, .., .., ..]).assign(&img);
    }
    out
}

fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, ext, out)?;
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)) {
            out.push(p);
        }
    }
    Ok(())
}
