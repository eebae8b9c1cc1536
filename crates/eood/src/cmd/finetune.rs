//! `eood finetune`: fine-tune a pretrained WideResNet with auxiliary outliers, as the energy-OOD
//! code of record does (`CIFAR/train.py`): 10 epochs, lr 0.001 cosine-annealed per step to 1e-6,
//! each step one forward pass over 128 in-distribution images followed by 256 outliers, with
//! - `--loss energy`: CE + 0.1 * (mean(relu(E_in - m_in)^2) + mean(relu(m_out - E_out)^2)),
//!   E = -logsumexp(logits); code-of-record margins m_in -23, m_out -5 (CIFAR-10); `auto` picks
//!   each margin as the pretrained model's mean energy on (up to 2048) training images / outliers;
//! - `--loss oe`: Outlier Exposure, CE + 0.5 * mean over outliers of CE to the uniform distribution.
//!
//! `--m-in-grid`/`--m-out-grid` follow the paper's validation recipe instead: one fine-tuning run
//! per margin pair from the same pretrained weights (`<name>.grid-<i>.json`), each scored by the
//! mean FPR at 95% TPR of -E on the validation OOD sets (never the test sets), among the pairs
//! that keep the ID validation accuracy when labels are given (`grid` module); the best is saved
//! as `--out` and the whole table as `<name>.grid.json`.
//!
//! `--outlier-bn` says how BatchNorm sees the outliers: `joint` is the code of record's single
//! pass over the concatenation; `id-statistics` forwards the outliers separately with BatchNorm
//! in evaluation mode, so its statistics come from ID images only; `frozen` runs every
//! BatchNorm in evaluation mode, so the pre-trained statistics never move (see
//! `ood_nn::train::OutlierBatchNorm` and docs/experiments.md for the measurements).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ood_data::batch::ImageSource;
use ood_data::formats::outliers::{open_outliers as open_outliers_file, OutlierKind};
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::losses::{energy, FinetuneLoss};
use ood_nn::tch::{self, nn::VarStore, Device, Kind};
use ood_nn::train::{self, batch_tensors, RunConfig, RunData};
use ood_nn::{pytorch, state_dict, WideResNet};

use super::train::{arch_for, loaders, report_run, DataArgs};
use crate::args::{ArchArgs, CheckpointOutArgs, DeviceArgs, ModelArgs, ModelRef, OptimizerArgs};
use ood_core::limits::check_range;

mod grid;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Energy-bounded loss (Liu et al. 2020).
    Energy,
    /// Outlier Exposure (Hendrycks et al. 2019).
    Oe,
}

/// `--outlier-order`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum OutlierOrder {
    Offset,
    Shuffle,
}

/// How BatchNorm sees the outliers (`ood_nn::train::OutlierBatchNorm`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum OutlierBn {
    /// One training-mode pass over ID images and outliers together (the code of record).
    Joint,
    /// ID batch in training mode, outliers normalised by the running ID statistics.
    IdStatistics,
    /// Every BatchNorm in evaluation mode: the pre-trained running statistics never move.
    Frozen,
}

impl From<OutlierBn> for train::OutlierBatchNorm {
    fn from(b: OutlierBn) -> Self {
        match b {
            OutlierBn::Joint => train::OutlierBatchNorm::Joint,
            OutlierBn::IdStatistics => train::OutlierBatchNorm::IdStatistics,
            OutlierBn::Frozen => train::OutlierBatchNorm::Frozen,
        }
    }
}

/// A margin: a number, or `auto` (mean energy of the pretrained model on the data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Margin {
    Auto,
    Value(f64),
}

