//! `eood bench`: the paper's evaluation end to end, in one results folder (tables as markdown,
//! CSV and JSON; figures as PNG and SVG; config, seeds, versions, machine, timings).
//!
//! ```text
//! eood bench fmnist-ood [--quick] [--shipped | --checkpoint CKPT] [--out-dir DIR] [--seed S] [--threads N]
//! eood bench cifar10|cifar100|svhn --data DIR [--prepare-from RELEASE_DIR] [--device cuda]
//!            [--checkpoint CKPT | --state-dict PRETRAINED.pt [--mean M --std S]]
//!            [--oe-checkpoint CKPT | --oe-state-dict OE.pt]
//!            [--energy-ft-checkpoint CKPT | --energy-ft-state-dict FT.pt]
//! ```
//! The model flags follow `args::ModelArgs`' grammar (docs/cli.md); the architecture and the
//! recipe default to the benchmark's preset (`Plan::for_paper`: WRN-40-2 for CIFAR, OE's
//! WRN-16-4 SVHN baseline for SVHN).
//! Steps: (1) pretrain, or load the given model; (2) score the ID and OOD test sets with MSP,
//! energy (T = 1), ODIN and Mahalanobis, their hyper-parameters chosen on the validation OOD
//! sets; (3) fine-tune with Outlier Exposure and the energy-bounded loss (margins chosen on
//! validation data, or the code of record's for CIFAR), score again; (4) Table 1, Table 2,
//! Figures 3, 4a, 4b, a calibrated detector. See docs/experiments.md.
use std::path::{Path, PathBuf};

use crate::args::{
    BenchModelArgs, DeviceArgs, ModelRef, NormalizeArgs, PresetArchArgs, RuntimeArgs,
};
use anyhow::{bail, Context};
use ood_data::cache::Cache;
use ood_experiments::bench::cifar::{self, PaperBench};
use ood_experiments::bench::data::{BenchData, FMNIST_OOD_TEST};
use ood_experiments::bench::finetune::Weights;
use ood_experiments::bench::{self, BenchDir, Models, Options, Plan};
use ood_nn::WrnConfig;

/// The shipped Fashion-MNIST model (relative to the repository root).
pub const SHIPPED_MODEL: &str = "models/fmnist-wrn-10-1.json";

/// The benchmarks `eood bench` runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Benchmark {
    /// Fashion-MNIST vs six OOD sets (runs on CPU).
    FmnistOod,
    /// The paper's CIFAR-10 benchmark (GPU advised).
    Cifar10,
    /// The paper's CIFAR-100 benchmark (GPU advised).
    Cifar100,
    /// The paper's SVHN benchmark (GPU advised).
    Svhn,
}

