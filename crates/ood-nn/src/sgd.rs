//! Stochastic gradient descent with Nesterov momentum and L2 weight decay, PyTorch's
//! `torch.optim.SGD(params, lr, momentum, weight_decay=wd, nesterov=True)` update (dampening 0):
//!
//! ```text
//! g   = grad + wd * p
//! buf = momentum * buf + g          (buf starts at zero, so the first buf is g)
//! p  -= lr * (g + momentum * buf)   (Nesterov)
//! ```
//!
//! Written here rather than using tch's optimizer so the momentum buffers can be saved in our
//! checkpoints and training resumes exactly.
use tch::nn::VarStore;
use tch::Tensor;

use crate::error::{Error, Result};

/// The code of record's per-step cosine schedule (`cosine_annealing` through `LambdaLR`):
/// `lr(t) = lr_min + (lr_max - lr_min) * (1 + cos(pi * t / total)) / 2`.
///
/// The code of record calls `scheduler.step()` *before* `optimizer.step()`, so its optimizer step
/// `i` (0-based) uses `t = i + 1`; [`CosineSchedule::lr_for_step`] follows that.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineSchedule {
    pub lr_max: f64,
    pub lr_min: f64,
    pub total_steps: u64,
}

impl CosineSchedule {
    pub fn at(&self, t: u64) -> f64 {
        let frac = t as f64 / self.total_steps.max(1) as f64;
        self.lr_min
            + (self.lr_max - self.lr_min) * 0.5 * (1.0 + (frac * std::f64::consts::PI).cos())
    }

    /// Learning rate of optimizer step `step` (0-based), as the code of record applies it.
    pub fn lr_for_step(&self, step: u64) -> f64 {
        self.at(step + 1)
    }
}

/// SGD over the trainable variables of a [`VarStore`], in name order.
#[derive(Debug)]
pub struct Sgd {
    params: Vec<(String, Tensor)>,
    momentum_buffers: Vec<Tensor>,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl Sgd {
    pub fn new(vs: &VarStore, lr: f64, momentum: f64, weight_decay: f64, nesterov: bool) -> Self {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let momentum_buffers = params
            .iter()
            .map(|(_, p)| p.zeros_like().detach())
            .collect();
        Self {
            params,
            momentum_buffers,
            lr,
            momentum,
            weight_decay,
            nesterov,
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// One update with the current `lr`. Variables without a gradient are left alone.
    pub fn step(&mut self) {
        tch::no_grad(|| {
            for ((_, p), buf) in self.params.iter_mut().zip(&mut self.momentum_buffers) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                let mut g = if self.weight_decay != 0.0 {
                    grad + &*p * self.weight_decay
                } else {
                    grad.shallow_clone()
                };
                if self.momentum != 0.0 {
                    let _ = buf.g_mul_scalar_(self.momentum);
                    let _ = buf.g_add_(&g);
                    g = if self.nesterov {
                        g + &*buf * self.momentum
                    } else {
                        buf.shallow_clone()
                    };
                }
                let _ = p.g_add_(&(g * -self.lr));
            }
        });
    }

    /// Momentum buffers, named `momentum.<variable>`, for checkpoints.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .map(|((name, _), buf)| (format!("momentum.{name}"), buf.shallow_clone()))
            .collect()
    }

    /// Restores buffers saved by [`Sgd::state`]; every buffer must be present with its shape.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut missing = Vec::new();
        for ((name, p), buf) in self.params.iter().zip(&mut self.momentum_buffers) {
            let key = format!("momentum.{name}");
            match state.iter().find(|(k, _)| *k == key) {
                Some((_, t)) if t.size() == p.size() => {
                    tch::no_grad(|| buf.copy_(&t.to_device(buf.device()).to_kind(buf.kind())));
                }
                Some((_, t)) => {
                    return Err(Error::OptimizerShape {
                        key,
                        found: t.size(),
                        expected: p.size(),
                    })
                }
                None => missing.push(key),
            }
        }
        if !missing.is_empty() {
            return Err(Error::OptimizerMissing { keys: missing });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matches_code_of_record_formula() {
        let s = CosineSchedule {
            lr_max: 0.1,
            lr_min: 1e-6,
            total_steps: 100,
        };
        assert_eq!(s.at(0), 0.1);
        assert!((s.at(100) - 1e-6).abs() < 1e-15);
        assert!((s.at(50) - (1e-6 + (0.1 - 1e-6) * 0.5)).abs() < 1e-12);
        // The first optimizer step already uses t = 1.
        assert_eq!(s.lr_for_step(0), s.at(1));
    }

    #[test]
    fn nesterov_update_by_hand() {
        // One scalar parameter p = 2 with loss p^2 (grad 4): wd 0.5, momentum 0.9, lr 0.1.
        let vs = VarStore::new(tch::Device::Cpu);
        let p = vs.root().var("p", &[1], tch::nn::Init::Const(2.0));
        let mut opt = Sgd::new(&vs, 0.1, 0.9, 0.5, true);
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(tch::Kind::Float).backward();
            opt.step();
        }
        // step 1: g = 4 + 1 = 5, buf = 5, p = 2 - 0.1 * (5 + 4.5) = 1.05
        // step 2: g = 2.1 + 0.525 = 2.625, buf = 4.5 + 2.625 = 7.125, p = 1.05 - 0.1 * (2.625 + 6.4125)
        let want = 1.05 - 0.1 * (2.625 + 0.9 * 7.125);
        assert!(
            (p.double_value(&[0]) - want).abs() < 1e-6,
            "{}",
            p.double_value(&[0])
        );
        assert!((opt.state()[0].1.double_value(&[0]) - 7.125).abs() < 1e-5);
    }
}
