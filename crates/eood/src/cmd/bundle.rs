//! `eood bundle create|check|decide`: deployable detector bundles (crates/ood-bundle,
//! docs/deploy.md). ONNX bundles run through tract, so this command is in the no-libtorch build
//! (`--no-default-features`); bundles of the libtorch kinds (checkpoint, state_dict,
//! TorchScript) run in the default build ([`super::bundle_torch`]) and are refused in one line
//! naming the `nn` feature without it. `decide` is `eood detect --bundle` (one implementation: [`super::detect_bundle`]).

use std::path::{Path, PathBuf};

use anyhow::bail;
use ood_bundle::create::{contract_from_checkpoint, create_with, CreateOptions};
use ood_bundle::{Bundle, InputContract, ModelKind, ModelLoader, ResizeRule, WrnArch};
use ood_data::transforms::Filter;

use crate::args::{ArchArgs, ModelArgs, ModelRef};
use crate::cmd::detect_bundle::{self, Format};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Write a bundle folder from a model, its input contract and a calibrated detector.
    Create(CreateArgs),
    /// Verify a bundle: checksums, and the model runs on a zero input with K = class names.
    Check(CheckArgs),
    /// Decisions for image files or an image batch with a bundle (= `eood detect --bundle`).
    Decide(DecideArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The model; a checkpoint brings its input contract, the other kinds take it from
    /// --input-from or --input/--mean/--std.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Architecture of a --state-dict.
    #[command(flatten)]
    pub arch: ArchArgs,
    /// A checkpoint sidecar whose input contract (size, channels, mean/std) and provenance the
    /// model has, e.g. the checkpoint an --onnx model was exported from.
    #[arg(long, value_name = "JSON", conflicts_with = "input")]
    pub input_from: Option<PathBuf>,
    /// Model input HxWxC (C = 1 or 3), with --mean and --std, instead of --input-from.
    #[arg(long, value_name = "HxWxC", requires_all = ["mean", "std"])]
    pub input: Option<String>,
    /// Per-channel mean of [0, 1] pixels, comma-separated (with --input).
    #[arg(long, value_delimiter = ',', requires = "input")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std of [0, 1] pixels, comma-separated (with --input).
    #[arg(long, value_delimiter = ',', requires = "input")]
    pub std: Option<Vec<f32>>,
    /// Calibrated detector (`eood calibrate --out`).
    #[arg(long)]
    pub detector: PathBuf,
    /// Fitted zoo detector file, for methods that are not plain logit scores.
    #[arg(long)]
    pub fitted: Option<PathBuf>,
    /// Class names, one a line (default: the class ids).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// How images of another size are resized.
    #[arg(long, value_enum, default_value_t = Resize::ShorterSideCenterCrop)]
    pub resize: Resize,
    /// Resampling filter of the resize.
    #[arg(long, value_enum, default_value_t = FilterArg::Bilinear)]
    pub filter: FilterArg,
    /// Bundle folder to write (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Replace an existing bundle in --out-dir.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Resize {
    Stretch,
    ShorterSideCenterCrop,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum FilterArg {
    Bilinear,
    Area,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Bundle folder.
    pub dir: PathBuf,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("inputs").required(true).args(["files", "images"])))]
pub struct DecideArgs {
    /// Bundle folder.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    /// Image files (PNG, JPEG, BMP, TGA, GIF).
    #[arg(value_name = "IMAGES")]
    pub files: Vec<PathBuf>,
    /// A uint8 image batch, N x H x W (x C) .npy.
    #[arg(long, value_name = "NPY", conflicts_with = "files")]
    pub images: Option<PathBuf>,
    /// Output on stdout: JSON lines, an aligned table, or CSV.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Sub::Create(a) => run_create(a),
        Sub::Check(a) => run_check(a),
        Sub::Decide(a) => detect_bundle::run(&a.bundle, &a.files, a.images.as_deref(), a.format),
    }
}

/// The model loader of this build: libtorch kinds with `nn`, ONNX only without.
fn loader() -> Box<dyn ModelLoader> {
    #[cfg(feature = "nn")]
    {
        Box::new(super::bundle_torch::TorchLoader::cpu())
    }
    #[cfg(not(feature = "nn"))]
    {
        Box::new(ood_bundle::OnnxOnly)
    }
}

/// Load and verify a bundle with this build's model loader.
pub fn load(dir: &Path) -> anyhow::Result<Bundle> {
    Ok(Bundle::load_with(dir, &*loader())?)
}

