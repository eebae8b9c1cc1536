//! `eood bundle create|check|decide`: deployable detector bundles (crates/ood-bundle,
//! docs/deploy.md). Framework-free: ONNX models run through tract, so this command is in the
//! no-libtorch build (`--no-default-features`).

use std::path::PathBuf;

use ood_bundle::create::{contract_from_checkpoint, create, CreateOptions};
use ood_bundle::{Bundle, InputContract, ResizeRule};
use ood_data::formats::image_file::{decode_image, ColorMode};
use ood_data::transforms::Filter;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Write a bundle folder from an ONNX model, its input contract and a calibrated detector.
    Create(CreateArgs),
    /// Verify a bundle: checksums, and the model runs on a zero input with K = class names.
    Check(CheckArgs),
    /// Decisions for image files (PNG, JPEG, ...), one JSON line each, with a bundle.
    Decide(DecideArgs),
}

#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// The model, exported by scripts/export-onnx.py (outputs `logits` and `features`).
    #[arg(long)]
    pub onnx: PathBuf,
    /// eood checkpoint sidecar the ONNX was exported from: gives the input contract
    /// (size, channels, mean/std) and provenance.
    #[arg(long)]
    pub checkpoint: PathBuf,
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
    #[arg(long)]
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
pub struct DecideArgs {
    /// Bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Sub::Create(a) => run_create(a),
        Sub::Check(a) => run_check(a),
        Sub::Decide(a) => run_decide(a),
    }
}

fn run_create(a: CreateArgs) -> anyhow::Result<()> {
    let (mut input, source): (InputContract, _) = contract_from_checkpoint(&a.checkpoint)?;
    input.resize = match a.resize {
        Resize::Stretch => ResizeRule::Stretch,
        Resize::ShorterSideCenterCrop => ResizeRule::ShorterSideCenterCrop,
    };
    input.filter = match a.filter {
        FilterArg::Bilinear => Filter::Bilinear,
        FilterArg::Area => Filter::Area,
    };
    let m = create(&CreateOptions {
        onnx: a.onnx,
        input,
        detector: a.detector,
        fitted: a.fitted,
        labels: a.labels,
        out_dir: a.out_dir.clone(),
        source: Some(source),
        force: a.force,
    })?;
    eprintln!(
        "wrote bundle {} ({} classes, {} with tau = {}, input {}x{}x{})",
        a.out_dir.display(),
        m.labels.len(),
        m.scoring.method,
        m.scoring.tau,
        m.input.height,
        m.input.width,
        m.input.channels
    );
    Ok(())
}

fn run_check(a: CheckArgs) -> anyhow::Result<()> {
    let b = Bundle::load(&a.dir)?;
    let (k, d) = b.self_test()?;
    let m = b.manifest();
    println!(
        "ok: {} ({} {}, {k} classes, {d} features, {} tau = {}, input {}x{}x{})",
        a.dir.display(),
        m.model.kind,
        m.model.file,
        m.scoring.method,
        m.scoring.tau,
        m.input.height,
        m.input.width,
        m.input.channels
    );
    Ok(())
}

fn run_decide(a: DecideArgs) -> anyhow::Result<()> {
    let b = Bundle::load(&a.bundle)?;
    let mode = if b.manifest().input.channels == 1 {
        ColorMode::Gray
    } else {
        ColorMode::Rgb
    };
    let mut images = Vec::with_capacity(a.images.len());
    for p in &a.images {
        let bytes = ood_bundle::manifest::read_capped(p, "an image file", 64 << 20)?;
        images.push(decode_image(&bytes, p, mode)?);
    }
    let views: Vec<_> = images.iter().map(|i| i.view()).collect();
    for (p, d) in a.images.iter().zip(b.decide(&views)?) {
        let line = serde_json::json!({"file": p.display().to_string(), "decision": d});
        println!("{line}");
    }
    Ok(())
}