impl Benchmark {
    /// The name on the command line and in results folders.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::FmnistOod => "fmnist-ood",
            Benchmark::Cifar10 => "cifar10",
            Benchmark::Cifar100 => "cifar100",
            Benchmark::Svhn => "svhn",
        }
    }

    /// The paper's benchmark, or `None` for fmnist-ood.
    fn paper(self) -> Option<PaperBench> {
        match self {
            Benchmark::FmnistOod => None,
            Benchmark::Cifar10 => Some(PaperBench::Cifar10),
            Benchmark::Cifar100 => Some(PaperBench::Cifar100),
            Benchmark::Svhn => Some(PaperBench::Svhn),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which benchmark.
    #[arg(value_enum)]
    pub benchmark: Benchmark,
    /// Smoke version: small subsets everywhere (a few minutes on 2 cores).
    #[arg(long)]
    pub quick: bool,
    /// The models: `--shipped | --checkpoint | --state-dict`, `--oe-checkpoint |
    /// --oe-state-dict`, `--energy-ft-checkpoint | --energy-ft-state-dict`.
    #[command(flatten)]
    pub models: BenchModelArgs,
    /// `--depth/--widen-factor/--dropout`, defaulting to the benchmark's preset.
    #[command(flatten)]
    pub arch: PresetArchArgs,
    /// `--mean/--std` of the inputs of a --state-dict (and of the model the run pretrains).
    #[command(flatten)]
    pub normalize: NormalizeArgs,
    /// Benchmark folder (fmnist-ood layout). Default for fmnist-ood: <cache>/fmnist-ood.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Data cache whose built fmnist-ood is the default --data (default: $EOOD_CACHE, else the
    /// repository's .cache, else the user cache).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// CIFAR/SVHN: first write the ID part of --data from the original release files in this folder.
    #[arg(long, value_name = "DIR")]
    pub prepare_from: Option<PathBuf>,
    /// With --prepare-from: training images held out as ID validation data.
    #[arg(long, default_value_t = 5000)]
    pub val_images: usize,
    /// With --prepare-from: images per synthetic validation OOD set.
    #[arg(long, default_value_t = 2000)]
    pub val_ood_images: usize,
    /// Results folder (default results/<benchmark>[-quick]); `--out` is the old name.
    #[arg(long, value_name = "DIR", alias = "out")]
    pub out_dir: Option<PathBuf>,
    /// Seeds subsets, training, fine-tuning and the OOD draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Score the pre-trained model only (no fine-tuning).
    #[arg(long)]
    pub no_finetune: bool,
    /// Pretraining epochs when no model is given (default: the plan's).
    #[arg(long)]
    pub pretrain_epochs: Option<u64>,
    /// Fine-tuning epochs (default: the plan's).
    #[arg(long)]
    pub finetune_epochs: Option<u64>,
    /// In-distribution images per fine-tuning epoch (0 = the whole training set).
    #[arg(long)]
    pub finetune_images: Option<usize>,
    /// Energy margins m_in,m_out instead of the validation grid (e.g. -23,-5).
    #[arg(long, value_name = "M_IN,M_OUT", allow_hyphen_values = true)]
    pub margins: Option<String>,
    /// How BatchNorm sees the outliers when fine-tuning (default: the plan's; see
    /// `eood finetune --outlier-bn`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub finetune_bn: Option<super::finetune::OutlierBn>,
    /// Offsets from the ID mean energy that make the m_in grid (e.g. -4,0), instead of the
    /// plan's; the m_out grid stays. Not with --margins (fixed margins have no grid).
    #[arg(
        long,
        value_name = "OFFSETS",
        allow_hyphen_values = true,
        conflicts_with = "margins"
    )]
    pub margin_offsets_in: Option<String>,
    /// Offsets that make the m_out grid from its base, `max(round(mean outlier energy), max m_in
    /// + gap)` (e.g. 0,4), instead of the plan's. Not with --margins.
    #[arg(
        long,
        value_name = "OFFSETS",
        allow_hyphen_values = true,
        conflicts_with = "margins"
    )]
    pub margin_offsets_out: Option<String>,
    /// The gap of that base: smallest m_out - m_in of the grid, >= 0 (Fashion-MNIST: 0; the
    /// earlier runs: 2). Not with --margins.
    #[arg(long, value_name = "GAP", conflicts_with = "margins")]
    pub margin_min_gap: Option<f64>,
    /// Number of OOD draws (paper: 10).
    #[arg(long)]
    pub draws: Option<usize>,
    /// `--threads`, `--workers` (one default with train/finetune), `--quiet`.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The shipped model: in `$EOOD_MODELS` when set, else `models/` of the checkout the current
