//! The training loop end to end on a tiny synthetic 28x28x1 task: it learns, writes checkpoint
//! and log, and a run interrupted after an epoch resumes to exactly the uninterrupted result.
use std::sync::Arc;

use ndarray::{Array1, Array4};
use ood_data::batch::{BatchConfig, BatchLoader};
use ood_data::transforms::{Normalize, Pipeline};
use ood_data::ImageSet;
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::losses::FinetuneLoss;
use ood_nn::tch::{self, nn::VarStore, Device};
use ood_nn::train::{self, ResumeChanges, RunConfig, RunData, RunOutput};
use ood_nn::{state_dict, WideResNet, WrnConfig};

/// Where a test run writes (no progress; a changed configuration on resume is refused).
fn output(checkpoint: std::path::PathBuf, resume: bool, stop_after: Option<u64>) -> RunOutput {
    RunOutput {
        checkpoint,
        resume,
        progress: false,
        stop_after,
        changes: ResumeChanges::Refuse,
    }
}

/// Class k in 0..3 lights up the k-th horizontal band, plus seeded noise.
fn synthetic(n: usize, seed: u64) -> ImageSet {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut images = Array4::<u8>::zeros((n, 28, 28, 1));
    let mut labels = Array1::<i64>::zeros(n);
    for i in 0..n {
        let k = i % 3;
        labels[i] = k as i64;
        for y in 0..28 {
            for x in 0..28 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 58) as u8; // 0..63
                let band = if y / 9 == k { 150 } else { 0 };
                images[[i, y, x, 0]] = band + noise;
            }
        }
    }
    ImageSet {
        images,
        labels: Some(labels),
    }
}

fn loader(set: ImageSet, batch_size: usize, shuffle: bool, seed: u64) -> BatchLoader {
    let pipeline = Pipeline {
        steps: vec![],
        normalize: Normalize::unit(1),
    };
    let config = BatchConfig {
        batch_size,
        shuffle,
        drop_last: shuffle,
        seed,
        workers: 1,
        depth: 2,
    };
    BatchLoader::new(Arc::new(set), pipeline, config).unwrap()
}

/// libtorch's generator is process-global: tests that draw from it must not interleave.
static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn arch() -> WrnConfig {
    WrnConfig {
        depth: 10,
        widen_factor: 1,
        dropout: 0.3,
        num_classes: 3,
        in_channels: 1,
    }
}

struct Run {
    vs: VarStore,
    net: WideResNet,
    meta: CheckpointMeta,
}

fn fresh(seed: u64) -> Run {
    tch::manual_seed(seed as i64);
    let vs = VarStore::new(Device::Cpu);
    let net = WideResNet::new(&vs.root(), &arch()).unwrap();
    let meta = CheckpointMeta::new(arch(), serde_json::Value::Null, seed);
    Run { vs, net, meta }
}

fn config() -> RunConfig {
    RunConfig {
        epochs: 3,
        batch_size: 8,
        lr: 0.1,
        seed: 5,
        ..RunConfig::pretrain()
    }
}

