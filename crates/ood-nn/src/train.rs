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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
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

/// What is minimized.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Plain cross-entropy on labelled in-distribution batches (pretraining).
    CrossEntropy,
    /// Cross-entropy plus an outlier term on `outlier_batch_size` auxiliary outliers.
    Finetune(FinetuneLoss),
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
                return Err(Error::Config(format!(
                    "batch has an unlabelled or negative label {bad}"
                )));
            }
            Some(Tensor::from_slice(&v).to_device(device))
        }
        None => None,
    };
    Ok((images, labels))
}

/// One optimizer step: forward in training mode, loss, backward, update with `lr`. For a
/// fine-tuning objective `x` is the concatenation of `n_in` in-distribution images (labelled by
/// `targets`) and the outliers. Returns the loss and the in-distribution logits.
pub fn train_step(
    net: &WideResNet,
    opt: &mut Sgd,
    objective: &Objective,
    x: &Tensor,
    targets: &Tensor,
    n_in: i64,
    lr: f64,
) -> (f64, Tensor) {
    let logits = net.forward(x, true);
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
        let (x, y) = batch_tensors(&batch, device)?;
        let y = y.ok_or_else(|| Error::Config("evaluation data has no labels".into()))?;
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
        return Err(Error::Config("evaluation data is empty".into()));
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

/// Top-level fields of two serialized configurations that differ, with both values.
fn config_changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<(String, String)> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return Vec::new();
    };
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| {
            let was = old.get(k).map_or("absent".into(), |o| o.to_string());
            (k.clone(), format!("{k} {was} -> {v}"))
        })
        .collect()
}

/// Keeps only the log lines of epochs `<= done` (and drops a torn line), rewriting the log
/// atomically when anything is dropped; lines that are not epoch records are kept.
fn reconcile_log(path: &Path, done: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    let mut dropped = false;
    for line in text.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        let epoch = serde_json::from_str::<EpochLog>(line.trim_end())
            .ok()
            .map(|l| l.epoch);
        if !complete || epoch.is_some_and(|e| e > done) {
            dropped = true;
        } else {
            kept.push_str(line);
        }
    }
    if dropped {
        ood_core::io::write_atomic(path, |w| {
            w.write_all(kept.as_bytes())
                .map_err(|e| ood_core::io::IoError::new(path, e))
        })
        .map_err(|e| Error::io(path, e.source))?;
    }
    Ok(())
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
/// the epochs run now. Resuming with a changed configuration is refused
/// ([`ResumeChanges::Refuse`]; see [`run_with`]).
pub fn run(
    vs: &VarStore,
    net: &WideResNet,
    config: &RunConfig,
    data: &RunData,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
) -> Result<Vec<EpochLog>> {
    run_with(vs, net, config, data, meta, output, ResumeChanges::Refuse)
}

