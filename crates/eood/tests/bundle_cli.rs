//! `eood bundle create|check|decide` on the shipped bundle (models/fmnist-bundle), the bad
//! bundles they must refuse with one line and exit 2, and (with `nn`) the same numbers as the
//! extract -> score -> detect path through libtorch.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ood_data::formats::npy_images::NpyImages;
use serde_json::Value;

fn eood() -> Command {
    Command::cargo_bin("eood").unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mnist_npy() -> PathBuf {
    root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy")
}

/// The eight MNIST digits as PNG files.
fn write_pngs(dir: &Path) -> Vec<PathBuf> {
    let imgs = NpyImages::open(&mnist_npy()).unwrap();
    (0..imgs.len())
        .map(|i| {
            let v = imgs.image(i).unwrap();
            let buf = image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([v[[y as usize, x as usize, 0]]])
            });
            let p = dir.join(format!("digit{i}.png"));
            buf.save(&p).unwrap();
            p
        })
        .collect()
}

fn decide(pngs: &[PathBuf]) -> Vec<Value> {
    let out = eood()
        .args(["bundle", "decide", "--bundle"])
        .arg(root().join("models/fmnist-bundle"))
        .args(pngs)
        .assert()
        .success();
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn check_accepts_the_shipped_bundle() {
    let out = eood()
        .args(["bundle", "check"])
        .arg(root().join("models/fmnist-bundle"))
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.starts_with("ok: "), "{text}");
    assert!(text.contains("onnx model.onnx, 10 classes, 64 features, energy tau = 5.651373015166513, input 28x28x1"), "{text}");
}

#[test]
fn decide_refuses_mnist_pngs() {
    let t = tempfile::tempdir().unwrap();
    let d = decide(&write_pngs(t.path()));
    assert_eq!(d.len(), 8);
    let accepted: Vec<usize> = (0..8)
        .filter(|&i| d[i]["decision"]["accepted"] == true)
        .collect();
    assert_eq!(accepted, [0, 1, 6], "{d:?}");
    assert!(d[0]["file"].as_str().unwrap().ends_with("digit0.png"));
    assert!(d[0]["decision"]["score"].as_f64().unwrap().is_finite());
}

#[test]
fn bad_bundles_and_images_are_one_line_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    std::fs::create_dir(&dir).unwrap();
    for f in ["bundle.json", "model.onnx", "detector.json"] {
        std::fs::copy(root().join("models/fmnist-bundle").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("detector.json"), b"{}").unwrap();
    let out = eood().args(["bundle", "check"]).arg(&dir).assert().code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("detector.json: SHA-256 is "), "{err}");

    let junk = t.path().join("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = eood()
        .args(["bundle", "decide", "--bundle"])
        .arg(root().join("models/fmnist-bundle"))
        .arg(&junk)
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("junk.png"), "{err}");
}

#[test]
fn create_writes_a_bundle_that_checks() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("bundle");
    let args = |c: &mut Command| {
        c.args(["bundle", "create", "--onnx"])
            .arg(root().join("models/fmnist-wrn-10-1.onnx"))
            .arg("--checkpoint")
            .arg(root().join("models/fmnist-wrn-10-1.json"))
            .arg("--detector")
            .arg(root().join("models/fmnist-detector.json"))
            .arg("--out-dir")
            .arg(&out);
    };
    let mut c = eood();
    args(&mut c);
    c.assert().success();
    eood()
        .args(["bundle", "check"])
        .arg(&out)
        .assert()
        .success();
    // a second create keeps the first bundle: one line, exit 2
    let mut c = eood();
    args(&mut c);
    let o = c.assert().code(2);
    let err = String::from_utf8(o.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Bundle decisions equal the libtorch path: extract (tch) -> score energy -> detect.
#[cfg(feature = "nn")]
#[test]
fn decisions_equal_extract_score_detect() {
    let t = tempfile::tempdir().unwrap();
    let ex = t.path().join("ex");
    eood()
        .args(["extract", "--checkpoint"])
        .arg(root().join("models/fmnist-wrn-10-1.json"))
        .arg("--data")
        .arg(mnist_npy())
        .args(["--quiet", "--out"])
        .arg(&ex)
        .assert()
        .success();
    let scores = t.path().join("scores.npy");
    eood()
        .args(["score", "--method", "energy", "--logits"])
        .arg(ex.join("logits.npy"))
        .arg("--out")
        .arg(&scores)
        .assert()
        .success();
    let flags = t.path().join("flags.npy");
    eood()
        .args(["detect", "--detector"])
        .arg(root().join("models/fmnist-detector.json"))
        .arg("--scores")
        .arg(&scores)
        .arg("--out")
        .arg(&flags)
        .assert()
        .success();
    let want_scores: ndarray::Array1<f64> = ndarray_npy::read_npy(&scores).unwrap();
    let want_flags: ndarray::Array1<u8> = ndarray_npy::read_npy(&flags).unwrap();
    let d = decide(&write_pngs(t.path()));
    for (i, v) in d.iter().enumerate() {
        let s = v["decision"]["score"].as_f64().unwrap();
        assert!(
            (s - want_scores[i]).abs() < 1e-4,
            "{i}: bundle {s}, tch {}",
            want_scores[i]
        );
        assert_eq!(v["decision"]["accepted"] == true, want_flags[i] == 1, "{i}");
    }
}
