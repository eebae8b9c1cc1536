//! Training from scratch and energy / OE fine-tuning, as the energy-OOD code of record does them
//! (`CIFAR/train.py` and its baseline): SGD with Nesterov momentum 0.9 and weight decay 5e-4, a
//! per-step cosine learning rate, and for fine-tuning one forward pass over the concatenation of
//! the in-distribution batch (128) and the outlier batch (256), so BatchNorm sees both.
//!
//! Reproducible: batches depend only on the loaders' seeds and `(epoch, batch)` (see
//! `ood_data::batch`), and libtorch's generator (dropout) is reseeded at the start of each epoch
//! from `(seed, epoch)`; so a run resumed from its last checkpoint continues exactly as the
//! uninterrupted run would (same thread count assumed).
//!
//! After every epoch: one JSON line is appended to `<stem>.log.jsonl` and fsync'd, *then* the
//! checkpoint (weights + momentum buffers, see [`crate::checkpoint`]) is saved. A kill between
//! the two leaves a log line for an epoch the checkpoint does not have yet; resuming drops the
//! log lines past the checkpoint's epoch (and a torn last line) before it reruns that epoch, so
//! the log never loses nor repeats an epoch. The whole run holds the checkpoint's lock.
//!
//! Resuming checks that the configuration is the one the checkpoint was trained with
//! ([`ResumeChanges`]): a changed lr, seed, epochs, batch size, ... is refused with the fields
//! named, or, when allowed, recorded as a `{"resume_changes": ...}` line in the log.
use std::path::PathBuf;

use ood_data::batch::{Batch, BatchLoader};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, CheckpointMeta};
use crate::error::{Error, Result};
use crate::losses::{cross_entropy, FinetuneLoss};
use crate::sgd::{CosineSchedule, Sgd};
use crate::state_dict;
use crate::wrn::WideResNet;

mod epoch;
mod resume;

/// What is minimized.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Plain cross-entropy on labelled in-distribution batches (pretraining).
    CrossEntropy,
    /// Cross-entropy plus an outlier term on `outlier_batch_size` auxiliary outliers.
    Finetune(FinetuneLoss),
}

/// How BatchNorm sees the auxiliary outliers of a fine-tuning step.
///
/// The code of record (`CIFAR/train.py`) runs one training-mode forward pass over the
/// concatenation `[ID batch; outliers]`, so BatchNorm normalises the ID images with statistics of
/// a batch that is two-thirds outliers and its running statistics (used at test time) drift
/// towards the outliers'. On CIFAR with Tiny Images that is harmless; on Fashion-MNIST with
/// texture/photo outliers it alone costs ~9 points of test accuracy (docs/experiments.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierBatchNorm {
    /// One training-mode pass over ID and outliers together (the code of record).
    #[default]
    Joint,
    /// Two passes: the ID batch in training mode (batch and running statistics from ID images
    /// only), the outliers in evaluation mode, normalised by the running ID statistics as every
    /// image is at test time. Gradients flow through both; the loss is unchanged.
    IdStatistics,
    /// One pass over ID and outliers with every BatchNorm in evaluation mode: all images
    /// normalised by the pre-trained model's running statistics, which never move (the affine
    /// parameters still learn). A common fine-tuning practice, not the code of record's.
    Frozen,
}

impl OutlierBatchNorm {
    fn is_joint(&self) -> bool {
        *self == OutlierBatchNorm::Joint
    }
}

/// Optimization settings. Defaults: [`RunConfig::pretrain`] and [`RunConfig::finetune`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub objective: Objective,
    pub epochs: u64,
    /// In-distribution images per step (128).
    pub batch_size: usize,
    /// Outliers per step when fine-tuning (256).
    pub outlier_batch_size: usize,
    /// Initial learning rate; cosine-annealed per step to `lr_min`.
    pub lr: f64,
    pub lr_min: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// Seeds libtorch (initialization by the caller, dropout per epoch here).
    pub seed: u64,
    /// BatchNorm and the outliers when fine-tuning. Not serialized when `Joint`, so that the
    /// configurations recorded before this field existed still resume unchanged.
    #[serde(default, skip_serializing_if = "OutlierBatchNorm::is_joint")]
    pub outlier_batchnorm: OutlierBatchNorm,
}