fn parse_margin(s: &str) -> Result<Margin, String> {
    if s == "auto" {
        return Ok(Margin::Auto);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Margin::Value(v)),
        _ => Err(format!("expected a number or `auto`, got {s:?}")),
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    /// The pretrained model: our checkpoint or a PyTorch state_dict (not TorchScript).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Architecture of a --state-dict (a checkpoint records its own).
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Auxiliary outliers, streamed: N x H x W x C uint8 .npy (e.g. 300K_random_images.npy), or
    /// the raw 80M Tiny Images tiny_images.bin (default with --fmnist-ood: its aux_outliers.npy).
    #[arg(long, value_name = "NPY|BIN")]
    pub outliers: Option<PathBuf>,
    /// Tiny Images records left out of a .bin --outliers: the code of record's
    /// 80mn_cifar_idxs.txt (1-based, one per line; the CIFAR test overlaps).
    #[arg(long, value_name = "TXT")]
    pub outlier_exclusion: Option<PathBuf>,
    /// Outlier order of each epoch: `offset` reads on from a random offset (the code of record's
    /// Tiny Images loader; default for a .bin), `shuffle` a seeded permutation (default for .npy).
    #[arg(long, value_enum)]
    pub outlier_order: Option<OutlierOrder>,
    /// Fine-tuning objective.
    #[arg(long, value_enum, default_value_t = LossKind::Energy)]
    pub loss: LossKind,
    /// In-distribution energy margin (energy loss), or `auto`.
    #[arg(long, default_value = "-23", value_parser = parse_margin, allow_hyphen_values = true)]
    pub m_in: Margin,
    /// Outlier energy margin (energy loss), or `auto`.
    #[arg(long, default_value = "-5", value_parser = parse_margin, allow_hyphen_values = true)]
    pub m_out: Margin,
    /// Select m_in from these values by validation FPR95 (energy loss), e.g. `-19,-23,-27`.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "m_out_grid",
        value_name = "LIST"
    )]
    pub m_in_grid: Vec<f64>,
    /// Select m_out from these values by validation FPR95 (energy loss), e.g. `-3,-5,-7`.
    #[arg(
        long,
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "m_in_grid",
        value_name = "LIST"
    )]
    pub m_out_grid: Vec<f64>,
    /// In-distribution validation images for the grid (default with --fmnist-ood: val_x.npy).
    #[arg(long, value_name = "NPY")]
    pub val_images: Option<PathBuf>,
    /// Labels of --val-images (default with --fmnist-ood: val_y.npy, when --val-images is not
    /// given); with them the grid keeps only points within --accuracy-tolerance of the
    /// pretrained model's validation accuracy.
    #[arg(long, value_name = "NPY")]
    pub val_labels: Option<PathBuf>,
    /// Largest loss of ID validation accuracy a chosen grid point may have (fraction, 0 to 1).
    #[arg(long, default_value_t = ood_nn::margin_search::ACCURACY_TOLERANCE)]
    pub accuracy_tolerance: f64,
    /// Validation OOD sets for the grid (default with --fmnist-ood: every ood_val/*.npy).
    #[arg(long, value_name = "NPY", num_args = 1..)]
    pub val_ood: Vec<PathBuf>,
    /// Weight of the outlier term, in [0, 1000] (default: 0.1 for energy, 0.5 for oe).
    #[arg(long, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// Outliers per step, 1 to 65536 (concatenated after the in-distribution batch).
    #[arg(long, default_value_t = 256)]
    pub outlier_batch_size: usize,
    /// How BatchNorm sees the outliers: `joint` (the code of record) by default;
    /// `id-statistics` (outliers by the ID running statistics) or `frozen` (every BatchNorm in
    /// evaluation mode); measurements in docs/experiments.md.
    #[arg(long, value_enum, default_value_t = OutlierBn::Joint)]
    pub outlier_bn: OutlierBn,
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub output: CheckpointOutArgs,
}
/// Mean energy of `net` over the first `limit` images of a loader (evaluation mode).
fn mean_energy(
    net: &WideResNet,
    loader: &ood_data::batch::BatchLoader,
    limit: usize,
    device: Device,
) -> anyhow::Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let (x, _) = batch_tensors(&batch, device)?;
        let e = tch::no_grad(|| energy(&net.forward(&x, false)));
        sum += e.sum(Kind::Double).double_value(&[]);
        n += batch.indices.len();
        if n >= limit {
            break;
        }
    }
    if n == 0 {
        bail!("no images to estimate a margin from");
    }
    Ok(sum / n as f64)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let from = args.model.path().to_path_buf();
    let mut inputs = args.data.inputs();
    inputs.extend(args.outliers.clone());
    inputs.extend(args.outlier_exclusion.clone());
    inputs.push(from.clone());
    args.output
        .check(&inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let base = args
        .optimizer
        .apply(RunConfig::finetune(FinetuneLoss::OutlierExposure {
            lambda: 0.5,
        }))?;
    check_range("--outlier-batch-size", args.outlier_batch_size, 1, 65_536)?;
    check_range("--accuracy-tolerance", args.accuracy_tolerance, 0.0, 1.0)?;
    if let Some(l) = args.lambda {
        check_range("--lambda", l, 0.0, 1000.0)?;
    }
    if let ModelRef::TorchScript(p) | ModelRef::Onnx(p) = args.model.source() {
        bail!(
            "{}: a TorchScript or ONNX model cannot be fine-tuned; give --checkpoint or --state-dict",
            p.display()
        );
    }
    let device = args.device.tch()?;
    let sets = args.data.open()?;
    let (outliers, outlier_kind) = open_outliers(&args, &sets)?;
    let vs = VarStore::new(device);
    let model = Pretrained::load(&args, &sets, &from)?;
    tch::manual_seed(base.seed as i64);
    let net = WideResNet::new(&vs.root(), &model.arch)?;
    state_dict::load_into(&vs, &model.weights)
        .with_context(|| format!("loading {}", from.display()))?;
    let spec = &model.spec;

    let workers = args.data.runtime.workers;
    let (train_loader, test_loader) =
        loaders(&sets, spec, base.batch_size, true, base.seed, workers)?;
    let outlier_loader = loader(
        outliers.clone(),
        spec.train_pipeline(),
        args.outlier_batch_size,
        true,
        base.seed.wrapping_add(1),
        workers,
    )?;
    let offset = match args.outlier_order {
        Some(o) => o == OutlierOrder::Offset,
        None => outlier_kind == OutlierKind::TinyImages,
    };
    let outlier_loader = if offset {
        outlier_loader.with_random_offset()
    } else {
        outlier_loader
    };
    let loss = finetune_loss(&args, &net, spec, &sets.train, &outliers, device)?;
    let config = RunConfig {
        objective: train::Objective::Finetune(loss),
        outlier_batch_size: args.outlier_batch_size,
        outlier_batchnorm: args.outlier_bn.into(),
        ..base
    };
    let data = RunData {
        train: &train_loader,
        outliers: Some(&outlier_loader),
        test: test_loader.as_ref(),
    };
    let progress = args.data.runtime.progress();
    if !args.m_in_grid.is_empty() {
        let model = (&vs, &net, model.weights.as_slice());
        return grid::grid_search(&args, model, spec, &config, &data, device);
    }
    let mut meta = CheckpointMeta::new(model.arch.clone(), serde_json::Value::Null, config.seed);
    meta.input = Some(spec.clone());
    let output = args.output.run_output(progress);
    if progress {
        eprintln!(
            "fine-tuning {} from {} with {:?}: {} images + {} outliers, {} epochs",
            model.arch.name(),
            from.display(),
            loss,
            sets.train.len(),
            outliers.len(),
            config.epochs
        );
    }
    let logs = train::run(&vs, &net, &config, &data, &mut meta, &output);
    report_run("fine-tuning", logs, &output, &meta, config.epochs)
}

