//! What the timing examples (`step_time`, `bench_vs_pytorch`) share: one timed step of a
//! WideResNet on random data already in memory.
use std::time::Instant;

use ood_nn::sgd::Sgd;
use ood_nn::tch::{self, Kind, Tensor};
use ood_nn::train::{train_step, Objective};
use ood_nn::WideResNet;

/// A network, its optimizer and one batch in memory: what a timed step runs on.
pub struct Step<'a> {
    pub net: &'a WideResNet,
    pub opt: Sgd,
    pub objective: Objective,
    /// The images: `n_in` in-distribution ones first (then the outliers of a fine-tuning step).
    pub x: Tensor,
    /// The labels of the `n_in` in-distribution images.
    pub y: Tensor,
    pub n_in: i64,
    pub lr: f64,
}

impl Step<'_> {
    /// Seconds of one step: a forward pass in evaluation mode without gradients (`infer`), else
    /// one training step ([`train_step`]).
    pub fn seconds(&mut self, infer: bool) -> f64 {
        let t = Instant::now();
        if infer {
            let _ = tch::no_grad(|| self.net.forward(&self.x, false))
                .sum(Kind::Float)
                .double_value(&[]);
        } else {
            let _ = train_step(
                self.net,
                &mut self.opt,
                &self.objective,
                &self.x,
                &self.y,
                self.n_in,
                self.lr,
            );
        }
        t.elapsed().as_secs_f64()
    }
}