impl RunConfig {
    /// Pretraining as the code of record: 100 epochs (CIFAR), batch 128, lr 0.1 -> 1e-6 cosine.
    pub fn pretrain() -> Self {
        Self {
            objective: Objective::CrossEntropy,
            epochs: 100,
            batch_size: 128,
            outlier_batch_size: 0,
            lr: 0.1,
            lr_min: 1e-6,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: true,
            seed: 1,
            outlier_batchnorm: OutlierBatchNorm::Joint,
        }
    }

    /// Fine-tuning as the code of record: 10 epochs, 128 + 256, lr 0.001 -> 1e-6 cosine.
    pub fn finetune(loss: FinetuneLoss) -> Self {
        Self {
            objective: Objective::Finetune(loss),
            epochs: 10,
            outlier_batch_size: 256,
            lr: 0.001,
            ..Self::pretrain()
        }
    }
}

/// Data of a run. `train` must yield labels; `outliers` is required for fine-tuning.
pub struct RunData<'a> {
    pub train: &'a BatchLoader,
    pub outliers: Option<&'a BatchLoader>,
    /// Evaluated after each epoch (accuracy), when given.
    pub test: Option<&'a BatchLoader>,
}

/// One epoch's record (also the JSON log line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based number of the epoch just finished.
    pub epoch: u64,
    pub step: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Where a run writes: the checkpoint sidecar `<stem>.json` and `<stem>.log.jsonl`.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub checkpoint: PathBuf,
    /// Continue from `checkpoint` if it exists (after a kill); otherwise start over.
    pub resume: bool,
    pub progress: bool,
    /// Stop after this many epochs in this call (a time-boxed run; resume it later).
    pub stop_after: Option<u64>,
    /// What resuming does when the configuration differs from the checkpoint's.
    pub changes: ResumeChanges,
}

impl RunOutput {
    pub fn log_path(&self) -> PathBuf {
        self.checkpoint.with_extension("log.jsonl")
    }
}

/// Converts a batch to (images N x C x H x W, labels) tensors on `device`.
pub fn batch_tensors(batch: &Batch, device: Device) -> Result<(Tensor, Option<Tensor>)> {
    let shape: Vec<i64> = batch.images.shape().iter().map(|&d| d as i64).collect();
    let images = match batch.images.as_slice() {
        Some(s) => Tensor::from_slice(s),
        None => Tensor::from_slice(&batch.images.iter().copied().collect::<Vec<f32>>()),
    }
    .view(shape.as_slice())
    .to_device(device);
    let labels = match &batch.labels {
        Some(l) => {
            let v: Vec<i64> = l.iter().copied().collect();
            if let Some(bad) = v.iter().find(|&&y| y < 0) {
                return Err(Error::NegativeLabel { label: *bad });
            }
            Some(Tensor::from_slice(&v).to_device(device))
        }
        None => None,
    };
    Ok((images, labels))
}

/// One optimizer step: forward in training mode, loss, backward, update with `lr`. For a
/// fine-tuning objective `x` is the concatenation of `n_in` in-distribution images (labelled by
/// `targets`) and the outliers, forwarded together (the code of record). Returns the loss and the
/// in-distribution logits.
pub fn train_step(
    net: &WideResNet,
    opt: &mut Sgd,
    objective: &Objective,
    x: &Tensor,
    targets: &Tensor,
    n_in: i64,
    lr: f64,
) -> (f64, Tensor) {
    train_step_with(
        net,
        opt,
        objective,
        (x, n_in),
        targets,
        lr,
        OutlierBatchNorm::Joint,
    )
}

