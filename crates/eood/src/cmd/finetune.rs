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
//! mean FPR at 95% TPR of -E on the validation OOD sets (never the test sets); the best is saved
//! as `--out` and the whole table as `<name>.grid.json`.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ood_data::batch::ImageSource;
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::losses::{energy, FinetuneLoss};
use ood_nn::margin_search::{self, MarginGrid};
use ood_nn::tch::{self, nn::VarStore, Device, Kind};
use ood_nn::train::{self, batch_tensors, RunConfig, RunData, RunOutput};
use ood_nn::{pytorch, state_dict, WideResNet};

use super::train::{arch_for, loaders, run_and_report, DataArgs};
use crate::args::{ArchArgs, CheckpointOutArgs, DeviceArgs, ModelArgs, ModelRef, OptimizerArgs};
use ood_core::limits::check_range;

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
    /// The pretrained model: our checkpoint or a PyTorch state_dict (not TorchScript).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Architecture of a --state-dict (a checkpoint records its own).
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
    /// Validation OOD sets for the grid (default with --fmnist-ood: every ood_val/*.npy).
    #[arg(long, value_name = "NPY", num_args = 1..)]
    pub val_ood: Vec<PathBuf>,
    /// Weight of the outlier term, in [0, 1000] (default: 0.1 for energy, 0.5 for oe).
    #[arg(long, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
    /// Outliers per step, 1 to 65536 (concatenated after the in-distribution batch).
    #[arg(long, default_value_t = 256)]
    pub outlier_batch_size: usize,
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
    inputs.push(from.clone());
    args.output
        .check(&inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let base = args
        .optimizer
        .apply(RunConfig::finetune(FinetuneLoss::OutlierExposure {
            lambda: 0.5,
        }))?;
    check_range("--outlier-batch-size", args.outlier_batch_size, 1, 65_536)?;
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
    let vs = VarStore::new(device);
    let is_ours = matches!(args.model.source(), ModelRef::Checkpoint(_));
    let (arch, spec, pretrained) = if is_ours {
        let ck = checkpoint::load(&from)?;
        let (h, w, c) = sets.train.image_shape();
        let spec = ck
            .meta
            .input
            .clone()
            .unwrap_or_else(|| InputSpec::default_for(h, w, c));
        (ck.meta.architecture.clone(), spec, ck.weights)
    } else {
        let arch = arch_for(&args.arch, &sets)?;
        let (h, w, c) = sets.train.image_shape();
        (
            arch,
            InputSpec::default_for(h, w, c),
            pytorch::load_state_dict(&from)?,
        )
    };
    if (spec.height, spec.width, spec.channels) != sets.train.image_shape() {
        bail!(
            "{} expects {}x{}x{} images, the data has {:?}",
            from.display(),
            spec.height,
            spec.width,
            spec.channels,
            sets.train.image_shape()
        );
    }
    tch::manual_seed(base.seed as i64);
    let net = WideResNet::new(&vs.root(), &arch)?;
    state_dict::load_into(&vs, &pretrained)
        .with_context(|| format!("loading {}", from.display()))?;

    let workers = args.data.runtime.workers;
    let (train_loader, test_loader) =
        loaders(&sets, &spec, base.batch_size, true, base.seed, workers)?;
    let outlier_loader = loader(
        outliers.clone() as Arc<dyn ImageSource>,
        spec.train_pipeline(),
        args.outlier_batch_size,
        true,
        base.seed.wrapping_add(1),
        workers,
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
                    workers,
                )?;
                let m = mean_energy(&net, &l, 2048, device)?;
                if args.data.runtime.progress() {
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
        objective: train::Objective::Finetune(loss),
        outlier_batch_size: args.outlier_batch_size,
        ..base
    };
    let data = RunData {
        train: &train_loader,
        outliers: Some(&outlier_loader),
        test: test_loader.as_ref(),
    };
    let progress = args.data.runtime.progress();
    if !args.m_in_grid.is_empty() {
        return grid_search(&args, &vs, &net, &pretrained, &spec, &config, &data, device);
    }
    let mut meta = CheckpointMeta::new(arch.clone(), serde_json::Value::Null, config.seed);
    meta.input = Some(spec);
    let output = RunOutput {
        checkpoint: args.output.out.clone(),
        resume: args.output.resume,
        progress,
        stop_after: args.output.stop_after,
    };
    if progress {
        eprintln!(
            "fine-tuning {} from {} with {:?}: {} images + {} outliers, {} epochs",
            arch.name(),
            from.display(),
            loss,
            sets.train.len(),
            outliers.len(),
            config.epochs
        );
    }
    run_and_report(
        "fine-tuning",
        &vs,
        &net,
        &config,
        &data,
        &mut meta,
        &output,
        args.output.resume_changes(),
    )
}

/// One record of the margin grid.
#[derive(serde::Serialize)]
struct GridPoint {
    m_in: f64,
    m_out: f64,
    checkpoint: String,
    mean_val_fpr95: f64,
    val: Vec<(String, ood_core::Metrics)>,
}