/// Load a bundle for `workers` model threads: a libtorch model gets one replica per thread,
/// each with its share of the cores as libtorch threads (ONNX: tract runs each call on the
/// calling thread, so there is nothing to split).
pub fn load_for_serving(dir: &Path, workers: usize) -> anyhow::Result<Bundle> {
    #[cfg(feature = "nn")]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ood_nn::tch::set_num_threads((cores / workers.max(1)).max(1) as i32);
        let loader = super::bundle_torch::TorchLoader::cpu().with_replicas(workers);
        Ok(Bundle::load_with(dir, &loader)?)
    }
    #[cfg(not(feature = "nn"))]
    {
        let _ = workers;
        load(dir)
    }
}

fn kind_of(model: ModelRef<'_>) -> (ModelKind, &Path) {
    match model {
        ModelRef::Checkpoint(p) => (ModelKind::Checkpoint, p),
        ModelRef::StateDict(p) => (ModelKind::StateDict, p),
        ModelRef::TorchScript(p) => (ModelKind::TorchScript, p),
        ModelRef::Onnx(p) => (ModelKind::Onnx, p),
    }
}

/// `HxWxC` of --input.
fn parse_input(s: &str) -> anyhow::Result<[usize; 3]> {
    let dims: Vec<Option<usize>> = s.split(['x', 'X']).map(|d| d.trim().parse().ok()).collect();
    match dims.as_slice() {
        [Some(h), Some(w), Some(c)] => Ok([*h, *w, *c]),
        _ => bail!("--input must be HxWxC, e.g. 28x28x1, got {s:?}"),
    }
}

/// The input contract and provenance: the checkpoint's own, --input-from's, or --input's.
fn contract(
    a: &CreateArgs,
) -> anyhow::Result<(
    InputContract,
    Option<std::collections::BTreeMap<String, String>>,
)> {
    let sidecar = match (a.model.source(), &a.input_from) {
        (_, Some(p)) => Some(p.as_path()),
        (ModelRef::Checkpoint(p), None) => Some(p),
        _ => None,
    };
    let (mut input, source) = match (sidecar, &a.input) {
        (Some(p), _) => {
            let (c, s) = contract_from_checkpoint(p)?;
            (c, Some(s))
        }
        (None, Some(spec)) => {
            let [height, width, channels] = parse_input(spec)?;
            let contract = InputContract {
                height,
                width,
                channels,
                resize: ResizeRule::ShorterSideCenterCrop,
                filter: Filter::Bilinear,
                mean: a.mean.clone().unwrap_or_default(),
                std: a.std.clone().unwrap_or_default(),
            };
            if let Err(what) = contract.validate() {
                bail!("--input/--mean/--std: {what}");
            }
            (contract, None)
        }
        (None, None) => bail!(
            "the input contract of {} is unknown: give --input-from CHECKPOINT.json or --input HxWxC --mean M --std S",
            a.model.path().display()
        ),
    };
    input.resize = match a.resize {
        Resize::Stretch => ResizeRule::Stretch,
        Resize::ShorterSideCenterCrop => ResizeRule::ShorterSideCenterCrop,
    };
    input.filter = match a.filter {
        FilterArg::Bilinear => Filter::Bilinear,
        FilterArg::Area => Filter::Area,
    };
    Ok((input, source))
}

fn run_create(a: CreateArgs) -> anyhow::Result<()> {
    let (kind, model) = kind_of(a.model.source());
    let (input, source) = contract(&a)?;
    let architecture = (kind == ModelKind::StateDict).then(|| WrnArch {
        depth: a.arch.depth,
        widen_factor: a.arch.widen_factor,
        num_classes: a.arch.num_classes.unwrap_or(10),
    });
    let m = create_with(
        &CreateOptions {
            model: model.to_path_buf(),
            kind,
            architecture,
            input,
            detector: a.detector,
            fitted: a.fitted,
            labels: a.labels,
            out_dir: a.out_dir.clone(),
            source,
            force: a.force,
        },
        &*loader(),
    )?;
    eprintln!(
        "wrote bundle {} ({} model, {} classes, {} with tau = {}, input {})",
        a.out_dir.display(),
        m.model.kind,
        m.labels.len(),
        m.scoring.method,
        m.scoring.tau,
        input_size(&m.input)
    );
    Ok(())
}

fn run_check(a: CheckArgs) -> anyhow::Result<()> {
    let b = load(&a.dir)?;
    let (k, d) = b.self_test()?;
    let m = b.manifest();
    println!(
        "ok: {} ({} {}, {k} classes, {d} features, {} tau = {}, input {})",
        a.dir.display(),
        m.model.kind,
        m.model.file,
        m.scoring.method,
        m.scoring.tau,
        input_size(&m.input)
    );
    Ok(())
}

/// `H x W x C` of a bundle's input as the summaries print it (`32x32x3`).
fn input_size(input: &InputContract) -> String {
    format!("{}x{}x{}", input.height, input.width, input.channels)
}