/// `--outliers`, or the fmnist-ood folder's `aux_outliers.npy`, of the training images' size.
fn open_outliers(
    args: &Args,
    sets: &super::train::Sets,
) -> anyhow::Result<(Arc<dyn ImageSource>, OutlierKind)> {
    let path = match (&args.outliers, &args.data.fmnist_ood) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => dir.join("aux_outliers.npy"),
        (None, None) => bail!("give --outliers NPY (auxiliary outlier images)"),
    };
    let (outliers, kind) = open_outliers_file(&path, args.outlier_exclusion.as_deref())?;
    if outliers.image_shape() != sets.train.image_shape() {
        bail!(
            "outliers are {:?} (H, W, C) but training images {:?}",
            outliers.image_shape(),
            sets.train.image_shape()
        );
    }
    Ok((outliers, kind))
}

/// The pretrained model: its architecture, input spec and weights.
struct Pretrained {
    arch: ood_nn::WrnConfig,
    spec: InputSpec,
    weights: Vec<(String, tch::Tensor)>,
}

impl Pretrained {
    /// From our checkpoint (which records its architecture and input) or a PyTorch state dict
    /// (architecture from the flags); its input size must be the data's.
    fn load(args: &Args, sets: &super::train::Sets, from: &Path) -> anyhow::Result<Self> {
        let (h, w, c) = sets.train.image_shape();
        let model = if matches!(args.model.source(), ModelRef::Checkpoint(_)) {
            let ck = checkpoint::load(from)?;
            Pretrained {
                arch: ck.meta.architecture.clone(),
                spec: ck
                    .meta
                    .input
                    .unwrap_or_else(|| InputSpec::default_for(h, w, c)),
                weights: ck.weights,
            }
        } else {
            Pretrained {
                arch: arch_for(&args.arch, sets)?,
                spec: InputSpec::default_for(h, w, c),
                weights: pytorch::load_state_dict(from)?,
            }
        };
        let spec = &model.spec;
        if (spec.height, spec.width, spec.channels) != (h, w, c) {
            bail!(
                "{} expects {}x{}x{} images, the data has {:?}",
                from.display(),
                spec.height,
                spec.width,
                spec.channels,
                (h, w, c)
            );
        }
        Ok(model)
    }
}

/// The fine-tuning loss of `--loss`, with `auto` margins measured on the pretrained model.
fn finetune_loss(
    args: &Args,
    net: &WideResNet,
    spec: &InputSpec,
    train: &Arc<NpySet>,
    outliers: &Arc<dyn ImageSource>,
    device: Device,
) -> anyhow::Result<FinetuneLoss> {
    if args.loss == LossKind::Oe {
        return Ok(FinetuneLoss::OutlierExposure {
            lambda: args.lambda.unwrap_or(0.5),
        });
    }
    let auto = |which: &str, set: Arc<dyn ImageSource>| -> anyhow::Result<f64> {
        let l = loader(
            set,
            spec.test_pipeline(),
            256,
            false,
            0,
            args.data.runtime.workers,
        )?;
        let m = mean_energy(net, &l, 2048, device)?;
        if args.data.runtime.progress() {
            eprintln!("auto margin {which} = {m:.3} (mean energy of the pretrained model)");
        }
        Ok(m)
    };
    let m_in = match args.m_in {
        Margin::Value(v) => v,
        Margin::Auto => auto("m_in", train.clone() as Arc<dyn ImageSource>)?,
    };
    let m_out = match args.m_out {
        Margin::Value(v) => v,
        Margin::Auto => auto("m_out", outliers.clone())?,
    };
    Ok(FinetuneLoss::Energy {
        m_in,
        m_out,
        lambda: args.lambda.unwrap_or(0.1),
    })
}