/// The logits of `x` (`n_in` ID rows, then outliers) in training mode, BatchNorm seeing the
/// outliers as `bn` says.
pub fn forward_train(net: &WideResNet, x: &Tensor, n_in: i64, bn: OutlierBatchNorm) -> Tensor {
    let n = x.size()[0];
    match bn {
        OutlierBatchNorm::IdStatistics if n > n_in => {
            let id = net.forward(&x.narrow(0, 0, n_in), true);
            let out = net.forward(&x.narrow(0, n_in, n - n_in), false);
            Tensor::cat(&[id, out], 0)
        }
        OutlierBatchNorm::Frozen => net.forward(x, false),
        _ => net.forward(x, true),
    }
}

/// [`train_step`] with BatchNorm's view of the outliers chosen by `bn`; `x` is `(images, n_in)`.
pub fn train_step_with(
    net: &WideResNet,
    opt: &mut Sgd,
    objective: &Objective,
    x: (&Tensor, i64),
    targets: &Tensor,
    lr: f64,
    bn: OutlierBatchNorm,
) -> (f64, Tensor) {
    let (x, n_in) = x;
    let logits = forward_train(net, x, n_in, bn);
    let loss = match objective {
        Objective::CrossEntropy => cross_entropy(&logits.narrow(0, 0, n_in), targets),
        Objective::Finetune(l) => l.compute(&logits, targets, n_in),
    };
    opt.lr = lr;
    opt.zero_grad();
    loss.backward();
    opt.step();
    (loss.double_value(&[]), logits.narrow(0, 0, n_in).detach())
}

/// Accuracy and mean cross-entropy of `net` in evaluation mode.
pub fn evaluate(net: &WideResNet, loader: &BatchLoader, device: Device) -> Result<(f64, f64)> {
    let (mut correct, mut total, mut loss_sum) = (0i64, 0i64, 0.0);
    for batch in loader.epoch(0) {
        let (x, y) = batch_tensors(&batch?, device)?;
        let y = y.ok_or(Error::NoLabels { what: "evaluation" })?;
        let logits = tch::no_grad(|| net.forward(&x, false));
        let n = y.size()[0];
        correct += logits
            .argmax(-1, false)
            .eq_tensor(&y)
            .sum(Kind::Int64)
            .int64_value(&[]);
        loss_sum += cross_entropy(&logits, &y).double_value(&[]) * n as f64;
        total += n;
    }
    if total == 0 {
        return Err(Error::EmptyData { what: "evaluation" });
    }
    Ok((correct as f64 / total as f64, loss_sum / total as f64))
}

/// What resuming does when the configuration differs from the checkpoint's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeChanges {
    /// Fail with [`Error::ResumeMismatch`] naming the differing fields.
    Refuse,
    /// Continue, and record old and new values in the log.
    Record,
}

fn seed_for_epoch(seed: u64, epoch: u64) -> i64 {
    // splitmix64 of (seed, epoch): distinct, well-mixed generator seeds per epoch.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(epoch + 1));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 1) as i64
}