#[test]
fn trains_logs_and_resumes_exactly() {
    let _guard = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let train_set = loader(synthetic(96, 1), 8, true, 11);
    let test_set = loader(synthetic(30, 2), 16, false, 0);
    let data = RunData {
        train: &train_set,
        outliers: None,
        test: Some(&test_set),
    };

    // Uninterrupted.
    let full = dir.path().join("full.json");
    let mut a = fresh(3);
    let out = output(full.clone(), false, None);
    // A log left by an earlier run of the same checkpoint (or one killed before its first save)
    // is not this fresh run's history: it must not be appended to.
    std::fs::write(out.log_path(), "{\"epoch\":1}\n{\"epoch\":2}\n").unwrap();
    let logs = train::run(&a.vs, &a.net, &config(), &data, &mut a.meta, &out).unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[2].step, 36);
    let acc = logs[2].test_accuracy.unwrap();
    assert!(acc > 0.9, "the synthetic task is easy; test accuracy {acc}");
    let lines = std::fs::read_to_string(out.log_path()).unwrap();
    assert_eq!(lines.lines().count(), 3);
    let last: train::EpochLog = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last, logs[2]);
    let meta = checkpoint::read_meta(&full).unwrap();
    assert_eq!((meta.epoch, meta.step, meta.seed), (3, 36, 5));
    assert_eq!(meta.metrics["test_accuracy"], acc);
    assert_eq!(meta.training["objective"], "cross_entropy");

    // Interrupted after one epoch (as if killed), then resumed by a new process-like state.
    let part = dir.path().join("part.json");
    let mut b = fresh(3);
    let out1 = output(part.clone(), true, Some(1));
    train::run(&b.vs, &b.net, &config(), &data, &mut b.meta, &out1).unwrap();
    assert_eq!(checkpoint::read_meta(&part).unwrap().epoch, 1);
    let mut c = fresh(99); // different initialization: everything must come from the checkpoint
    let out2 = RunOutput {
        stop_after: None,
        ..out1
    };
    let logs_c = train::run(&c.vs, &c.net, &config(), &data, &mut c.meta, &out2).unwrap();
    assert_eq!(logs_c.len(), 2);
    for ((name, t), (name2, t2)) in state_dict::named_tensors(&a.vs)
        .iter()
        .zip(&state_dict::named_tensors(&c.vs))
    {
        assert_eq!(name, name2);
        assert!(
            t.equal(t2),
            "{name} differs between the uninterrupted and the resumed run"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out2.log_path())
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn energy_finetuning_pushes_outlier_energy_up() {
    let _guard = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().unwrap();
    let train_set = loader(synthetic(96, 1), 8, true, 11);
    let mut r = fresh(4);
    let out = output(dir.path().join("pre.json"), false, None);
    let data = RunData {
        train: &train_set,
        outliers: None,
        test: None,
    };
    train::run(&r.vs, &r.net, &config(), &data, &mut r.meta, &out).unwrap();

    // Outliers: uniform noise images, 16 per step next to 8 in-distribution images.
    let mut noise = synthetic(64, 3);
    noise
        .images
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = ((i * 7919) % 251) as u8);
    noise.labels = None;
    let outliers = loader(noise, 16, true, 12);
    let probe = loader(synthetic(12, 3), 12, false, 0)
        .epoch(0)
        .next()
        .unwrap()
        .unwrap();
    let (x_out, _) =
        train::batch_tensors(&outliers.epoch(0).next().unwrap().unwrap(), Device::Cpu).unwrap();
    let (x_in, _) = train::batch_tensors(&probe, Device::Cpu).unwrap();
    let mean_energy = |net: &WideResNet, x: &tch::Tensor| {
        tch::no_grad(|| {
            ood_nn::losses::energy(&net.forward(x, false))
                .mean(tch::Kind::Float)
                .double_value(&[])
        })
    };
    let (e_in0, e_out0) = (mean_energy(&r.net, &x_in), mean_energy(&r.net, &x_out));
    // Margins between the pretrained energies, as the paper's recipe picks them from data.
    let loss = FinetuneLoss::Energy {
        m_in: e_in0 - 3.0,
        m_out: e_out0 + 3.0,
        lambda: 0.1,
    };
    let ft = RunConfig {
        epochs: 2,
        batch_size: 8,
        outlier_batch_size: 16,
        lr: 0.05,
        ..RunConfig::finetune(loss)
    };
    let data = RunData {
        train: &train_set,
        outliers: Some(&outliers),
        test: None,
    };
    let out = output(dir.path().join("ft.json"), false, None);
    let logs = train::run(&r.vs, &r.net, &ft, &data, &mut r.meta, &out).unwrap();
    assert_eq!(logs.len(), 2);
    let (e_in1, e_out1) = (mean_energy(&r.net, &x_in), mean_energy(&r.net, &x_out));
    assert!(
        e_out1 - e_in1 > e_out0 - e_in0,
        "energy gap did not widen: before {e_in0:.3}/{e_out0:.3}, after {e_in1:.3}/{e_out1:.3}"
    );
    // Fine-tuning without outliers is refused.
    let data = RunData {
        train: &train_set,
        outliers: None,
        test: None,
    };
    let err = train::run(&r.vs, &r.net, &ft, &data, &mut r.meta, &out).unwrap_err();
    assert!(err.to_string().contains("outlier"), "{err}");
}
