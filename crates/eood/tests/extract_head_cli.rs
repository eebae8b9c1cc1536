//! `eood extract` writes the last layer (and, asked, the feature map before pooling) for each
//! kind of model: on the shipped checkpoint (models/) logits == features W^T + b and the map's
//! spatial mean is the features; the TorchScript head rule on the golden module; then the zoo
//! runs on what extract wrote.
#![cfg(feature = "nn")]
mod common;

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis, Ix2};

use common::eood;
use common::nn::{fails, npy};

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn matrix(path: &Path) -> Array2<f64> {
    npy(path)
        .into_dimensionality::<Ix2>()
        .unwrap()
        .mapv(f64::from)
}

/// Deterministic uint8 "images", N x 28 x 28.
fn images(path: &Path, n: usize) {
    let v: Vec<u8> = (0..n * 28 * 28)
        .map(|i| ((i * 7919 + i / 28 * 31) % 251) as u8)
        .collect();
    let a = ndarray::Array3::from_shape_vec((n, 28, 28), v).unwrap();
    ndarray_npy::write_npy(path, &a).unwrap();
}

#[test]
fn shipped_model_head_reproduces_the_logits_and_the_map_pools_to_the_features() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.npy");
    images(&data, 10);
    eood()
        .args(["extract", "--checkpoint"])
        .arg(repo("models/fmnist-wrn-10-1.json"))
        .arg("--data")
        .arg(&data)
        .args([
            "--features",
            "--feature-map",
            "--batch-size",
            "4",
            "--device",
            "cpu",
        ])
        .args(["--quiet", "--out-dir"])
        .arg(dir.path())
        .assert()
        .success();
    let out = |n: &str| dir.path().join(n);
    let (l, f, w) = (
        matrix(&out("logits.npy")),
        matrix(&out("features.npy")),
        matrix(&out("weight.npy")),
    );
    let b = npy(&out("bias.npy")).mapv(f64::from);
    assert_eq!((w.nrows(), w.ncols(), b.len()), (10, 64, 10));
    let rebuilt = f.dot(&w.t()) + &b.view().into_dimensionality::<ndarray::Ix1>().unwrap();
    let err = (&rebuilt - &l)
        .mapv(f64::abs)
        .fold(0.0f64, |a, &v| a.max(v));
    assert!(err < 1e-4, "logits vs features W^T + b: {err}");
    let map = npy(&out("feature_map.npy")).mapv(f64::from);
    assert_eq!(map.shape(), &[10, 64, 7, 7]);
    let pooled = map.mean_axis(Axis(3)).unwrap().mean_axis(Axis(2)).unwrap();
    let err = (&pooled - &f.into_dyn())
        .mapv(f64::abs)
        .fold(0.0f64, |a, &v| a.max(v));
    assert!(err < 1e-5, "map mean vs features: {err}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out("extract.json")).unwrap()).unwrap();
    assert_eq!(record["feature_map_shape"], serde_json::json!([64, 7, 7]));

    // the zoo on what extract wrote: ASH-P on the map is the paper's variant, and differs from
    // the pooled one (pruning over 64 x 49 activations, not 64)
    let s = |n: &str| out(n).to_str().unwrap().to_string();
    let head = ["--weight", &s("weight.npy"), "--bias", &s("bias.npy")];
    for (input, flag, name) in [
        ("features.npy", "--features", "pooled.npy"),
        ("feature_map.npy", "--feature-map", "map.npy"),
    ] {
        eood()
            .args(["score", "--method", "ash_p", flag, &s(input)])
            .args(head)
            .args(["--out", &s(name)])
            .assert()
            .success();
    }
    let (p, m) = (
        ood_core::io::npy::read_f64_vector(&out("pooled.npy")).unwrap(),
        ood_core::io::npy::read_f64_vector(&out("map.npy")).unwrap(),
    );
    assert_eq!((p.len(), m.len()), (10, 10));
    assert!(
        p.iter().zip(&m).any(|(a, b)| (a - b).abs() > 1e-6),
        "{p:?} {m:?}"
    );
}

#[test]
fn torchscript_head_is_found_by_the_rule_or_by_name() {
    let golden = repo("crates/ood-nn/tests/golden");
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut c = eood();
        c.args(["extract", "--torchscript"])
            .arg(golden.join("ts_pair.pt"))
            .arg("--data")
            .arg(golden.join("odin_test_x.npy"))
            .args(["--features", "--quiet", "--device", "cpu"])
            .args(extra)
            .arg("--out-dir")
            .arg(dir.path());
        c
    };
    run(&[]).assert().success();
    let w = matrix(&dir.path().join("weight.npy"));
    assert_eq!((w.nrows(), w.ncols()), (10, 6));
    let l = matrix(&dir.path().join("logits.npy"));
    let f = matrix(&dir.path().join("features.npy"));
    let b = npy(&dir.path().join("bias.npy")).mapv(f64::from);
    let b = b.into_dimensionality::<ndarray::Ix1>().unwrap();
    let err = (f.dot(&w.t()) + &b - &l)
        .mapv(f64::abs)
        .fold(0.0f64, |a, &v| a.max(v));
    assert!(err < 1e-4, "{err}");
    // by name: the same parameters
    run(&["--head-weight", "fc.weight"]).assert().success();
    assert_eq!(matrix(&dir.path().join("weight.npy")), w);
    fails(
        &mut run(&["--head-weight", "fc.nope"]),
        "no parameter named \"fc.nope\"",
    );
    fails(&mut run(&["--feature-map"]), "no `feature_map(x)` method");
    // --no-head: features only
    let other = tempfile::tempdir().unwrap();
    eood()
        .args(["extract", "--torchscript"])
        .arg(golden.join("ts_pair.pt"))
        .arg("--data")
        .arg(golden.join("odin_test_x.npy"))
        .args([
            "--features",
            "--no-head",
            "--quiet",
            "--device",
            "cpu",
            "--out-dir",
        ])
        .arg(other.path())
        .assert()
        .success();
    assert!(other.path().join("features.npy").exists());
    assert!(!other.path().join("weight.npy").exists());
}