/// The paper's validation recipe over `--m-in-grid x --m-out-grid` (see the module docs).
#[allow(clippy::too_many_arguments)]
fn grid_search(
    args: &Args,
    vs: &VarStore,
    net: &WideResNet,
    pretrained: &[(String, tch::Tensor)],
    spec: &InputSpec,
    base: &RunConfig,
    data: &RunData,
    device: Device,
) -> anyhow::Result<()> {
    let lambda = match base.objective {
        train::Objective::Finetune(FinetuneLoss::Energy { lambda, .. }) => lambda,
        _ => bail!("--m-in-grid/--m-out-grid select margins of the energy loss (--loss energy)"),
    };
    let val_images = match (&args.val_images, &args.data.fmnist_ood) {
        (Some(p), _) => p.clone(),
        (None, Some(dir)) => dir.join("val_x.npy"),
        (None, None) => {
            bail!("the margin grid needs --val-images (in-distribution validation images)")
        }
    };
    let mut val_ood = args.val_ood.clone();
    if val_ood.is_empty() {
        if let Some(dir) = &args.data.fmnist_ood {
            let ood_dir = dir.join("ood_val");
            let entries = std::fs::read_dir(&ood_dir)
                .with_context(|| format!("reading {}", ood_dir.display()))?;
            val_ood = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "npy"))
                .collect();
            val_ood.sort();
        }
    }
    if val_ood.is_empty() {
        bail!("the margin grid needs --val-ood (validation OOD image sets)");
    }
    let open_eval = |p: &PathBuf| -> anyhow::Result<ood_data::batch::BatchLoader> {
        let set = Arc::new(NpySet::open(p, None)?);
        if set.image_shape() != (spec.height, spec.width, spec.channels) {
            bail!(
                "{} has images of {:?}, the model expects {}x{}x{}",
                p.display(),
                set.image_shape(),
                spec.height,
                spec.width,
                spec.channels
            );
        }
        Ok(loader(
            set as Arc<dyn ImageSource>,
            spec.test_pipeline(),
            256,
            false,
            0,
            args.data.runtime.workers,
        )?)
    };
    let id_loader = open_eval(&val_images)?;
    let ood_loaders: Vec<(String, ood_data::batch::BatchLoader)> = val_ood
        .iter()
        .map(|p| {
            Ok((
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("ood")
                    .to_owned(),
                open_eval(p)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;

    let out_dir = args
        .output
        .out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let stem = args
        .output
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("finetune")
        .to_owned();
    let grid = MarginGrid {
        m_in: args.m_in_grid.clone(),
        m_out: args.m_out_grid.clone(),
    };
    let n = grid.len();
    let search = margin_search::search(&grid, |i, m_in, m_out| -> anyhow::Result<_> {
        state_dict::load_into(vs, pretrained)?;
        let config = RunConfig {
            objective: train::Objective::Finetune(FinetuneLoss::Energy {
                m_in,
                m_out,
                lambda,
            }),
            ..base.clone()
        };
        let ck = out_dir.join(format!("{stem}.grid-{i}.json"));
        let mut meta =
            CheckpointMeta::new(net.config().clone(), serde_json::Value::Null, base.seed);
        meta.input = Some(spec.clone());
        let output = RunOutput {
            checkpoint: ck.clone(),
            resume: args.output.resume,
            progress: !args.data.runtime.quiet,
            stop_after: None,
        };
        if !args.data.runtime.quiet {
            eprintln!("grid {}/{n}: m_in {m_in}, m_out {m_out}", i + 1);
        }
        train::run(vs, net, &config, data, &mut meta, &output)
            .with_context(|| format!("fine-tuning into {}", ck.display()))?;
        // A finished point resumed with --resume is not retrained: `train::run` loaded the
        // weights it saved into `vs`, which are evaluated as they are.
        let (mean_fpr, per_set) =
            ood_nn::validation::energy_validation(net, &id_loader, &ood_loaders, device)?;
        if !args.data.runtime.quiet {
            eprintln!(
                "grid {}/{n}: m_in {m_in}, m_out {m_out}: mean validation FPR95 {mean_fpr:.4}",
                i + 1,
            );
        }
        Ok((mean_fpr, (ck.display().to_string(), per_set)))
    })?;
    let points: Vec<GridPoint> = search
        .trials
        .iter()
        .map(|t| GridPoint {
            m_in: t.m_in,
            m_out: t.m_out,
            checkpoint: t.outcome.0.clone(),
            mean_val_fpr95: t.mean_val_fpr,
            val: t.outcome.1.clone(),
        })
        .collect();
    let best = &points[search.best];
    let mut ck = checkpoint::load(Path::new(&best.checkpoint))?;
    ck.meta
        .metrics
        .insert("mean_val_fpr95".into(), best.mean_val_fpr95);
    checkpoint::save(&args.output.out, &mut ck.meta, &ck.weights, None)?;
    let summary = serde_json::json!({
        "selection": "minimum mean FPR at 95% TPR of -E over the validation OOD sets",
        "val_images": val_images.display().to_string(),
        "val_ood": val_ood.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "best": {"m_in": best.m_in, "m_out": best.m_out, "checkpoint": args.output.out.display().to_string()},
        "points": points,
    });
    let grid_path = out_dir.join(format!("{stem}.grid.json"));
    let text = serde_json::to_string_pretty(&summary)?;
    ood_core::io::write_atomic(&grid_path, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(&grid_path, e))
    })?;
    eprintln!(
        "best margins m_in {}, m_out {} (mean validation FPR95 {:.4}): wrote {} and {}",
        best.m_in,
        best.m_out,
        best.mean_val_fpr95,
        args.output.out.display(),
        grid_path.display()
    );
    Ok(())
}
