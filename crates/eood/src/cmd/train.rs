//! `eood train`: a WideResNet from scratch, as the energy-OOD code of record pretrains it: SGD
//! with Nesterov momentum 0.9, weight decay 5e-4, lr 0.1 cosine-annealed per step to 1e-6,
//! batch 128, random crop (4-pixel padding) + horizontal flip. Writes a checkpoint (`--out`,
//! `<name>.json` + safetensors) after every epoch and a JSON line per epoch to
//! `<name>.log.jsonl`; `--resume` continues an interrupted run exactly.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use ood_data::batch::{BatchLoader, ImageSource};
use ood_nn::checkpoint::CheckpointMeta;
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::tch::{self, nn::VarStore, Device};
use ood_nn::train::{self, RunConfig, RunData, RunOutput};
use ood_nn::{WideResNet, WrnConfig};

/// Where the labelled in-distribution data comes from.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// A built Fashion-MNIST OOD benchmark folder (`eood data build fmnist-ood`): uses its
    /// train_x/train_y.npy for training and test_x/test_y.npy for the per-epoch test accuracy.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["train_images", "train_labels"])]
    pub fmnist_ood: Option<PathBuf>,
    /// Training images, N x H x W x C uint8 .npy.
    #[arg(long, value_name = "NPY", requires = "train_labels")]
    pub train_images: Option<PathBuf>,
    /// Training labels, N integers .npy.
    #[arg(long, value_name = "NPY")]
    pub train_labels: Option<PathBuf>,
    /// Test images for the per-epoch accuracy (optional).
    #[arg(long, value_name = "NPY", requires = "test_labels")]
    pub test_images: Option<PathBuf>,
    /// Test labels, N integers .npy.
    #[arg(long, value_name = "NPY")]
    pub test_labels: Option<PathBuf>,
    /// Threads building batches ahead of the model (0: on the training thread).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// libtorch intra-op threads (default: libtorch's choice, one per core).
    #[arg(long)]
    pub threads: Option<i32>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Opened data sets.
pub struct Sets {
    pub train: Arc<NpySet>,
    pub test: Option<Arc<NpySet>>,
}

impl DataArgs {
    pub fn open(&self) -> anyhow::Result<Sets> {
        let (train_x, train_y, test) =
            match (&self.fmnist_ood, &self.train_images, &self.train_labels) {
                (Some(dir), _, _) => (
                    dir.join("train_x.npy"),
                    dir.join("train_y.npy"),
                    Some((dir.join("test_x.npy"), dir.join("test_y.npy"))),
                ),
                (None, Some(x), Some(y)) => (x.clone(), y.clone(), None),
                _ => bail!("give --fmnist-ood DIR, or --train-images and --train-labels"),
            };
        let test = match (&self.test_images, &self.test_labels, test) {
            (Some(x), Some(y), _) => Some((x.clone(), y.clone())),
            (_, _, t) => t,
        };
        let train = Arc::new(NpySet::open(&train_x, Some(&train_y))?);
        let test = match test {
            Some((x, y)) => Some(Arc::new(NpySet::open(&x, Some(&y))?)),
            None => None,
        };
        if let Some(t) = &test {
            if t.image_shape() != train.image_shape() {
                bail!(
                    "test images are {:?} (H, W, C) but training images {:?}",
                    t.image_shape(),
                    train.image_shape()
                );
            }
        }
        if let Some(n) = self.threads {
            if n < 1 {
                bail!("--threads must be at least 1");
            }
            tch::set_num_threads(n);
        }
        Ok(Sets { train, test })
    }
}

/// The WideResNet flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ArchArgs {
    /// WideResNet depth, 6n+4 (code of record: 40).
    #[arg(long, default_value_t = 40)]
    pub depth: i64,
    /// Width multiplier k (code of record: 2).
    #[arg(long, default_value_t = 2)]
    pub widen_factor: i64,
    /// Dropout between the convolutions of a block (code of record: 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Number of classes (default: largest training label + 1).
    #[arg(long)]
    pub num_classes: Option<i64>,
}

