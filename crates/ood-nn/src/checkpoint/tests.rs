//! Unit tests of [`super`]: round trip, stale temps, hostile sidecars, corrupted weights.
use super::*;
use crate::state_dict;
use crate::wrn::WideResNet;
use tch::nn::VarStore;
use tch::{Device, Kind};

fn small() -> WrnConfig {
    WrnConfig {
        depth: 10,
        widen_factor: 1,
        dropout: 0.0,
        num_classes: 3,
        in_channels: 1,
    }
}

/// A freshly initialized small network saved as `m.json` in a new folder.
fn saved_small() -> (tempfile::TempDir, PathBuf, CheckpointMeta) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    let vs = VarStore::new(Device::Cpu);
    let _net = WideResNet::new(&vs.root(), &small()).unwrap();
    let mut meta = CheckpointMeta::new(small(), serde_json::Value::Null, 0);
    save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
    (dir, json, meta)
}

#[test]
fn round_trip_restores_identical_outputs_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("model.json");
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let net = WideResNet::new(&vs.root(), &small()).unwrap();
    // Move the BatchNorm statistics away from their initial values.
    let x = Tensor::randn([8, 1, 28, 28], (Kind::Float, Device::Cpu));
    let _ = net.forward(&x, true);
    let mut meta = CheckpointMeta::new(small(), serde_json::json!({"lr": 0.1}), 7);
    meta.epoch = 3;
    meta.step = 30;
    meta.metrics.insert("test_accuracy".into(), 0.5);
    let momentum = vec![(
        "momentum.fc.weight".to_string(),
        Tensor::ones([3, 64], (Kind::Float, Device::Cpu)),
    )];
    save(
        &json,
        &mut meta,
        &state_dict::named_tensors(&vs),
        Some(&momentum),
    )
    .unwrap();

    let ck = load(&json).unwrap();
    assert_eq!(ck.meta, meta);
    assert_eq!(ck.meta.weights, "model.e0003-s30.safetensors");
    let vs2 = VarStore::new(Device::Cpu);
    let net2 = WideResNet::new(&vs2.root(), &small()).unwrap();
    state_dict::load_into(&vs2, &ck.weights).unwrap();
    let (a, b) = (net.forward(&x, false), net2.forward(&x, false));
    assert!(a.equal(&b));
    let nbt = &vs2.variables()["bn1.num_batches_tracked"];
    assert_eq!(nbt.int64_value(&[]), 1);
    assert!(ck.optimizer.unwrap()[0].1.equal(&momentum[0].1));

    // A later save replaces the earlier files; nothing else in the directory is touched.
    std::fs::write(dir.path().join("model.notes.txt"), "keep").unwrap();
    meta.epoch = 4;
    meta.step = 40;
    save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "model.e0004-s40.safetensors",
            "model.json",
            "model.notes.txt"
        ]
    );
}

#[test]
fn stale_temps_of_dead_processes_are_removed_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("m.json");
    let dead = dir.path().join(".m.e0001-s1.safetensors.4194305.tmp");
    let live = dir.path().join(".m.json.1.tmp");
    let other = dir.path().join(".x.json.4194305.tmp");
    for p in [&dead, &live, &other] {
        std::fs::write(p, "partial").unwrap();
    }
    let vs = VarStore::new(Device::Cpu);
    let _net = WideResNet::new(&vs.root(), &small()).unwrap();
    let mut meta = CheckpointMeta::new(small(), serde_json::Value::Null, 0);
    save(&json, &mut meta, &state_dict::named_tensors(&vs), None).unwrap();
    assert!(!dead.exists() && live.exists() && other.exists());
}

#[test]
fn sidecars_declaring_huge_architectures_are_refused_before_libtorch() {
    let (_dir, json, _) = saved_small();
    let text = std::fs::read_to_string(&json).unwrap();
    for (from, to, says) in [
        (
            "\"depth\": 10",
            "\"depth\": 1000000000",
            "depth must be between 10 and 1000",
        ),
        (
            "\"widen_factor\": 1",
            "\"widen_factor\": 1000000",
            "widen_factor must be",
        ),
        (
            "\"num_classes\": 3",
            "\"num_classes\": 1000000000000",
            "num_classes must be",
        ),
        ("\"depth\": 10", "\"depth\": 11", "6n+4"),
    ] {
        assert!(text.contains(from), "{from}");
        std::fs::write(&json, text.replace(from, to)).unwrap();
        let e = load(&json).unwrap_err().to_string();
        assert!(
            e.contains("m.json: architecture: ") && e.contains(says),
            "{e}"
        );
    }
    // depth 1000 x width 64 passes the ranges but not the memory check
    let big = text
        .replace("\"depth\": 10", "\"depth\": 994")
        .replace("\"widen_factor\": 1", "\"widen_factor\": 64");
    std::fs::write(&json, big).unwrap();
    let e = load(&json).unwrap_err().to_string();
    assert!(e.contains("WideResNet parameters: needs"), "{e}");
}

#[test]
fn corrupted_weights_are_detected() {
    let (dir, json, meta) = saved_small();
    let w = dir.path().join(&meta.weights);
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&w, bytes).unwrap();
    let err = load(&json).unwrap_err().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    let err = load(&dir.path().join("m.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("JSON sidecar"), "{err}");
}
