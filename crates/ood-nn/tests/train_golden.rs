//! Training steps must reproduce PyTorch's: three SGD steps (Nesterov, weight decay, the code of
//! record's cosine schedule with `scheduler.step()` before `optimizer.step()`) from the golden
//! WRN-10-1, with cross-entropy, the energy-bounded loss and OE. Golden values:
//! tests/golden/make_golden.py -> train_steps.json.
use std::path::PathBuf;

use ood_nn::losses::FinetuneLoss;
use ood_nn::sgd::{CosineSchedule, Sgd};
use ood_nn::tch::{nn::VarStore, Device, Kind, Tensor};
use ood_nn::train::{train_step, Objective};
use ood_nn::{pytorch, state_dict, WideResNet, WrnConfig};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn rows(v: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).unwrap();
    let flat: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

#[test]
fn sgd_steps_match_pytorch_for_all_objectives() {
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden("train_steps.json")).unwrap())
            .unwrap();
    let x_arr: ndarray::ArrayD<f32> = ndarray_npy::read_npy(golden("wrn10_x.npy")).unwrap();
    let x = Tensor::from_slice(x_arr.as_slice().unwrap()).view([4, 3, 32, 32]);
    let target: Vec<i64> = serde_json::from_value(g["target"].clone()).unwrap();
    let (m_in, m_out) = (g["m_in"].as_f64().unwrap(), g["m_out"].as_f64().unwrap());
    let sd = pytorch::load_state_dict(golden("wrn10_zip.pt")).unwrap();
    for case in g["cases"].as_array().unwrap() {
        let name = case["objective"].as_str().unwrap();
        let (objective, n_in) = match name {
            "ce" => (Objective::CrossEntropy, 4),
            "energy" => (
                Objective::Finetune(FinetuneLoss::Energy {
                    m_in,
                    m_out,
                    lambda: 0.1,
                }),
                2,
            ),
            _ => (Objective::Finetune(FinetuneLoss::outlier_exposure()), 2),
        };
        let targets = Tensor::from_slice(&target[..n_in as usize]);
        let vs = VarStore::new(Device::Cpu);
        let config = WrnConfig {
            depth: 10,
            widen_factor: 1,
            dropout: 0.0,
            num_classes: 10,
            in_channels: 3,
        };
        let net = WideResNet::new(&vs.root(), &config).unwrap();
        state_dict::load_into(&vs, &sd).unwrap();
        let lr = case["lr"].as_f64().unwrap();
        let schedule = CosineSchedule {
            lr_max: lr,
            lr_min: 1e-6,
            total_steps: case["total_steps"].as_u64().unwrap(),
        };
        let mut opt = Sgd::new(&vs, lr, 0.9, 5e-4, true);
        let want: Vec<f64> = serde_json::from_value(case["losses"].clone()).unwrap();
        for (step, want_loss) in want.iter().enumerate() {
            let (loss, _) = train_step(
                &net,
                &mut opt,
                &objective,
                &x,
                &targets,
                n_in,
                schedule.lr_for_step(step as u64),
            );
            let rel = (loss - want_loss).abs() / want_loss.abs();
            assert!(
                rel < 1e-4,
                "{name} step {step}: loss {loss} vs PyTorch {want_loss}"
            );
        }
        let logits = ood_nn::tch::no_grad(|| net.forward(&x, false));
        let want_logits = rows(&case["logits_after"]);
        let err = ((&logits - &want_logits).abs() / want_logits.abs().clamp_min(1e-2))
            .max()
            .double_value(&[]);
        assert!(
            err < 1e-3,
            "{name}: eval logits after 3 steps differ, max relative error {err}"
        );
        // The steps did move the model (a vacuous comparison would also pass otherwise).
        let moved = vs.variables()["fc.bias"].copy();
        let orig = &sd.iter().find(|(k, _)| k == "fc.bias").unwrap().1;
        assert!(
            (moved - orig).abs().max().double_value(&[]) > 1e-6,
            "{name}: fc.bias did not change"
        );
        let want_bias: Vec<f64> = serde_json::from_value(case["fc_bias_after"].clone()).unwrap();
        let bias = Vec::<f32>::try_from(vs.variables()["fc.bias"].to_kind(Kind::Float)).unwrap();
        for (b, w) in bias.iter().zip(&want_bias) {
            assert!(
                (*b as f64 - w).abs() < 1e-5 * w.abs().max(1.0),
                "{name}: fc.bias {b} vs {w}"
            );
        }
    }
}
