//! Our WideResNet loaded from PyTorch checkpoints must reproduce PyTorch's logits.
//! Golden files and their generating script: tests/golden/make_golden.py.
mod common;

use ndarray::{ArrayD, IxDyn};
use ood_nn::pytorch::{load_state_dict, load_state_dict_with_format, Format};
use ood_nn::tch::{nn::VarStore, Device, Kind, Tensor};
use ood_nn::{state_dict, Error, WideResNet, WrnConfig};

use common::{golden, max_rel_err, small_config};

fn npy(name: &str) -> ArrayD<f32> {
    ndarray_npy::read_npy(golden(name)).unwrap()
}

fn to_tensor(a: &ArrayD<f32>) -> Tensor {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    Tensor::from_slice(a.as_slice().unwrap()).reshape(shape)
}

fn to_array(t: &Tensor) -> ArrayD<f32> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let v: Vec<f32> = Vec::try_from(t.to_kind(Kind::Float).contiguous().view(-1)).unwrap();
    ArrayD::from_shape_vec(IxDyn(&shape), v).unwrap()
}

fn check_logits(file: &str, expect_format: Format) {
    let (sd, format) = load_state_dict_with_format(golden(file)).unwrap();
    assert_eq!(format, expect_format);
    let vs = VarStore::new(Device::Cpu);
    let net = WideResNet::new(&vs.root(), &small_config()).unwrap();
    state_dict::load_into(&vs, &sd).unwrap();
    let x = to_tensor(&npy("wrn10_x.npy"));
    let (logits, features) = ood_nn::tch::no_grad(|| net.forward_features(&x, false));
    let (logits, features) = (to_array(&logits), to_array(&features));
    let want_logits = npy("wrn10_logits.npy");
    let want_features = npy("wrn10_features.npy");
    let err = max_rel_err(&logits, &want_logits);
    assert!(
        err < 1e-4,
        "{file}: logits differ from PyTorch's, max relative error {err}"
    );
    let err = max_rel_err(&features, &want_features);
    assert!(
        err < 1e-4,
        "{file}: features differ from PyTorch's, max relative error {err}"
    );
    // A model that ignored the checkpoint would not get close: guard against a vacuous pass.
    let spread = want_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.1, "golden logits are degenerate");
}

#[test]
fn zip_checkpoint_reproduces_pytorch_logits() {
    check_logits("wrn10_zip.pt", Format::Zip);
}

#[test]
fn legacy_checkpoint_reproduces_pytorch_logits() {
    check_logits("wrn10_legacy.pt", Format::Legacy);
}

#[test]
fn checkpoint_keys_are_pytorch_state_dict_keys() {
    let sd = load_state_dict(golden("wrn10_zip.pt")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _net = WideResNet::new(&vs.root(), &small_config()).unwrap();
    let mut ours: Vec<String> = vs.variables().into_keys().collect();
    let mut theirs: Vec<String> = sd.iter().map(|(k, _)| k.clone()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert!(theirs.contains(&"block2.layer.0.convShortcut.weight".to_string()));
    assert!(theirs.contains(&"bn1.num_batches_tracked".to_string()));
    // num_batches_tracked is an int64 scalar in PyTorch; the script sets it to 123.
    let nbt = &sd
        .iter()
        .find(|(k, _)| k == "bn1.num_batches_tracked")
        .unwrap()
        .1;
    assert_eq!(nbt.kind(), Kind::Int64);
    assert_eq!(nbt.size(), Vec::<i64>::new());
    assert_eq!(nbt.int64_value(&[]), 123);
}

#[test]
fn zip_and_legacy_hold_identical_tensors() {
    let a = load_state_dict(golden("wrn10_zip.pt")).unwrap();
    let b = load_state_dict(golden("wrn10_legacy.pt")).unwrap();
    assert_eq!(a.len(), b.len());
    for ((ka, ta), (kb, tb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(ta.equal(tb), "{ka} differs between formats");
    }
}

#[test]
fn wrapped_checkpoint_with_module_prefix_is_unwrapped() {
    let full = load_state_dict(golden("wrn10_zip.pt")).unwrap();
    let head = load_state_dict(golden("wrn10_wrapped.pt")).unwrap();
    let keys: Vec<&str> = head.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"fc.weight") && keys.contains(&"bn1.running_var"),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| !k.starts_with("module.")));
    for (k, t) in &head {
        let (_, want) = full.iter().find(|(fk, _)| fk == k).unwrap();
        assert!(t.equal(want), "{k}");
    }
}

#[test]
fn mismatch_names_missing_unexpected_and_shapes() {
    let sd = load_state_dict(golden("wrn10_zip.pt")).unwrap();
    // Wrong architecture: 100 classes, depth 16 (two blocks per stage).
    let config = WrnConfig {
        depth: 16,
        num_classes: 100,
        ..small_config()
    };
    let vs = VarStore::new(Device::Cpu);
    let _net = WideResNet::new(&vs.root(), &config).unwrap();
    let err = state_dict::load_into(&vs, &sd).unwrap_err();
    let Error::StateDictMismatch(m) = &err else {
        panic!("{err}")
    };
    assert!(m.unexpected.is_empty(), "{:?}", m.unexpected);
    assert!(m
        .missing
        .iter()
        .any(|(k, s)| k == "block1.layer.1.conv1.weight" && s == &[16, 16, 3, 3]));
    assert_eq!(
        m.shape,
        vec![
            ("fc.bias".to_string(), vec![100], vec![10]),
            ("fc.weight".to_string(), vec![100, 64], vec![10, 64]),
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("fc.weight model [100, 64] vs file [10, 64]"),
        "{msg}"
    );
    // And nothing was copied: the model's fc bias is still its zero initialization.
    assert_eq!(
        vs.variables()["fc.bias"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
}

#[test]
fn non_checkpoints_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pt");
    std::fs::write(&text, b"hello").unwrap();
    let err = load_state_dict(&text).unwrap_err().to_string();
    assert!(
        err.contains("notes.pt") && err.contains("neither a zip archive nor a pickle"),
        "{err}"
    );
    // A truncated legacy file: the storages are cut off.
    let bytes = std::fs::read(golden("wrn10_legacy.pt")).unwrap();
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let err = load_state_dict(&cut).unwrap_err().to_string();
    assert!(err.contains("runs past the end of the file"), "{err}");
    // TorchScript archives are zips without data.pkl at the root.
    let err = load_state_dict(golden("tiny_script.pt"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.pt") || err.contains("tiny_script.pt"),
        "{err}"
    );
    let missing = load_state_dict(dir.path().join("absent.pt"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.pt"), "{missing}");
}

#[test]
fn truncated_or_corrupted_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["wrn10_zip.pt", "wrn10_legacy.pt"] {
        let bytes = std::fs::read(golden(file)).unwrap();
        let path = dir.path().join(file);
        // Truncations at many points, then single-byte corruptions across the pickle region.
        for cut in (0..bytes.len()).step_by(4099) {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                load_state_dict(&path).is_err(),
                "{file} cut at {cut} was accepted"
            );
        }
        for pos in (0..bytes.len().min(20_000)).step_by(97) {
            let mut b = bytes.clone();
            b[pos] ^= 0x5a;
            std::fs::write(&path, &b).unwrap();
            let _ = load_state_dict(&path); // may load (data bytes) or fail, must not panic
        }
    }
}
