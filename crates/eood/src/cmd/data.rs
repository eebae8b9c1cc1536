//! `eood data`: the dataset registry, verified downloads, the cache, the Fashion-MNIST OOD
//! benchmark builder and montages.
//!
//! ```text
//! eood data list                       registry: name, role, where found, license
//! eood data fetch NAME...              download (verified, resumable) or unpack the Debian package
//! eood data verify NAME                check SHA-256 digests (fmnist-ood: re-hash the built arrays)
//! eood data path NAME                  print where NAME is (cache: the cache root)
//! eood data build fmnist-ood           build the benchmark into <cache>/fmnist-ood
//! eood data show NAME [--out F.png]    PNG grid of samples (NAME: dataset, fmnist-ood[/SET], or .npy)
//! ```
//! The cache is `--cache DIR`, else `$EOOD_CACHE`, else `<checkout>/.cache` inside a checkout,
//! else `~/.cache/energy-ood` (see `ood_data::cache`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ndarray::{Array3, Array4};
use ood_core::limits::check_range;
use ood_data::cache::{Cache, Locations};
use ood_data::fmnist_ood::{self, BuildConfig};
use ood_data::formats::{gimp_pat, idx, image_file, zip_images, ColorMode};
use ood_data::montage::{self, MontageSpec};
use ood_data::registry::{self, Dataset};
use ood_data::transforms::{center_crop, resize_shorter_side, Filter};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Cache directory (default: $EOOD_CACHE, else <checkout>/.cache, else ~/.cache/energy-ood).
    #[arg(long, global = true, value_name = "DIR")]
    cache: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// List the registry: every dataset and source, whether and where it is present.
    List,
    /// Fetch datasets into the cache (publisher URLs with SHA-256 checks, or Debian packages).
    Fetch {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Verify a dataset's files against their recorded SHA-256 (or a built benchmark's manifest).
    Verify { name: String },
    /// Print the directory holding a dataset (`cache` prints the cache root).
    Path { name: String },
    /// Build a derived benchmark (only `fmnist-ood`).
    Build {
        /// What to build: `fmnist-ood`.
        what: String,
        /// Seed of every random choice (split, crops, noise).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder (default <cache>/fmnist-ood).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Skip the OOD parts whose sources are missing instead of failing (recorded in the manifest).
        #[arg(long)]
        allow_missing: bool,
    },
    /// Convert an OOD test set to the `.npy` image array (N x H x W x C u8) that `eood bench`
    /// reads: an image folder (Textures/DTD, Places365, LSUN-Crop, LSUN-Resize, iSUN; flat or in
    /// class sub-folders) with the paper's preprocessing (shorter side to --size, center crop),
    /// or an SVHN cropped-digits .mat file (--svhn).
    Convert {
        /// Image folder, or the SVHN .mat file with --source svhn-mat.
        input: PathBuf,
        /// Output .npy (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// Side of the square output images, 1 to 4096.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Output channels.
        #[arg(long, value_enum, default_value_t = Color::Rgb)]
        color: Color,
        /// What the input is; an SVHN .mat file's labels are dropped (OOD sets need none).
        #[arg(long, value_enum, default_value_t = Source::Folder)]
        source: Source,
    },
    /// Write a PNG montage of samples of a dataset, a built set (fmnist-ood/ood_test/mnist) or a .npy file.
    /// `fmnist-ood` alone writes one montage per built array into a folder.
    Show {
        name: String,
        /// Output PNG (a folder for `fmnist-ood`); default <cache>/montages/...
        #[arg(long)]
        out: Option<PathBuf>,
        /// Most images shown (a seeded sample of larger sets), 1 to 10000.
        #[arg(long, default_value_t = 256)]
        max: usize,
        /// Images per row, 1 to 256.
        #[arg(long, default_value_t = 16)]
        cols: usize,
        /// Pixel magnification, 1 to 32.
        #[arg(long, default_value_t = 2)]
        scale: usize,
    },
}

/// `data convert --color`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Color {
    Rgb,
    Gray,
}

/// `data convert --source`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An image folder (flat or in class sub-folders).
    Folder,
    /// SVHN's cropped-digits .mat file (test_32x32.mat).
    SvhnMat,
}

/// Largest side of a converted image and the montage limits: far beyond any use, far below
/// sizes whose buffers exhaust memory.
const MAX_CONVERT_SIZE: usize = 4096;

