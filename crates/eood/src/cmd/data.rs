//! `eood data`: the dataset registry, verified downloads, the cache, the Fashion-MNIST OOD
//! benchmark builder and montages.
//!
//! ```text
//! eood data list                       registry: name, role, where found, license
//! eood data fetch NAME...              download (verified, resumable) or unpack the Debian package
//! eood data verify NAME                check SHA-256 digests (fmnist-ood: re-hash the built arrays)
//! eood data path NAME                  print where NAME is (cache: the cache root)
//! eood data build fmnist-ood [--out-dir DIR]   build the benchmark (default <cache>/fmnist-ood)
//! eood data build places365 --archive test_256.tar [--images 10000] [--seed 0] [--out-dir DIR]
//!                                      seeded test subset + manifest (default <cache>/places365-subset)
//! eood data convert INPUT --out F.npy  an image folder or SVHN .mat -> N x H x W x C u8 .npy
//! eood data show NAME [--out F.png]    PNG grid of samples (NAME: dataset, fmnist-ood/SET, or .npy)
//! eood data show fmnist-ood [--out-dir DIR]    one PNG per built array
//! ```
//! The cache is `--cache DIR`, else `$EOOD_CACHE`, else `<checkout>/.cache` inside a checkout,
//! else `~/.cache/energy-ood` (see `ood_data::cache`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use ood_core::limits::check_range;
use ood_data::cache::{Cache, Locations};
use ood_data::fmnist_ood::{self, BuildConfig};
use ood_data::montage::MontageSpec;
use ood_data::registry;

mod convert;
mod show;

use convert::{convert, MAX_CONVERT_SIZE};

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
    /// Build a derived dataset: the `fmnist-ood` benchmark, or the `places365` test subset.
    Build {
        /// What to build.
        #[arg(value_enum)]
        what: BuildTarget,
        /// Seed of every random choice (split, crops, noise).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder (default <cache>/fmnist-ood).
        #[arg(long, value_name = "DIR", alias = "out")]
        out_dir: Option<PathBuf>,
        /// Skip the OOD parts whose sources are missing instead of failing (recorded in the manifest).
        #[arg(long)]
        allow_missing: bool,
        /// places365: the release archive (test_256.tar), streamed.
        #[arg(long, value_name = "TAR")]
        archive: Option<PathBuf>,
        /// places365: images in the subset (the code of record's 10,000), 1 to 10,000,000.
        #[arg(long, default_value_t = 10_000)]
        images: usize,
    },
    /// Convert an OOD test set to the `.npy` image array (N x H x W x C u8) that `eood bench`
    /// reads: an image folder (Textures/DTD, Places365, LSUN-Crop, LSUN-Resize, iSUN; flat or in
    /// class sub-folders) with the paper's preprocessing (shorter side to --size, center crop),
    /// or an SVHN cropped-digits .mat file (--svhn).
    Convert {
        /// Image folder, or the SVHN .mat file with --source svhn-mat.
        input: PathBuf,
        /// Output .npy (written atomically).
        #[arg(long, value_name = "NPY")]
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
        /// How folder images are brought to one size: the paper's shorter side to --size then
        /// center crop, or `none` (kept as stored, --size ignored; every image must have the
        /// same size): LSUN-Crop, LSUN-Resize and iSUN, which the code of record feeds unresized.
        #[arg(long, value_enum, default_value_t = ConvertResize::ShorterSideCenterCrop)]
        resize: ConvertResize,
    },
    /// Write a PNG montage of samples of a dataset, a built set (fmnist-ood/ood_test/mnist) or a .npy file.
    /// `fmnist-ood` alone writes one montage per built array into a folder.
    Show {
        name: String,
        /// Output PNG; default <cache>/montages/<name>.png.
        #[arg(long, value_name = "PNG")]
        out: Option<PathBuf>,
        /// Output folder of `fmnist-ood` alone (one PNG per array); default
        /// <cache>/montages/fmnist-ood.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
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

/// `data build` targets.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum BuildTarget {
    /// The Fashion-MNIST OOD benchmark (docs/datasets.md).
    FmnistOod,
    /// A seeded subset of the Places365 test images from the release tar, with a manifest.
    Places365,
}

/// `data convert --color`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Color {
    Rgb,
    Gray,
}

/// `data convert --resize`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ConvertResize {
    ShorterSideCenterCrop,
    None,
}

/// `data convert --source`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An image folder (flat or in class sub-folders).
    Folder,
    /// SVHN's cropped-digits .mat file (test_32x32.mat).
    SvhnMat,
}

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
            what: BuildTarget::FmnistOod,
            seed,
            out_dir,
            allow_missing,
            ..
        } => build(&loc, seed, out_dir, allow_missing, progress),
        Command::Build {
            what: BuildTarget::Places365,
            seed,
            out_dir,
            archive,
            images,
            ..
        } => {
            let Some(archive) = archive else {
                bail!("data build places365 needs --archive test_256.tar (the Places365 release)");
            };
            check_range("--images", images, 1, 10_000_000)?;
            let out = out_dir.unwrap_or_else(|| loc.cache.built("places365-subset"));
            let m =
                ood_data::formats::tar_subset::build_image_subset(&archive, &out, images, seed)?;
            println!(
                "{}: {} of {} images (seed {seed}, source SHA-256 {}); convert with `eood data convert {}`",
                out.display(),
                m.members.len(),
                m.candidates,
                &m.source_sha256[..16],
                out.join("images").display()
            );
            Ok(())
        }
        Command::Convert {
            input,
            out,
            size,
            color,
            source,
            resize,
        } => {
            check_range("--size", size, 1, MAX_CONVERT_SIZE)?;
            let size = (resize == ConvertResize::ShorterSideCenterCrop).then_some(size);
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
            out_dir,
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
            show::show(&loc, &name, out, out_dir, &spec)
        }
    }
}

fn build(
    loc: &Locations,
    seed: u64,
    out_dir: Option<PathBuf>,
    allow_missing: bool,
    progress: bool,
) -> anyhow::Result<()> {
    let out = out_dir.unwrap_or_else(|| loc.cache.built(fmnist_ood::DIR_NAME));
    let cfg = BuildConfig {
        seed,
        ..BuildConfig::default()
    };
    let start = std::time::Instant::now();
    let m = fmnist_ood::build(loc, &out, &cfg, allow_missing, progress)?;
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

pub(super) fn built_dir(loc: &Locations) -> anyhow::Result<PathBuf> {
    let dir = loc.cache.built(fmnist_ood::DIR_NAME);
    if !dir.join("manifest.json").is_file() {
        bail!(
            "{} is not built: run `eood data build fmnist-ood`",
            dir.display()
        );
    }
    Ok(dir)
}
