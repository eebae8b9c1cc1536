//! Times WideResNet training steps and inference on random data (no data pipeline), to size
//! models before training. Used for docs/bench-nn.md.
//!
//!   cargo run --release -p ood-nn --example step_time -- <depth> <widen> <side> <channels> \
//!       <mode: train|finetune|infer> <batch> [steps=5] [threads]
mod common;

use common::Step;
use ood_nn::losses::FinetuneLoss;
use ood_nn::sgd::Sgd;
use ood_nn::tch::{self, nn::VarStore, Device, Kind, Tensor};
use ood_nn::train::Objective;
use ood_nn::{WideResNet, WrnConfig};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 6 {
        eprintln!("usage: step_time depth widen side channels train|finetune|infer batch [steps] [threads]");
        std::process::exit(2);
    }
    let num = |i: usize| a[i].parse::<i64>().expect("integer argument");
    let (depth, widen, side, channels, mode, batch) =
        (num(0), num(1), num(2), num(3), a[4].as_str(), num(5));
    let steps = a
        .get(6)
        .map(|s| s.parse::<usize>().expect("steps"))
        .unwrap_or(5);
    if let Some(t) = a.get(7) {
        tch::set_num_threads(t.parse().expect("threads"));
    }
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let config = WrnConfig {
        depth,
        widen_factor: widen,
        dropout: 0.3,
        num_classes: 10,
        in_channels: channels,
    };
    let net = WideResNet::new(&vs.root(), &config).expect("config");
    // finetune: `batch` in-distribution images + 2 x batch outliers, as 128 + 256.
    let n_total = if mode == "finetune" { 3 * batch } else { batch };
    let objective = match mode {
        "finetune" => Objective::Finetune(FinetuneLoss::energy_cifar10()),
        _ => Objective::CrossEntropy,
    };
    let mut step = Step {
        net: &net,
        opt: Sgd::new(&vs, 0.1, 0.9, 5e-4, true),
        x: Tensor::randn([n_total, channels, side, side], (Kind::Float, Device::Cpu)),
        y: Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu)),
        objective,
        n_in: batch,
        lr: 0.01,
    };
    let mut times = Vec::new();
    for i in 0..steps + 1 {
        let t = step.seconds(mode == "infer");
        if i > 0 {
            times.push(t); // the first step warms up
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = times[times.len() / 2];
    println!(
        "{} {}x{}x{} {mode} batch {n_total}: median {:.3} s/step, {:.1} img/s (threads {})",
        config.name(),
        side,
        side,
        channels,
        median,
        n_total as f64 / median,
        tch::get_num_threads()
    );
}