/// Runs (or resumes) training. `vs`/`net` hold the starting weights (random or pretrained);
/// `meta` describes the run and is saved with every checkpoint. Returns the per-epoch logs of
/// the epochs run now. Resuming with a changed configuration is refused or recorded as
/// `output.changes` says ([`ResumeChanges`]).
pub fn run(
    vs: &VarStore,
    net: &WideResNet,
    config: &RunConfig,
    data: &RunData,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
) -> Result<Vec<EpochLog>> {
    let _lock = checkpoint::CheckpointLock::acquire(&output.checkpoint)?;
    let fine_tune = matches!(config.objective, Objective::Finetune(_));
    if fine_tune && data.outliers.is_none() {
        return Err(Error::NoOutliers);
    }
    let steps_per_epoch = match (fine_tune, data.outliers) {
        (true, Some(out)) => data.train.batches_per_epoch().min(out.batches_per_epoch()),
        _ => data.train.batches_per_epoch(),
    } as u64;
    if steps_per_epoch == 0 {
        return Err(Error::EmptyData { what: "training" });
    }
    let mut opt = Sgd::new(
        vs,
        config.lr,
        config.momentum,
        config.weight_decay,
        config.nesterov,
    );
    let start_epoch = if output.resume && output.checkpoint.exists() {
        resume::resume(vs, net, config, meta, output, &mut opt)?
    } else {
        // A fresh run: a log left by an earlier run of the same checkpoint, or by one killed
        // before its first save, is not this run's history.
        let log = output.log_path();
        match std::fs::remove_file(&log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&log, e)),
            _ => {}
        }
        0
    };
    meta.training = serde_json::to_value(config).map_err(|source| Error::Json {
        what: "training configuration",
        source,
    })?;
    meta.seed = config.seed;

    let mut epoch_run = epoch::EpochRun {
        net,
        device: vs.device(),
        opt: &mut opt,
        config,
        data,
        schedule: CosineSchedule {
            lr_max: config.lr,
            lr_min: config.lr_min,
            total_steps: config.epochs * steps_per_epoch,
        },
        steps_per_epoch,
        progress: output.progress,
    };
    let mut logs = Vec::new();
    let end_epoch = match output.stop_after {
        Some(n) => (start_epoch + n).min(config.epochs),
        None => config.epochs,
    };
    for epoch in start_epoch..end_epoch {
        let log = epoch_run.train(epoch, meta)?;
        save_epoch(vs, meta, output, &log, epoch_run.opt)?;
        if output.progress {
            epoch::report(&log, config.epochs);
        }
        logs.push(log);
    }
    Ok(logs)
}

