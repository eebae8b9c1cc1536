//! One training epoch: batches (with outliers when fine-tuning), optimizer steps on the cosine
//! schedule, the progress bar, and the epoch's record (with test accuracy when test data is given).
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tch::{Kind, Tensor};

use super::{batch_tensors, evaluate, seed_for_epoch, train_step_with, EpochLog, Objective};
use super::{RunConfig, RunData};
use crate::checkpoint::CheckpointMeta;
use crate::error::{Error, Result};
use crate::sgd::{CosineSchedule, Sgd};
use crate::wrn::WideResNet;

/// What every epoch of a run shares.
pub(super) struct EpochRun<'a> {
    pub net: &'a WideResNet,
    pub device: tch::Device,
    pub opt: &'a mut Sgd,
    pub config: &'a RunConfig,
    pub data: &'a RunData<'a>,
    pub schedule: CosineSchedule,
    pub steps_per_epoch: u64,
    pub progress: bool,
}

/// Running sums of an epoch.
#[derive(Default)]
struct Tally {
    loss_sum: f64,
    correct: i64,
    seen: i64,
    images: u64,
}

impl EpochRun<'_> {
    /// Trains epoch `epoch` (0-based), advancing `meta.step`; returns its record.
    pub fn train(&mut self, epoch: u64, meta: &mut CheckpointMeta) -> Result<EpochLog> {
        let (config, data) = (self.config, self.data);
        let device = self.device;
        let fine_tune = matches!(config.objective, Objective::Finetune(_));
        tch::manual_seed(seed_for_epoch(config.seed, epoch));
        let started = Instant::now();
        let bar = self.bar(epoch);
        let mut outliers = data.outliers.map(|o| o.epoch(epoch));
        let mut t = Tally::default();
        let mut lr = config.lr;
        for (b, batch) in data.train.epoch(epoch).enumerate() {
            if b as u64 >= self.steps_per_epoch {
                break;
            }
            let (x_in, y) = batch_tensors(&batch?, device)?;
            let y = y.ok_or(Error::NoLabels { what: "training" })?;
            let n_in = x_in.size()[0];
            let x = match outliers.as_mut().and_then(|it| it.next()) {
                Some(out) if fine_tune => Tensor::cat(&[x_in, batch_tensors(&out?, device)?.0], 0),
                _ => x_in,
            };
            lr = self.schedule.lr_for_step(meta.step);
            let (loss, logits) = train_step_with(
                self.net,
                self.opt,
                &config.objective,
                (&x, n_in),
                &y,
                lr,
                config.outlier_batchnorm,
            );
            if !loss.is_finite() {
                return Err(Error::NonFiniteLoss {
                    loss,
                    epoch: epoch + 1,
                    step: meta.step,
                });
            }
            meta.step += 1;
            t.loss_sum += loss * n_in as f64;
            t.correct += logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            t.seen += n_in;
            t.images += x.size()[0] as u64;
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} acc {:.3} {:.1} img/s lr {:.2e}",
                t.loss_sum / t.seen as f64,
                t.correct as f64 / t.seen as f64,
                t.images as f64 / secs,
                lr
            ));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let (test_accuracy, test_loss) = match data.test {
            Some(test) => {
                let (a, l) = evaluate(self.net, test, device)?;
                (Some(a), Some(l))
            }
            None => (None, None),
        };
        Ok(EpochLog {
            epoch: epoch + 1,
            step: meta.step,
            train_loss: t.loss_sum / t.seen.max(1) as f64,
            train_accuracy: t.correct as f64 / t.seen.max(1) as f64,
            test_accuracy,
            test_loss,
            lr,
            seconds,
            images_per_second: t.images as f64 / seconds.max(1e-9),
        })
    }

    fn bar(&self, epoch: u64) -> ProgressBar {
        let bar = if self.progress {
            ProgressBar::new(self.steps_per_epoch)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.config.epochs));
        bar
    }
}

/// The one line printed after each epoch (with progress on).
pub(super) fn report(log: &EpochLog, epochs: u64) {
    eprintln!(
        "epoch {}/{}: train loss {:.4} acc {:.4}{} ({:.0} s, {:.1} img/s)",
        log.epoch,
        epochs,
        log.train_loss,
        log.train_accuracy,
        log.test_accuracy
            .map(|a| format!(", test acc {a:.4}"))
            .unwrap_or_default(),
        log.seconds,
        log.images_per_second
    );
}
