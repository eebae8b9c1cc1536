//! `eood train`: a WideResNet from scratch, as the energy-OOD code of record pretrains it: SGD
//! with Nesterov momentum 0.9, weight decay 5e-4, lr 0.1 cosine-annealed per step to 1e-6,
//! batch 128, random crop (4-pixel padding) + horizontal flip. Writes a checkpoint (`--out`,
//! `<name>.json` + safetensors) after every epoch and a JSON line per epoch to
//! `<name>.log.jsonl`; `--resume` continues an interrupted run exactly. An existing checkpoint is
//! never replaced without `--resume` or `--force`, and two runs never write the same one (lock).
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use crate::args::{ArchArgs, CheckpointOutArgs, DeviceArgs, OptimizerArgs, RuntimeArgs};
use ood_data::batch::{BatchLoader, ImageSource};
use ood_nn::checkpoint::CheckpointMeta;
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::tch::{self, nn::VarStore};
use ood_nn::train::{self, EpochLog, RunConfig, RunData, RunOutput};
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
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Opened data sets.
pub struct Sets {
    pub train: Arc<NpySet>,
    pub test: Option<Arc<NpySet>>,
}

impl DataArgs {
    /// Every file the data flags name (an output must not overwrite one of them).
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        if let Some(dir) = &self.fmnist_ood {
            for name in ["train_x", "train_y", "test_x", "test_y", "aux_outliers"] {
                v.push(dir.join(format!("{name}.npy")));
            }
        }
        v
    }

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
        self.runtime.apply()?;
        Ok(Sets { train, test })
    }
}

/// The architecture for `sets`: classes from the labels unless --num-classes, the data's channels.
pub fn arch_for(arch: &ArchArgs, sets: &Sets) -> anyhow::Result<WrnConfig> {
    let (_, _, c) = sets.train.image_shape();
    arch.config(Some(sets.train.num_classes().unwrap_or(1)), c)
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub optimizer: OptimizerArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub output: CheckpointOutArgs,
    /// Train without random crop and flip.
    #[arg(long)]
    pub no_augment: bool,
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let inputs = args.data.inputs();
    args.output
        .check(&inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let config = args.optimizer.apply(RunConfig::pretrain())?;
    let device = args.device.tch()?;
    let sets = args.data.open()?;
    let arch = arch_for(&args.arch, &sets)?;
    let (h, w, c) = sets.train.image_shape();
    let spec = InputSpec::default_for(h, w, c);
    let workers = args.data.runtime.workers;
    let (train_loader, test_loader) = loaders(
        &sets,
        &spec,
        config.batch_size,
        !args.no_augment,
        config.seed,
        workers,
    )?;

    tch::manual_seed(config.seed as i64);
    let vs = VarStore::new(device);
    let net = WideResNet::new(&vs.root(), &arch)?;
    let mut meta = CheckpointMeta::new(arch.clone(), serde_json::Value::Null, config.seed);
    meta.input = Some(spec);
    let progress = args.data.runtime.progress();
    let output = args.output.run_output(progress);
    if progress {
        eprintln!(
            "training {} ({} classes) on {} images of {h}x{w}x{c}, {} epochs, device {:?}",
            arch.name(),
            arch.num_classes,
            sets.train.len(),
            config.epochs,
            vs.device()
        );
    }
    let data = RunData {
        train: &train_loader,
        outliers: None,
        test: test_loader.as_ref(),
    };
    let logs = train::run(&vs, &net, &config, &data, &mut meta, &output);
    report_run("training", logs, &output, &meta, config.epochs)
}

/// Reports a run of [`train::run`] (a resumed run skips the epochs already done): its error,
/// with what was run into which checkpoint, or its last epoch; shared by `eood train` and
/// `eood finetune`.
pub(crate) fn report_run(
    what: &str,
    logs: ood_nn::Result<Vec<EpochLog>>,
    output: &RunOutput,
    meta: &CheckpointMeta,
    epochs: u64,
) -> anyhow::Result<()> {
    let out = &output.checkpoint;
    let logs = logs.with_context(|| format!("{what} into {}", out.display()))?;
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
