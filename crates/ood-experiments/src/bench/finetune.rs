//! Pretraining and fine-tuning inside a benchmark run, through ood-nn's trainer
//! ([`ood_nn::train::run`], the code of record's recipe): the in-distribution data of an epoch can
//! be a seeded subset of the training set (a shorter epoch), which is how a run fits a time budget.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ood_data::batch::ImageSource;
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::data::{loader, Augmentation, InputSpec, NpySet};
use ood_nn::losses::FinetuneLoss;
use ood_nn::tch::{nn::VarStore, Device};
use ood_nn::train::{self, EpochLog, RunConfig, RunData, RunOutput};
use ood_nn::{state_dict, WideResNet, WrnConfig};

use super::data::{choose, Subset};
use super::error::{create_dir, Result};

/// Where starting weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Our checkpoint (JSON sidecar).
    Checkpoint(PathBuf),
    /// A PyTorch `state_dict` of the code of record's WideResNet with this architecture.
    StateDict { path: PathBuf, arch: WrnConfig },
}

impl Weights {
    /// Loads a trainable copy on `device`, with the input spec recorded in a checkpoint.
    pub fn load(&self, device: Device) -> Result<(VarStore, WideResNet, Option<InputSpec>)> {
        let vs = VarStore::new(device);
        match self {
            Weights::Checkpoint(json) => {
                let ck = checkpoint::load(json)?;
                let net = WideResNet::new(&vs.root(), &ck.meta.architecture)?;
                state_dict::load_into(&vs, &ck.weights)?;
                Ok((vs, net, ck.meta.input))
            }
            Weights::StateDict { path, arch } => {
                let sd = ood_nn::pytorch::load_state_dict(path)?;
                let net = WideResNet::new(&vs.root(), arch)?;
                state_dict::load_into(&vs, &sd)?;
                Ok((vs, net, None))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Weights::Checkpoint(p) => format!("checkpoint {}", p.display()),
            Weights::StateDict { path, arch } => {
                format!("PyTorch state_dict {} ({})", path.display(), arch.name())
            }
        }
    }
}

/// One training run of a benchmark.
pub struct TrainJob<'a> {
    pub config: RunConfig,
    pub spec: InputSpec,
    /// Augmentation of the in-distribution and of the outlier images.
    pub augmentation: Augmentation,
    pub outlier_augmentation: Augmentation,
    pub train: Arc<NpySet>,
    /// In-distribution images per epoch (a seeded subset; `None` = all).
    pub images_per_epoch: Option<usize>,
    pub outliers: Option<Arc<NpySet>>,
    pub test: Option<Arc<NpySet>>,
    pub checkpoint: &'a Path,
    pub progress: bool,
    pub workers: usize,
}

/// Runs `job` on `vs`/`net` (random or pretrained weights) and returns the epoch logs.
pub fn run_job(vs: &VarStore, net: &WideResNet, job: &TrainJob) -> Result<Vec<EpochLog>> {
    let seed = job.config.seed;
    let train: Arc<dyn ImageSource> = match job.images_per_epoch {
        Some(k) if k < job.train.len() => {
            // a different stream from the loaders' shuffling seed
            let rows = choose(job.train.len(), k, seed ^ 0x5eed_0f5a_b5e7);
            Arc::new(Subset {
                source: job.train.clone(),
                rows,
            })
        }
        _ => job.train.clone(),
    };
    let train_loader = loader(
        train,
        job.spec.pipeline(job.augmentation),
        job.config.batch_size,
        true,
        seed,
        job.workers,
    )?;
    let out_loader = match &job.outliers {
        Some(o) => Some(loader(
            o.clone(),
            job.spec.pipeline(job.outlier_augmentation),
            job.config.outlier_batch_size,
            true,
            seed.wrapping_add(1),
            job.workers,
        )?),
        None => None,
    };
    let test_loader = match &job.test {
        Some(t) => Some(loader(
            t.clone(),
            job.spec.test_pipeline(),
            256,
            false,
            0,
            job.workers,
        )?),
        None => None,
    };
    let mut meta = CheckpointMeta::new(net.config().clone(), serde_json::Value::Null, seed);
    meta.input = Some(job.spec.clone());
    let data = RunData {
        train: &train_loader,
        outliers: out_loader.as_ref(),
        test: test_loader.as_ref(),
    };
    let output = RunOutput {
        checkpoint: job.checkpoint.to_path_buf(),
        resume: false,
        progress: job.progress,
        stop_after: None,
        changes: train::ResumeChanges::Refuse,
    };
    if let Some(d) = job.checkpoint.parent() {
        create_dir(d)?;
    }
    // A stale log of an earlier run of the same folder is dropped by `train::run` (fresh run).
    Ok(train::run(vs, net, &job.config, &data, &mut meta, &output)?)
}

/// Fine-tuning settings of the code of record with `epochs`, `seed`.
pub fn finetune_config(loss: FinetuneLoss, epochs: u64, seed: u64) -> RunConfig {
    RunConfig {
        epochs,
        seed,
        ..RunConfig::finetune(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finetune_config_keeps_the_code_of_record_settings() {
        let c = finetune_config(FinetuneLoss::energy_cifar10(), 3, 9);
        assert_eq!(
            (c.epochs, c.seed, c.batch_size, c.outlier_batch_size, c.lr),
            (3, 9, 128, 256, 0.001)
        );
    }
}