/// directory is in (never a path compiled into the binary: an installed `eood` runs anywhere).
pub fn shipped_model() -> anyhow::Result<PathBuf> {
    let name = Path::new(SHIPPED_MODEL).file_name().expect("a file name");
    if let Some(dir) = std::env::var_os("EOOD_MODELS") {
        let p = Path::new(&dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "the shipped model is not in $EOOD_MODELS: {} does not exist",
            p.display()
        );
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Some(root) = ood_data::cache::find_repo_root(&cwd) {
        let p = root.join(SHIPPED_MODEL);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("the shipped model {SHIPPED_MODEL} is not here: run inside the checkout, set EOOD_MODELS to its models/ folder, or give --checkpoint")
}

fn parse_margins(s: &str) -> anyhow::Result<(f64, f64)> {
    let (a, b) = s
        .split_once(',')
        .context("--margins must be M_IN,M_OUT, e.g. -23,-5")?;
    let (a, b): (f64, f64) = (
        a.trim().parse().context("--margins m_in")?,
        b.trim().parse().context("--margins m_out")?,
    );
    // equal margins are a zero-width band (the Fashion-MNIST grid tries m_in = m_out)
    if !(a.is_finite() && b.is_finite() && a <= b) {
        bail!("--margins needs finite m_in <= m_out, got {a},{b}");
    }
    Ok((a, b))
}

/// `--margin-offsets-in` / `--margin-offsets-out` (`flag`): one to eight finite numbers,
/// comma-separated.
fn parse_offsets(flag: &str, s: &str) -> anyhow::Result<Vec<f64>> {
    let v = s
        .split(',')
        .map(|x| x.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect::<Option<Vec<f64>>>()
        .with_context(|| format!("{flag}: {s:?} is not a comma-separated list of numbers"))?;
    if v.is_empty() || v.len() > 8 {
        bail!("{flag} takes 1 to 8 offsets, got {}", v.len());
    }
    Ok(v)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = args.device.tch()?;
    args.runtime.check()?;
    let fmnist = args.benchmark == Benchmark::FmnistOod;
    let paper = args.benchmark.paper();
    if args.models.shipped && !fmnist {
        bail!(
            "--shipped is the Fashion-MNIST model; it does not apply to {}",
            args.benchmark.name()
        );
    }
    let data = bench_data(&args, paper)?;
    let plan = plan(&args, paper)?;
    let channels = ood_data::formats::npy_images::NpyImages::open(&data.train_x)?
        .image_shape()
        .2;
    let normalize = args.normalize.normalize(channels)?;
    let models = models(&args, &data, channels, &plan.arch)?;
    let out = args.out_dir.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "{}{}",
            args.benchmark.name(),
            if args.quick { "-quick" } else { "" }
        ))
    });
    let command = std::iter::once("eood".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let opts = Options {
        data,
        out,
        plan,
        models,
        seed: args.seed,
        device,
        threads: Some(args.runtime.threads()? as i32),
        finetune: !args.no_finetune,
        progress: args.runtime.progress(),
        command,
        workers: args.runtime.workers,
        normalize,
    };
    let outcome = bench::run(&opts)?;
    println!("{}", BenchDir::new(&outcome.dir).read_table2()?);
    println!(
        "results: {} ({:.0} s)",
        outcome.dir.display(),
        outcome.seconds
    );
    Ok(())
}

/// The benchmark folder: --data, or the cache's built fmnist-ood; prepared first from the
/// release files with --prepare-from.
fn bench_data(args: &Args, paper: Option<PaperBench>) -> anyhow::Result<BenchData> {
    let data_dir = match (&args.data, paper) {
        (Some(d), _) => d.clone(),
        (None, None) => Cache::locate(args.cache.as_deref()).0.built("fmnist-ood"),
        (None, Some(_)) => bail!(
            "{} needs --data DIR (see docs/experiments.md)",
            args.benchmark.name()
        ),
    };
    if let (Some(src), Some(p)) = (&args.prepare_from, paper) {
        if args.runtime.progress() {
            eprintln!(
                "preparing {} from {} into {}",
                p.name(),
                src.display(),
                data_dir.display()
            );
        }
        let (tr, va, te) = cifar::prepare(
            p,
            src,
            &data_dir,
            args.val_images,
            args.val_ood_images,
            args.seed,
        )?;
        if args.runtime.progress() {
            eprintln!(
                "wrote {tr} training, {va} validation, {te} test images and {} validation OOD sets",
                p.validation_sets().len()
            );
        }
    } else if args.prepare_from.is_some() {
        bail!("--prepare-from applies to cifar10, cifar100 and svhn");
    }
    Ok(match paper {
        None => {
            if !data_dir.join("manifest.json").is_file() {
                bail!(
                    "{} is not built: run `eood data build fmnist-ood` (or give --data DIR)",
                    data_dir.display()
                );
            }
            BenchData::from_layout("fmnist-ood", &data_dir, Some(FMNIST_OOD_TEST))?
        }
        Some(p) => BenchData::from_layout(p.name(), &data_dir, p.ood_test_sets())?,
    })
}

