//! What a training command takes: SGD settings ([`OptimizerArgs`]) and the checkpoint it writes
//! ([`CheckpointOutArgs`]).
use std::path::{Path, PathBuf};

use anyhow::bail;
#[cfg(feature = "nn")]
use ood_core::limits::check_range;

/// SGD settings; unset values take the command's defaults (`RunConfig::pretrain` for train,
/// `RunConfig::finetune` for finetune: the code of record's).
#[derive(clap::Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// Epochs, 1 to 100000 (default: train 100, finetune 10).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// In-distribution images per step, 1 to 65536 (default 128).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Initial learning rate in (0, 10], cosine-annealed per step to --lr-min (default: train
    /// 0.1, finetune 0.001).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine schedule, in [0, --lr] (default 1e-6).
    #[arg(long)]
    pub lr_min: Option<f64>,
    /// Nesterov momentum of SGD, in [0, 1) (default 0.9).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay, in [0, 1], applied to every parameter as PyTorch's SGD (default 5e-4).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Seeds initialization, dropout, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[cfg(feature = "nn")]
impl OptimizerArgs {
    /// `base` with the given values, each validated.
    pub fn apply(
        &self,
        base: ood_nn::train::RunConfig,
    ) -> anyhow::Result<ood_nn::train::RunConfig> {
        let lr = check_range("--lr", self.lr.unwrap_or(base.lr), f64::MIN_POSITIVE, 10.0)?;
        let momentum = check_range(
            "--momentum",
            self.momentum.unwrap_or(base.momentum),
            0.0,
            1.0,
        )?;
        if momentum == 1.0 {
            bail!("--momentum must be below 1, got 1");
        }
        Ok(ood_nn::train::RunConfig {
            epochs: check_range("--epochs", self.epochs.unwrap_or(base.epochs), 1, 100_000)?,
            batch_size: check_range(
                "--batch-size",
                self.batch_size.unwrap_or(base.batch_size),
                1,
                65_536,
            )?,
            lr,
            lr_min: check_range("--lr-min", self.lr_min.unwrap_or(base.lr_min), 0.0, lr)?,
            momentum,
            weight_decay: check_range(
                "--weight-decay",
                self.weight_decay.unwrap_or(base.weight_decay),
                0.0,
                1.0,
            )?,
            seed: self.seed,
            ..base
        })
    }
}

/// The checkpoint a training command writes, and how it treats one already there.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointOutArgs {
    /// Checkpoint to write, `<name>.json` (weights go beside it as safetensors).
    #[arg(long, value_name = "JSON")]
    pub out: PathBuf,
    /// Continue from --out if it exists (after an interruption); the configuration must be the
    /// one it was trained with.
    #[arg(long)]
    pub resume: bool,
    /// Replace an existing --out (without --resume), or resume with a changed configuration
    /// (the change is recorded in the log).
    #[arg(long)]
    pub force: bool,
    /// Stop after this many epochs in this invocation (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

impl CheckpointOutArgs {
    /// Refuses an `--out` that would destroy something: not `<name>.json`, a device node or
    /// directory, one of `inputs` (e.g. finetune's pretrained model), or an existing
    /// checkpoint without --resume or --force.
    #[cfg_attr(not(feature = "nn"), allow(dead_code))] // train and finetune need `nn`
    pub fn check(&self, inputs: &[&Path]) -> anyhow::Result<()> {
        let out = &self.out;
        if out.extension().is_none_or(|e| e != "json") {
            bail!(
                "--out must name the checkpoint's JSON sidecar (<name>.json), got {}",
                out.display()
            );
        }
        if self.resume {
            ood_core::io::check_output(out, inputs)?;
        } else {
            ood_core::io::check_new_output(out, inputs, self.force)?;
        }
        if self.stop_after == Some(0) {
            bail!("--stop-after must be at least 1");
        }
        Ok(())
    }

    /// Where and how `train::run` writes: --out, --resume, --stop-after, and --force (a changed
    /// configuration on resume is recorded, not refused).
    #[cfg(feature = "nn")]
    pub fn run_output(&self, progress: bool) -> ood_nn::train::RunOutput {
        use ood_nn::train::ResumeChanges;
        ood_nn::train::RunOutput {
            checkpoint: self.out.clone(),
            resume: self.resume,
            progress,
            stop_after: self.stop_after,
            changes: if self.force {
                ResumeChanges::Record
            } else {
                ResumeChanges::Refuse
            },
        }
    }
}
