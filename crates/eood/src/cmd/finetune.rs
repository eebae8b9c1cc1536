//! `eood finetune`: fine-tune a pretrained WideResNet with auxiliary outliers, as the energy-OOD
//! code of record does (`CIFAR/train.py`): 10 epochs, lr 0.001 cosine-annealed per step to 1e-6,
//! each step one forward pass over 128 in-distribution images followed by 256 outliers, with
//! - `--loss energy`: CE + 0.1 * (mean(relu(E_in - m_in)^2) + mean(relu(m_out - E_out)^2)),
//!   E = -logsumexp(logits); code-of-record margins m_in -23, m_out -5 (CIFAR-10); `auto` picks
//!   each margin as the pretrained model's mean energy on (up to 2048) training images / outliers;
//! - `--loss oe`: Outlier Exposure, CE + 0.5 * mean over outliers of CE to the uniform distribution.
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use ood_data::batch::ImageSource;
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::losses::{energy, FinetuneLoss};
use ood_nn::tch::{self, nn::VarStore, Device, Kind};
use ood_nn::train::{self, batch_tensors, RunConfig, RunData, RunOutput};
use ood_nn::{pytorch, state_dict, WideResNet};

use super::train::{check_out, check_positive, loaders, ArchArgs, DataArgs};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Energy-bounded loss (Liu et al. 2020).
    Energy,
    /// Outlier Exposure (Hendrycks et al. 2019).
    Oe,
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
    /// Pretrained checkpoint: ours (`<name>.json`) or a PyTorch state_dict (`.pt`/`.pth`, zip or
    /// legacy format; give its architecture with --depth/--widen-factor/--num-classes).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Architecture of a PyTorch checkpoint given to --from (ours records its own).
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Auxiliary outliers, N x H x W x C uint8 .npy (default with --fmnist-ood: its aux_outliers.npy).
    #[arg(long, value_name = "NPY")]
    pub outliers: Option<PathBuf>,
    /// Fine-tuning objective.
    #[arg(long, value_enum, default_value_t = LossKind::Energy)]
    pub loss: LossKind,
    /// In-distribution energy margin (energy loss), or `auto`.
    #[arg(long, default_value = "-23", value_parser = parse_margin, allow_hyphen_values = true)]
    pub m_in: Margin,
    /// Outlier energy margin (energy loss), or `auto`.
    #[arg(long, default_value = "-5", value_parser = parse_margin, allow_hyphen_values = true)]
    pub m_out: Margin,
    /// Weight of the outlier term (default: 0.1 for energy, 0.5 for oe).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Checkpoint to write, `<name>.json`.
    #[arg(long, value_name = "JSON")]
    pub out: PathBuf,
    /// Epochs (code of record: 10).
    #[arg(long, default_value_t = 10)]
    pub epochs: u64,
    /// In-distribution images per step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Outliers per step (concatenated after the in-distribution batch).
    #[arg(long, default_value_t = 256)]
    pub outlier_batch_size: usize,
    /// Initial learning rate, cosine-annealed per step to --lr-min.
    #[arg(long, default_value_t = 0.001)]
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
    /// Seeds dropout, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Continue from --out if it exists (after an interruption).
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs in this invocation (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
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
    check_out(&args.out)?;
    check_positive("--lr", args.lr)?;
    if args.batch_size == 0 || args.outlier_batch_size == 0 || args.epochs == 0 {
        bail!("--batch-size, --outlier-batch-size and --epochs must be positive");
    }
    let sets = args.data.open()?;
    let outliers_path = match (&args.outliers, &args.data.fmnist_ood) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => dir.join("aux_outliers.npy"),
        (None, None) => bail!("give --outliers NPY (auxiliary outlier images)"),
    };
    let outliers = Arc::new(NpySet::open(&outliers_path, None)?);
    if outliers.image_shape() != sets.train.image_shape() {
        bail!(
            "outliers are {:?} (H, W, C) but training images {:?}",
            outliers.image_shape(),
            sets.train.image_shape()
        );
    }

    // The pretrained model.
    let device = Device::cuda_if_available();
    let vs = VarStore::new(device);
    let is_ours = args.from.extension().is_some_and(|e| e == "json");
    let (arch, spec, pretrained) = if is_ours {
        let ck = checkpoint::load(&args.from)?;
        let (h, w, c) = sets.train.image_shape();
        let spec = ck
            .meta
            .input
            .clone()
            .unwrap_or_else(|| InputSpec::default_for(h, w, c));
        (ck.meta.architecture.clone(), spec, ck.weights)
    } else {
        let arch = args.arch.config(&sets)?;
        let (h, w, c) = sets.train.image_shape();
        (
            arch,
            InputSpec::default_for(h, w, c),
            pytorch::load_state_dict(&args.from)?,
        )
    };
    if (spec.height, spec.width, spec.channels) != sets.train.image_shape() {
        bail!(
            "{} expects {}x{}x{} images, the data has {:?}",
            args.from.display(),
            spec.height,
            spec.width,
            spec.channels,
            sets.train.image_shape()
        );
    }
    tch::manual_seed(args.seed as i64);
    let net = WideResNet::new(&vs.root(), &arch)?;
    state_dict::load_into(&vs, &pretrained)
        .with_context(|| format!("loading {}", args.from.display()))?;

    let (train_loader, test_loader) = loaders(
        &sets,
        &spec,
        args.batch_size,
        true,
        args.seed,
        args.data.workers,
    )?;
    let outlier_loader = loader(
        outliers.clone() as Arc<dyn ImageSource>,
        spec.train_pipeline(),
        args.outlier_batch_size,
        true,
        args.seed.wrapping_add(1),
        args.data.workers,
    )?;

    let loss = match args.loss {
        LossKind::Oe => FinetuneLoss::OutlierExposure {
            lambda: args.lambda.unwrap_or(0.5),
        },
        LossKind::Energy => {
            let auto = |which: &str, set: &Arc<NpySet>| -> anyhow::Result<f64> {
                let l = loader(
                    set.clone() as Arc<dyn ImageSource>,
                    spec.test_pipeline(),
                    256,
                    false,
                    0,
                    args.data.workers,
                )?;
                let m = mean_energy(&net, &l, 2048, device)?;
                if !args.data.quiet {
                    eprintln!("auto margin {which} = {m:.3} (mean energy of the pretrained model)");
                }
                Ok(m)
            };
            let m_in = match args.m_in {
                Margin::Value(v) => v,
                Margin::Auto => auto("m_in", &sets.train)?,
            };
            let m_out = match args.m_out {
                Margin::Value(v) => v,
                Margin::Auto => auto("m_out", &outliers)?,
            };
            FinetuneLoss::Energy {
                m_in,
                m_out,
                lambda: args.lambda.unwrap_or(0.1),
            }
        }
    };
    let config = RunConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        outlier_batch_size: args.outlier_batch_size,
        lr: args.lr,
        lr_min: args.lr_min,
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        seed: args.seed,
        ..RunConfig::finetune(loss)
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
            "fine-tuning {} from {} with {:?}: {} images + {} outliers, {} epochs",
            arch.name(),
            args.from.display(),
            loss,
            sets.train.len(),
            outliers.len(),
            args.epochs
        );
    }
    let data = RunData {
        train: &train_loader,
        outliers: Some(&outlier_loader),
        test: test_loader.as_ref(),
    };
    let logs = train::run(&vs, &net, &config, &data, &mut meta, &output)
        .with_context(|| format!("fine-tuning into {}", args.out.display()))?;
    let last = logs.last().ok_or_else(|| {
        anyhow!(
            "nothing to do: {} already has {} epochs",
            args.out.display(),
            meta.epoch
        )
    })?;
    eprintln!(
        "wrote {} (epoch {}/{}{})",
        args.out.display(),
        last.epoch,
        args.epochs,
        last.test_accuracy
            .map(|a| format!(", test accuracy {a:.4}"))
            .unwrap_or_default()
    );
    Ok(())
}