/// The plan of the benchmark (full or --quick) with the flags' overrides.
fn plan(args: &Args, paper: Option<PaperBench>) -> anyhow::Result<Plan> {
    let mut plan = match (paper, args.quick) {
        (None, false) => Plan::fmnist(),
        (None, true) => Plan::fmnist_quick(),
        (Some(p), quick) => Plan::for_paper(p, quick),
    };
    plan.arch = args.arch.apply(&plan.arch)?;
    if let Some(e) = args.pretrain_epochs {
        plan.pretrain_epochs = e;
    }
    if let Some(e) = args.finetune_epochs {
        plan.finetune_epochs = e;
    }
    if let Some(n) = args.finetune_images {
        plan.finetune_images = if n == 0 { None } else { Some(n) };
    }
    if let Some(m) = &args.margins {
        plan.margins = Some(parse_margins(m)?);
    }
    if let Some(b) = args.finetune_bn {
        plan.finetune_outlier_batchnorm = b.into();
    }
    if let Some(o) = &args.margin_offsets_in {
        plan.margin_offsets_in = parse_offsets("--margin-offsets-in", o)?;
    }
    if let Some(o) = &args.margin_offsets_out {
        plan.margin_offsets_out = parse_offsets("--margin-offsets-out", o)?;
    }
    if let Some(g) = args.margin_min_gap {
        if !(g.is_finite() && g >= 0.0) {
            bail!("--margin-min-gap must be a finite number >= 0, got {g}");
        }
        plan.margin_min_gap = g;
    }
    if let Some(d) = args.draws {
        if d == 0 {
            bail!("--draws must be at least 1");
        }
        plan.protocol.draws = d;
    }
    plan.protocol.seed = args.seed;
    if plan.pretrain_epochs == 0 || plan.finetune_epochs == 0 {
        bail!("--pretrain-epochs and --finetune-epochs must be positive");
    }
    Ok(plan)
}

/// The models given on the command line; a state_dict's input channels and classes come from
/// the data.
fn models(
    args: &Args,
    data: &BenchData,
    channels: usize,
    arch: &WrnConfig,
) -> anyhow::Result<Models> {
    let classes = ood_core::io::npy::read_labels(&data.train_y)?
        .into_iter()
        .max()
        .unwrap_or(0)
        + 1;
    let arch_for_data = WrnConfig {
        in_channels: channels as i64,
        num_classes: classes,
        ..arch.clone()
    };
    let exists = |p: &Path| -> anyhow::Result<PathBuf> {
        if !p.is_file() {
            bail!("{}: no such file", p.display());
        }
        Ok(p.to_path_buf())
    };
    let weights = |m: Option<ModelRef>| -> anyhow::Result<Option<Weights>> {
        Ok(match m {
            None => None,
            Some(ModelRef::Checkpoint(p)) => Some(Weights::Checkpoint(exists(p)?)),
            Some(ModelRef::StateDict(p)) => Some(Weights::StateDict {
                path: exists(p)?,
                arch: arch_for_data.clone(),
            }),
            // BenchModelArgs has no such flags: ODIN, Mahalanobis and fine-tuning need a WRN
            Some(ModelRef::TorchScript(p) | ModelRef::Onnx(p)) => bail!(
                "{}: bench takes WideResNet checkpoints and state_dicts only",
                p.display()
            ),
        })
    };
    let m = &args.models;
    let pretrained = if m.shipped {
        Some(Weights::Checkpoint(shipped_model()?))
    } else {
        weights(m.pretrained())?
    };
    Ok(Models {
        pretrained,
        oe: weights(m.oe())?,
        energy_ft: weights(m.energy_ft())?,
    })
}
