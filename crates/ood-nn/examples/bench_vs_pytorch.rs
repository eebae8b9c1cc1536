//! The Rust/tch side of scripts/bench-nn-vs-pytorch.sh (the PyTorch side is
//! scripts/bench-nn-vs-pytorch.py; results in docs/bench-nn-speed.md).
//!
//!   bench_vs_pytorch <infer|step> <timed iterations> <threads>
//!
//! WRN-40-2 (dropout 0.3, 10 classes, 32x32x3) on random data already in memory:
//! - `infer`: batch 256, evaluation mode, no gradients;
//! - `step`: one energy fine-tuning step (ood_nn::train::train_step): 128 in-distribution + 256
//!   outlier images concatenated, training mode, energy-bounded loss (m_in -23, m_out -5,
//!   lambda 0.1), backward, SGD Nesterov (momentum 0.9, weight decay 5e-4).
//!
//! One untimed warm-up iteration, then prints one JSON line: images/s of each timed iteration,
//! images per CPU second (user + system) over the timed iterations (less sensitive than wall
//! time to other processes competing for the cores), and the peak resident set size (VmHWM).
mod common;

use common::Step;
use ood_nn::losses::FinetuneLoss;
use ood_nn::sgd::Sgd;
use ood_nn::tch::{self, nn::VarStore, Device, Kind, Tensor};
use ood_nn::train::Objective;
use ood_nn::{WideResNet, WrnConfig};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// User + system CPU seconds of this process so far (`/proc/self/stat` fields 14 and 15, in
/// clock ticks of 1/100 s on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: bench_vs_pytorch <infer|step> <iterations> <threads>");
        std::process::exit(2)
    };
    if a.len() != 3 {
        usage();
    }
    let mode = a[0].as_str();
    let (Ok(iters), Ok(threads)) = (a[1].parse::<usize>(), a[2].parse::<i32>()) else {
        usage()
    };
    if !matches!(mode, "infer" | "step") || iters == 0 || threads < 1 {
        usage();
    }
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = WideResNet::new(&vs.root(), &WrnConfig::default()).expect("WRN-40-2");
    let (n_in, n_out) = (128i64, 256i64);
    let n = if mode == "infer" { 256 } else { n_in + n_out };
    let mut step = Step {
        net: &net,
        opt: Sgd::new(&vs, 0.001, 0.9, 5e-4, true),
        objective: Objective::Finetune(FinetuneLoss::energy_cifar10()),
        x: Tensor::randn([n, 3, 32, 32], (Kind::Float, Device::Cpu)),
        y: Tensor::randint(10, [n_in], (Kind::Int64, Device::Cpu)),
        n_in,
        lr: 0.001,
    };
    let mut ips = Vec::with_capacity(iters);
    let mut cpu_start = 0.0;
    for i in 0..=iters {
        if i == 1 {
            cpu_start = cpu_seconds();
        }
        let seconds = step.seconds(mode == "infer");
        if i > 0 {
            ips.push(n as f64 / seconds);
        }
    }
    let cpu = cpu_seconds() - cpu_start;
    println!(
        "{}",
        serde_json::json!({
            "impl": "tch",
            "mode": mode,
            "batch": n,
            "threads": tch::get_num_threads(),
            "images_per_second": ips,
            "images_per_cpu_second": (n as f64 * iters as f64) / cpu,
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}