impl ArchArgs {
    pub fn config(&self, sets: &Sets) -> anyhow::Result<WrnConfig> {
        let (_, _, c) = sets.train.image_shape();
        let labels_classes = sets.train.num_classes().unwrap_or(1);
        let num_classes = self.num_classes.unwrap_or(labels_classes);
        if num_classes < labels_classes {
            bail!(
                "--num-classes {num_classes} but the training labels go up to {}",
                labels_classes - 1
            );
        }
        let config = WrnConfig {
            depth: self.depth,
            widen_factor: self.widen_factor,
            dropout: self.dropout,
            num_classes,
            in_channels: c as i64,
        };
        config.blocks_per_stage()?;
        Ok(config)
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Checkpoint to write, `<name>.json` (weights go beside it as safetensors).
    #[arg(long, value_name = "JSON")]
    pub out: PathBuf,
    /// Epochs (paper: 100 for CIFAR).
    #[arg(long, default_value_t = 100)]
    pub epochs: u64,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Initial learning rate, cosine-annealed per step to --lr-min.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Final learning rate of the cosine schedule.
    #[arg(long, default_value_t = 1e-6)]
    pub lr_min: f64,
    /// Nesterov momentum of SGD.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay (applied to every parameter, as PyTorch's SGD).
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Seeds initialization, dropout, shuffling and augmentation.
    /// Seeds dropout, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Train without random crop and flip.
    #[arg(long)]
    pub no_augment: bool,
    /// Continue from --out if it exists (after an interruption).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs in this invocation (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

/// Loaders for training and testing with `spec`'s preprocessing.
pub fn loaders(
    sets: &Sets,
    spec: &InputSpec,
    batch_size: usize,
    augment: bool,
    seed: u64,
    workers: usize,
) -> anyhow::Result<(BatchLoader, Option<BatchLoader>)> {
    let pipeline = if augment {
        spec.train_pipeline()
    } else {
        spec.test_pipeline()
    };
    let train = loader(
        sets.train.clone() as Arc<dyn ImageSource>,
        pipeline,
        batch_size,
        true,
        seed,
        workers,
    )?;
    let test = match &sets.test {
        Some(t) => Some(loader(
            t.clone() as Arc<dyn ImageSource>,
            spec.test_pipeline(),
            256,
            false,
            0,
            workers,
        )?),
        None => None,
    };
    Ok((train, test))
}

pub fn check_positive(name: &str, v: f64) -> anyhow::Result<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{name} must be a positive number, got {v}");
    }
    Ok(())
}

pub fn check_out(out: &Path) -> anyhow::Result<()> {
    if out.extension().is_none_or(|e| e != "json") {
        bail!(
            "--out must name the checkpoint's JSON sidecar (<name>.json), got {}",
            out.display()
        );
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_out(&args.out)?;
    check_positive("--lr", args.lr)?;
    if args.batch_size == 0 || args.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    let sets = args.data.open()?;
    let arch = args.arch.config(&sets)?;
    let (h, w, c) = sets.train.image_shape();
    let spec = InputSpec::default_for(h, w, c);
    let (train_loader, test_loader) = loaders(
        &sets,
        &spec,
        args.batch_size,
        !args.no_augment,
        args.seed,
        args.data.workers,
    )?;

    tch::manual_seed(args.seed as i64);
    let vs = VarStore::new(Device::cuda_if_available());
    let net = WideResNet::new(&vs.root(), &arch)?;
    let config = RunConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        lr_min: args.lr_min,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        seed: args.seed,
        ..RunConfig::pretrain()
    };
    let mut meta = CheckpointMeta::new(arch.clone(), serde_json::Value::Null, args.seed);
    meta.input = Some(spec);
    let output = RunOutput {
        checkpoint: args.out.clone(),
        resume: args.resume,
        progress: !args.data.quiet,
        stop_after: args.stop_after,
    };
    if !args.data.quiet {
        eprintln!(
            "training {} ({} classes) on {} images of {h}x{w}x{c}, {} epochs, device {:?}",
            arch.name(),
            arch.num_classes,
            sets.train.len(),
            args.epochs,
            vs.device()
        );
    }
    let data = RunData {
        train: &train_loader,
        outliers: None,
        test: test_loader.as_ref(),
    };
    run_and_report(
        "training",
        &vs,
        &net,
        &config,
        &data,
        &mut meta,
        &output,
        &args.out,
        args.epochs,
    )
}

/// Runs the epochs still to do (a resumed run skips the done ones) and reports the last one;
/// shared by `eood train` and `eood finetune`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_and_report(
    what: &str,
    vs: &VarStore,
    net: &WideResNet,
    config: &RunConfig,
    data: &RunData,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
    out: &Path,
    epochs: u64,
) -> anyhow::Result<()> {
    let logs = train::run(vs, net, config, data, meta, output)
        .with_context(|| format!("{what} into {}", out.display()))?;
    let last = logs.last().ok_or_else(|| {
        anyhow!(
            "nothing to do: {} already has {} epochs",
            out.display(),
            meta.epoch
        )
    })?;
    eprintln!(
        "wrote {} (epoch {}/{epochs}{})",
        out.display(),
        last.epoch,
        last.test_accuracy
            .map(|a| format!(", test accuracy {a:.4}"))
            .unwrap_or_default()
    );
    Ok(())
}