pub fn run(args: Args) -> anyhow::Result<()> {
    let (cache, choice) = Cache::locate(args.cache.as_deref());
    let loc = Locations::standard(cache);
    let progress = std::io::stderr().is_terminal();
    match args.command {
        Command::List => list(&loc, &choice.to_string()),
        Command::Fetch { names } => {
            for name in names {
                let ds = registry::get(&name)?;
                let (dir, place) = registry::fetch(ds, &loc, progress)?;
                println!("{name}: {} ({place})", dir.display());
            }
            Ok(())
        }
        Command::Verify { name } => verify(&loc, &name),
        Command::Path { name } => {
            let dir = match name.as_str() {
                "cache" => loc.cache.root().to_path_buf(),
                fmnist_ood::DIR_NAME => built_dir(&loc)?,
                _ => registry::get(&name)?.require(&loc)?.0,
            };
            println!("{}", dir.display());
            Ok(())
        }
        Command::Build {
            what,
            seed,
            out,
            allow_missing,
        } => {
            if what != fmnist_ood::DIR_NAME {
                bail!(
                    "unknown build target `{what}` (known: {})",
                    fmnist_ood::DIR_NAME
                );
            }
            let out = out.unwrap_or_else(|| loc.cache.built(fmnist_ood::DIR_NAME));
            let cfg = BuildConfig {
                seed,
                ..BuildConfig::default()
            };
            let start = std::time::Instant::now();
            let m = fmnist_ood::build(&loc, &out, &cfg, allow_missing, progress)?;
            for (rel, a) in &m.arrays {
                println!("{rel:<28} {:?} {}", a.shape, &a.sha256[..16]);
            }
            if !m.missing.is_empty() {
                println!("skipped (missing sources): {}", m.missing.join(", "));
            }
            println!(
                "built {} in {:.1}s (seed {seed})",
                out.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::Convert {
            input,
            out,
            size,
            color,
            source,
        } => {
            check_range("--size", size, 1, MAX_CONVERT_SIZE)?;
            convert(
                &input,
                &out,
                size,
                color == Color::Gray,
                source == Source::SvhnMat,
            )
        }
        Command::Show {
            name,
            out,
            max,
            cols,
            scale,
        } => {
            check_range("--max", max, 1, 10_000)?;
            check_range("--cols", cols, 1, 256)?;
            check_range("--scale", scale, 1, 32)?;
            let spec = MontageSpec {
                cols,
                max_images: max,
                scale,
                ..MontageSpec::default()
            };
            show(&loc, &name, out, &spec)
        }
    }
}

fn list(loc: &Locations, choice: &str) -> anyhow::Result<()> {
    println!("cache: {} (from {choice})", loc.cache.root().display());
    if let Some(s) = &loc.shared_data {
        println!("shared data: {}", s.display());
    }
    println!(
        "{:<20} {:<9} {:>10} {:<12} {:<16} LICENSE",
        "NAME", "ROLE", "IMAGES", "SHAPE", "PRESENT"
    );
    for d in registry::all() {
        let present = d
            .locate(loc)
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| "-".into());
        let images = d
            .images
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into());
        let shape = match d.shape {
            [0, 0, _] => "varies".to_string(),
            [h, w, c] => format!("{h}x{w}x{c}"),
        };
        println!(
            "{:<20} {:<9} {:>10} {:<12} {:<16} {}",
            d.name,
            d.role.to_string(),
            images,
            shape,
            present,
            d.license
        );
    }
    let built = loc.cache.built(fmnist_ood::DIR_NAME);
    let state = if built.join("manifest.json").is_file() {
        "built"
    } else {
        "not built (eood data build fmnist-ood)"
    };
    println!(
        "{:<20} {:<9} {:>10} {:<12} {}",
        fmnist_ood::DIR_NAME,
        "benchmark",
        "",
        "28x28x1",
        state
    );
    Ok(())
}

fn verify(loc: &Locations, name: &str) -> anyhow::Result<()> {
    if name == fmnist_ood::DIR_NAME {
        let dir = built_dir(loc)?;
        let arrays = fmnist_ood::verify_built(&dir)?;
        println!(
            "{}: {} arrays match manifest.json",
            dir.display(),
            arrays.len()
        );
        return Ok(());
    }
    let ds = registry::get(name)?;
    for check in ds.verify(loc)? {
        println!(
            "{}: {} [{}]",
            check.path.display(),
            check.outcome,
            check.place
        );
    }
    Ok(())
}

fn built_dir(loc: &Locations) -> anyhow::Result<PathBuf> {
    let dir = loc.cache.built(fmnist_ood::DIR_NAME);
    if !dir.join("manifest.json").is_file() {
        bail!(
            "{} is not built: run `eood data build fmnist-ood`",
            dir.display()
        );
    }
    Ok(dir)
}

fn show(
    loc: &Locations,
    name: &str,
    out: Option<PathBuf>,
    spec: &MontageSpec,
) -> anyhow::Result<()> {
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
            let folder =
                out.unwrap_or_else(|| loc.cache.root().join("montages").join(fmnist_ood::DIR_NAME));
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
    Ok(out)
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

/// `eood data convert`: an image folder or SVHN .mat file -> N x H x W x C u8 .npy.
fn convert(input: &Path, out: &Path, size: usize, gray: bool, svhn: bool) -> anyhow::Result<()> {
    use ood_data::formats::image_folder::{read_image_folder, FolderOptions, Preprocess};
    ood_core::io::check_output(out, &[input])?;
    let color = if gray {
        ColorMode::Gray
    } else {
        ColorMode::Rgb
    };
    let images: Array4<u8> = if svhn {
        let set = ood_data::formats::svhn_mat::read_svhn(input)?;
        let (h, w, _) = set.image_shape();
        if (h, w) != (size, size) || gray {
            bail!(
                "{}: SVHN images are {h}x{w} RGB; convert them with the default --size 32 and --color rgb",
                input.display()
            );
        }
        set.images
    } else {
        let options = FolderOptions {
            preprocess: Preprocess::ShorterSideCenterCrop {
                size,
                filter: Filter::Bilinear,
            },
            color,
        };
        read_image_folder(input, &options)?.set.images
    };
    let c_order = images.as_standard_layout();
    let values = c_order.as_slice().expect("standard layout is contiguous");
    ood_core::io::npy::write_array(out, images.shape(), values)?;
    let s = images.shape();
    eprintln!(
        "wrote {} images of {}x{}x{} to {}",
        s[0],
        s[1],
        s[2],
        s[3],
        out.display()
    );
    Ok(())
}
