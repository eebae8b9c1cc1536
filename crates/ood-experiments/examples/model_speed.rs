//! Training and inference throughput of WideResNet candidates for 28x28x1 input (Fashion-MNIST),
//! to pick the benchmark's model (see docs/experiments.md). Synthetic input; time only.
//! `cargo run --release -p ood-experiments --example model_speed -- 16:2 10:2 16:4`
use std::time::Instant;

use ood_nn::losses::cross_entropy;
use ood_nn::sgd::Sgd;
use ood_nn::tch::{nn::VarStore, Device, Kind, Tensor};
use ood_nn::{WideResNet, WrnConfig};

fn main() {
    let specs: Vec<String> = std::env::args().skip(1).collect();
    let specs = if specs.is_empty() {
        vec!["10:2".into(), "16:2".into(), "16:4".into()]
    } else {
        specs
    };
    for s in specs {
        let (d, k) = s.split_once(':').expect("depth:width");
        let cfg = WrnConfig {
            depth: d.parse().unwrap(),
            widen_factor: k.parse().unwrap(),
            dropout: 0.0,
            num_classes: 10,
            in_channels: 1,
        };
        let vs = VarStore::new(Device::Cpu);
        let net = WideResNet::new(&vs.root(), &cfg).unwrap();
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        let mut opt = Sgd::new(&vs, 0.1, 0.9, 5e-4, true);
        let x = Tensor::randn([128, 1, 28, 28], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(10, [128], (Kind::Int64, Device::Cpu));
        let steps = 8;
        for _ in 0..2 {
            let l = cross_entropy(&net.forward(&x, true), &y);
            opt.zero_grad();
            l.backward();
            opt.step();
        }
        let t0 = Instant::now();
        for _ in 0..steps {
            let l = cross_entropy(&net.forward(&x, true), &y);
            opt.zero_grad();
            l.backward();
            opt.step();
        }
        let train = 128.0 * steps as f64 / t0.elapsed().as_secs_f64();
        let xi = Tensor::randn([512, 1, 28, 28], (Kind::Float, Device::Cpu));
        let t0 = Instant::now();
        for _ in 0..4 {
            let _ = ood_nn::tch::no_grad(|| net.forward(&xi, false));
        }
        let infer = 2048.0 / t0.elapsed().as_secs_f64();
        println!(
            "{}: {params} params, train {train:.0} img/s, inference {infer:.0} img/s",
            cfg.name()
        );
    }
}