/// Records a finished epoch in `meta`, appends its log line, then saves the checkpoint (in that
/// order, see the module docs).
fn save_epoch(
    vs: &VarStore,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
    log: &EpochLog,
    opt: &Sgd,
) -> Result<()> {
    meta.epoch = log.epoch;
    meta.metrics.insert("train_loss".into(), log.train_loss);
    meta.metrics
        .insert("train_accuracy".into(), log.train_accuracy);
    if let (Some(a), Some(l)) = (log.test_accuracy, log.test_loss) {
        meta.metrics.insert("test_accuracy".into(), a);
        meta.metrics.insert("test_loss".into(), l);
    }
    resume::append_log(&output.log_path(), log)?;
    checkpoint::save(
        &output.checkpoint,
        meta,
        &state_dict::named_tensors(vs),
        Some(&opt.state()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrn::WrnConfig;
    use tch::nn::VarStore;

    fn net() -> (VarStore, WideResNet) {
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let config = WrnConfig {
            depth: 10,
            widen_factor: 1,
            dropout: 0.0,
            num_classes: 4,
            in_channels: 1,
        };
        let net = WideResNet::new(&vs.root(), &config).unwrap();
        (vs, net)
    }

    /// Deep copies of the running statistics (the named tensors share storage with the live
    /// buffers, so a shallow list would always equal a later one).
    fn buffers(vs: &VarStore) -> Vec<(String, Tensor)> {
        state_dict::named_tensors(vs)
            .into_iter()
            .filter(|(k, _)| k.contains("running_"))
            .map(|(k, t)| (k, t.copy()))
            .collect()
    }

    /// A second net with `src`'s weights and statistics: equal by copy, not by re-seeding the
    /// global RNG, which tests running in parallel share.
    fn twin(src: &VarStore) -> (VarStore, WideResNet) {
        let (mut vs, net) = net();
        vs.copy(src).unwrap();
        (vs, net)
    }

    /// 6 ID-like images, 10 outliers far off their pixel range, and the two concatenated.
    fn id_and_outliers() -> (Tensor, Tensor, Tensor) {
        let id = Tensor::rand([6, 1, 12, 12], (Kind::Float, Device::Cpu));
        let out = Tensor::rand([10, 1, 12, 12], (Kind::Float, Device::Cpu)) * 8.0 + 5.0;
        let x = Tensor::cat(&[&id, &out], 0);
        (id, out, x)
    }

    /// Back-propagates the sum of `rows` and checks the first convolution got a gradient.
    fn assert_gradient_reaches_conv1(vs: &VarStore, rows: &Tensor) {
        rows.sum(Kind::Float).backward();
        let grad = vs.variables()["conv1.weight"].grad();
        assert!(grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }

    fn same(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((ka, ta), (kb, tb))| ka == kb && ta.allclose(tb, 1e-6, 1e-6, false))
    }

    /// With `IdStatistics` the outliers (here far off the ID pixel range) leave BatchNorm's running
    /// statistics exactly as the ID batch alone sets them, and their logits are the eval-mode
    /// logits; `Joint` (the code of record) moves the statistics towards the outliers.
    #[test]
    fn id_statistics_keeps_outliers_out_of_batchnorm() {
        let (id, out, x) = id_and_outliers();

        let (vs_ref, net_ref) = net();
        let (vs, net_id) = twin(&vs_ref);
        let (vs_joint, net_joint) = twin(&vs_ref);
        let _ = forward_train(&net_ref, &id, 6, OutlierBatchNorm::Joint);
        let id_only = buffers(&vs_ref);

        let logits = forward_train(&net_id, &x, 6, OutlierBatchNorm::IdStatistics);
        assert_eq!(logits.size(), [16, 4]);
        assert!(same(&buffers(&vs), &id_only));
        let eval = tch::no_grad(|| net_id.forward(&out, false));
        assert!(logits.narrow(0, 6, 10).allclose(&eval, 1e-5, 1e-5, false));
        // gradients reach the first convolution through the outlier rows alone
        assert_gradient_reaches_conv1(&vs, &logits.narrow(0, 6, 10));

        let _ = forward_train(&net_joint, &x, 6, OutlierBatchNorm::Joint);
        assert!(!same(&buffers(&vs_joint), &id_only));
    }

    /// With `Frozen` no running statistic moves (neither ID nor outliers reach them), every row
    /// is the eval-mode logit, and the gradient still reaches the weights.
    #[test]
    fn frozen_batchnorm_keeps_the_pretrained_statistics() {
        let (_, _, x) = id_and_outliers();
        let (vs, net_frozen) = net();
        let before = buffers(&vs);
        let logits = forward_train(&net_frozen, &x, 6, OutlierBatchNorm::Frozen);
        assert!(same(&buffers(&vs), &before));
        let eval = tch::no_grad(|| net_frozen.forward(&x, false));
        assert!(logits.allclose(&eval, 1e-5, 1e-5, false));
        assert_gradient_reaches_conv1(&vs, &logits);
        // the training-mode pass (Joint) does move them
        let _ = forward_train(&net_frozen, &x, 6, OutlierBatchNorm::Joint);
        assert!(!same(&buffers(&vs), &before));
        assert_eq!(
            serde_json::to_value(OutlierBatchNorm::Frozen).unwrap(),
            "frozen"
        );
    }

    #[test]
    fn joint_is_not_serialized_so_old_configurations_resume() {
        let c = RunConfig::finetune(FinetuneLoss::outlier_exposure());
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("outlier_batchnorm").is_none());
        let back: RunConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back.outlier_batchnorm, OutlierBatchNorm::Joint);
        let id = RunConfig {
            outlier_batchnorm: OutlierBatchNorm::IdStatistics,
            ..c
        };
        let v = serde_json::to_value(&id).unwrap();
        assert_eq!(v["outlier_batchnorm"], "id_statistics");
    }
}