/// [`run`] with an explicit policy for configuration changes on resume.
pub fn run_with(
    vs: &VarStore,
    net: &WideResNet,
    config: &RunConfig,
    data: &RunData,
    meta: &mut CheckpointMeta,
    output: &RunOutput,
    changes: ResumeChanges,
) -> Result<Vec<EpochLog>> {
    let lock = checkpoint::CheckpointLock::acquire(&output.checkpoint)?;
    if let Some(pid) = lock.took_over {
        eprintln!(
            "note: took over the stale lock of {} left by process {pid}, which no longer runs",
            output.checkpoint.display()
        );
    }
    let device = vs.device();
    let fine_tune = matches!(config.objective, Objective::Finetune(_));
    if fine_tune && data.outliers.is_none() {
        return Err(Error::Config(
            "fine-tuning needs an outlier data set".into(),
        ));
    }
    let steps_per_epoch = match (fine_tune, data.outliers) {
        (true, Some(out)) => data.train.batches_per_epoch().min(out.batches_per_epoch()),
        _ => data.train.batches_per_epoch(),
    } as u64;
    if steps_per_epoch == 0 {
        return Err(Error::Config("training data yields no batch".into()));
    }
    let schedule = CosineSchedule {
        lr_max: config.lr,
        lr_min: config.lr_min,
        total_steps: config.epochs * steps_per_epoch,
    };
    let mut opt = Sgd::new(
        vs,
        config.lr,
        config.momentum,
        config.weight_decay,
        config.nesterov,
    );

    let mut start_epoch = 0;
    let resumed = output.resume && output.checkpoint.exists();
    if resumed {
        let ck = checkpoint::load(&output.checkpoint)?;
        if ck.meta.architecture != *net.config() {
            return Err(Error::Sidecar {
                path: output.checkpoint.clone(),
                reason: format!(
                    "architecture {:?} differs from this run's {:?}",
                    ck.meta.architecture,
                    net.config()
                ),
            });
        }
        let new = serde_json::to_value(config).map_err(|e| Error::Config(e.to_string()))?;
        let changed = config_changes(&ck.meta.training, &new);
        if !changed.is_empty() {
            let fields = changed
                .iter()
                .map(|(_, d)| d.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            if changes == ResumeChanges::Refuse {
                return Err(Error::ResumeMismatch {
                    path: output.checkpoint.clone(),
                    fields,
                });
            }
            let record = serde_json::json!({
                "resume_changes": changed.iter().map(|(k, _)| k).collect::<Vec<_>>(),
                "description": fields,
                "at_epoch": ck.meta.epoch,
            });
            // After reconciling, so that a torn last line is dropped, not glued to this record.
            reconcile_log(&output.log_path(), ck.meta.epoch)?;
            append_line(&output.log_path(), &record.to_string())?;
        } else {
            reconcile_log(&output.log_path(), ck.meta.epoch)?;
        }
        state_dict::load_into(vs, &ck.weights)?;
        if let Some(state) = &ck.optimizer {
            opt.load_state(state)?;
        }
        start_epoch = ck.meta.epoch;
        meta.step = ck.meta.step;
        meta.epoch = ck.meta.epoch;
        meta.metrics = ck.meta.metrics;
    }
    if !resumed {
        // A fresh run: a log left by an earlier run of the same checkpoint, or by one killed
        // before its first save, is not this run's history.
        let log = output.log_path();
        match std::fs::remove_file(&log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&log, e)),
            _ => {}
        }
    }
    meta.training = serde_json::to_value(config).map_err(|e| Error::Config(e.to_string()))?;
    meta.seed = config.seed;

    let mut logs = Vec::new();
    let end_epoch = match output.stop_after {
        Some(n) => (start_epoch + n).min(config.epochs),
        None => config.epochs,
    };
    for epoch in start_epoch..end_epoch {
        tch::manual_seed(seed_for_epoch(config.seed, epoch));
        let started = Instant::now();
        let bar = if output.progress {
            ProgressBar::new(steps_per_epoch)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, config.epochs));
        let mut outliers = data.outliers.map(|o| o.epoch(epoch));
        let (mut loss_sum, mut correct, mut seen, mut images) = (0.0, 0i64, 0i64, 0u64);
        let mut lr = config.lr;
        for (b, batch) in data.train.epoch(epoch).enumerate() {
            if b as u64 >= steps_per_epoch {
                break;
            }
            let (x_in, y) = batch_tensors(&batch, device)?;
            let y = y.ok_or_else(|| Error::Config("training data has no labels".into()))?;
            let n_in = x_in.size()[0];
            let x = match outliers.as_mut().and_then(|it| it.next()) {
                Some(out) if fine_tune => Tensor::cat(&[x_in, batch_tensors(&out, device)?.0], 0),
                _ => x_in,
            };
            lr = schedule.lr_for_step(meta.step);
            let (loss, logits) = train_step(net, &mut opt, &config.objective, &x, &y, n_in, lr);
            if !loss.is_finite() {
                return Err(Error::Config(format!(
                    "loss became {loss} at epoch {} step {}",
                    epoch + 1,
                    meta.step
                )));
            }
            meta.step += 1;
            loss_sum += loss * n_in as f64;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            seen += n_in;
            images += x.size()[0] as u64;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.1} img/s lr {:.2e}",
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                images as f64 / secs,
                lr
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let (test_accuracy, test_loss) = match data.test {
            Some(t) => {
                let (a, l) = evaluate(net, t, device)?;
                (Some(a), Some(l))
            }
            None => (None, None),
        };
        let log = EpochLog {
            epoch: epoch + 1,
            step: meta.step,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            test_accuracy,
            test_loss,
            lr,
            seconds,
            images_per_second: images as f64 / seconds.max(1e-9),
        };
        meta.epoch = epoch + 1;
        meta.metrics.insert("train_loss".into(), log.train_loss);
        meta.metrics
            .insert("train_accuracy".into(), log.train_accuracy);
        if let (Some(a), Some(l)) = (test_accuracy, test_loss) {
            meta.metrics.insert("test_accuracy".into(), a);
            meta.metrics.insert("test_loss".into(), l);
        }
        // log first (see the module docs), then the checkpoint
        append_log(&output.log_path(), &log)?;
        checkpoint::save(
            &output.checkpoint,
            meta,
            &state_dict::named_tensors(vs),
            Some(&opt.state()),
        )?;
        if output.progress {
            eprintln!(
                "epoch {}/{}: train loss {:.4} acc {:.4}{} ({:.0} s, {:.1} img/s)",
                log.epoch,
                config.epochs,
                log.train_loss,
                log.train_accuracy,
                test_accuracy
                    .map(|a| format!(", test acc {a:.4}"))
                    .unwrap_or_default(),
                seconds,
                log.images_per_second
            );
        }
        logs.push(log);
    }
    Ok(logs)
}

fn append_log(path: &Path, log: &EpochLog) -> Result<()> {
    let line = serde_json::to_string(log).map_err(|e| Error::Config(e.to_string()))?;
    append_line(path, &line)
}

/// Appends one line in a single write and fsyncs it.
fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(epoch: u64) -> String {
        let log = EpochLog {
            epoch,
            step: epoch * 10,
            train_loss: 1.0,
            train_accuracy: 0.5,
            test_accuracy: None,
            test_loss: None,
            lr: 0.1,
            seconds: 1.0,
            images_per_second: 2.0,
        };
        serde_json::to_string(&log).unwrap() + "\n"
    }

    #[test]
    fn resume_drops_log_lines_past_the_checkpoint_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.log.jsonl");
        // killed after logging epoch 3 but before its checkpoint; then a torn write
        let note = "{\"resume_changes\":[\"lr\"]}\n";
        let text = format!("{}{note}{}{}{{\"epo", line(1), line(2), line(3));
        std::fs::write(&p, &text).unwrap();
        reconcile_log(&p, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}{note}{}", line(1), line(2))
        );
        // nothing to drop: the file is left as it is
        reconcile_log(&p, 2).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn config_changes_name_each_differing_field() {
        let old = serde_json::to_value(RunConfig::pretrain()).unwrap();
        let new = RunConfig {
            lr: 0.2,
            seed: 3,
            ..RunConfig::pretrain()
        };
        let changed = config_changes(&old, &serde_json::to_value(new).unwrap());
        let d: Vec<&str> = changed.iter().map(|(_, d)| d.as_str()).collect();
        assert_eq!(d, ["lr 0.1 -> 0.2", "seed 1 -> 3"]);
        assert!(config_changes(&serde_json::Value::Null, &old).is_empty());
    }
}
