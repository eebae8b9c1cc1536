//! `eood extract` on the tiny golden models of crates/ood-nn/tests/golden (outputs recorded by
//! PyTorch), and the bad inputs it must refuse with one line and exit code 2.
#![cfg(feature = "nn")]
mod common;

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

use common::eood;
use common::nn::{fails, golden, max_rel_err, npy};

fn wrn10_args(cmd: &mut Command) -> &mut Command {
    cmd.args(["extract", "--state-dict"])
        .arg(golden("wrn10_zip.pt"))
        .args(["--depth", "10", "--widen-factor", "1", "--quiet"])
}

#[test]
fn help_states_the_defaults() {
    let out = eood().args(["extract", "--help"]).assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for needle in [
        "--torchscript",
        "--features",
        "[default: 256]",
        "[default: auto]",
        "[default: .]",
        "[default: 40]",
        "fmnist-ood/test_x",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}

#[test]
fn state_dict_logits_and_features_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    wrn10_args(&mut eood())
        .arg("--data")
        .arg(golden("wrn10_x.npy"))
        .args(["--features", "--batch-size", "3", "--out-dir"])
        .arg(dir.path())
        .assert()
        .success();
    let err = max_rel_err(
        &npy(&dir.path().join("logits.npy")),
        &npy(&golden("wrn10_logits.npy")),
    );
    assert!(err < 1e-4, "{err}");
    let err = max_rel_err(
        &npy(&dir.path().join("features.npy")),
        &npy(&golden("wrn10_features.npy")),
    );
    assert!(err < 1e-4, "{err}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("extract.json")).unwrap())
            .unwrap();
    assert_eq!(record["rows"], 4);
    assert_eq!(record["classes"], 10);
    assert_eq!(record["feature_dim"], 64);
    assert!(record["normalize"].is_null(), "float input is used as is");
}

#[test]
fn torchscript_on_a_named_benchmark_array_with_explicit_normalization() {
    // A cache holding fmnist-ood/test_x.npy (here: the 16x16x3 golden test images).
    let cache = tempfile::tempdir().unwrap();
    let built = cache.path().join("fmnist-ood");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::copy(golden("odin_test_x.npy"), built.join("test_x.npy")).unwrap();
    let out = tempfile::tempdir().unwrap();
    eood()
        .args(["extract", "--torchscript"])
        .arg(golden("ts_pair.pt"))
        .args(["--dataset", "fmnist-ood/test_x", "--cache"])
        .arg(cache.path())
        .args(["--features", "--mean", "0.49137256,0.48235294,0.44666666"])
        .args(["--std", "0.24705882,0.24352941,0.2615686", "--out-dir"])
        .arg(out.path())
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "normalization (from --mean/--std)",
        ));
    let err = max_rel_err(
        &npy(&out.path().join("logits.npy")),
        &npy(&golden("ts_logits.npy")),
    );
    assert!(err < 1e-4, "{err}");
    let err = max_rel_err(
        &npy(&out.path().join("features.npy")),
        &npy(&golden("ts_features.npy")),
    );
    assert!(err < 1e-4, "{err}");

    // Without --mean/--std a TorchScript model gets the 3-channel default (CIFAR constants,
    // the values given above), so the logits are the same.
    let out2 = tempfile::tempdir().unwrap();
    eood()
        .args(["extract", "--torchscript"])
        .arg(golden("ts_pair.pt"))
        .args(["--dataset", "fmnist-ood/test_x", "--cache"])
        .arg(cache.path())
        .arg("--out-dir")
        .arg(out2.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("default for the channel count"));
    let err = max_rel_err(
        &npy(&out2.path().join("logits.npy")),
        &npy(&golden("ts_logits.npy")),
    );
    assert!(err < 1e-4, "{err}");

    // A missing array names the file and the arrays there are.
    eood()
        .args(["extract", "--torchscript"])
        .arg(golden("ts_pair.pt"))
        .args(["--dataset", "fmnist-ood/ood_test/nope", "--cache"])
        .arg(cache.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.npy does not exist"));
}

#[test]
fn bad_inputs_are_one_line_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let gray = dir.path().join("gray.npy");
    ndarray_npy::write_npy(&gray, &ndarray::Array3::<u8>::zeros((2, 32, 32))).unwrap();
    // A 3-channel state_dict for 1-channel data: the mismatch names the key and shapes.
    fails(
        wrn10_args(&mut eood()).arg("--data").arg(&gray),
        "conv1.weight",
    );
    // Normalization with the wrong number of channels.
    fails(
        eood()
            .args(["extract", "--torchscript"])
            .arg(golden("tiny_script.pt"))
            .arg("--data")
            .arg(golden("odin_test_x.npy"))
            .args(["--mean", "0.5", "--std", "0.5"]),
        "1 means and 1 stds but the images have 3 channel(s)",
    );
    fails(
        eood()
            .args(["extract", "--torchscript"])
            .arg(golden("wrn10_zip.pt"))
            .arg("--data")
            .arg(golden("wrn10_x.npy")),
        "not a loadable TorchScript module",
    );
    fails(
        eood()
            .args(["extract", "--torchscript"])
            .arg(golden("tiny_script.pt"))
            .arg("--data")
            .arg(dir.path().join("missing.npy")),
        "missing.npy",
    );
    // --device is parsed by clap into an enum: a usage error (exit 2) naming the choices
    eood()
        .args(["extract", "--torchscript"])
        .arg(golden("tiny_script.pt"))
        .arg("--data")
        .arg(golden("wrn10_x.npy"))
        .args(["--device", "tpu"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "expected auto, cpu, cuda or cuda:N",
        ));
    if !ood_nn_has_cuda() {
        fails(
            eood()
                .args(["extract", "--torchscript"])
                .arg(golden("tiny_script.pt"))
                .arg("--data")
                .arg(golden("wrn10_x.npy"))
                .args(["--device", "cuda"]),
            "CUDA device(s)",
        );
    }
    fails(
        eood()
            .args(["extract", "--torchscript"])
            .arg(golden("tiny_script.pt"))
            .arg("--data")
            .arg(golden("wrn10_x.npy"))
            .args(["--features", "--out-dir"])
            .arg(dir.path()),
        "`features(x)` method",
    );
    fails(
        eood()
            .args(["extract", "--torchscript"])
            .arg(golden("tiny_script.pt"))
            .args(["--dataset", "cifar10/test"]),
        "--dataset must be fmnist-ood/<array>",
    );
    // A failed run leaves no partial output.
    assert!(!dir.path().join("logits.npy").exists());
    assert!(!dir.path().join("features.npy").exists());
    // Model and data are required (clap's usage error, exit 2).
    eood()
        .args(["extract", "--data"])
        .arg(golden("wrn10_x.npy"))
        .assert()
        .code(2);
}

fn golden_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden("odin_golden.json")).unwrap()).unwrap()
}

fn scores(dir: &Path) -> Vec<f64> {
    ood_core::io::npy::read_f64_vector(&dir.join("scores.npy")).unwrap()
}

fn close(got: &[f64], want: &Value, rel: f64) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= rel * w.abs().max(1e-3), "{g} vs {w}");
    }
}

#[test]
fn odin_and_mahalanobis_with_fixed_settings_match_pytorch() {
    let want = golden_json();
    let dir = tempfile::tempdir().unwrap();
    wrn10_args(&mut eood())
        .arg("--data")
        .arg(golden("odin_test_x.npy"))
        .args([
            "--method",
            "odin",
            "--temperature",
            "10",
            "--epsilon",
            "0.0048",
            "--out-dir",
        ])
        .arg(dir.path())
        .assert()
        .success();
    let case = want["odin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["temperature"] == 10.0 && c["epsilon"] == 0.0048)
        .unwrap();
    close(&scores(dir.path()), &case["scores"], 1e-5);

    let dir = tempfile::tempdir().unwrap();
    wrn10_args(&mut eood())
        .arg("--data")
        .arg(golden("odin_test_x.npy"))
        .args([
            "--method",
            "mahalanobis",
            "--epsilon",
            "0.002",
            "--shrinkage",
            "0.01",
        ])
        .arg("--fit-images")
        .arg(golden("odin_train_x.npy"))
        .arg("--fit-labels")
        .arg(golden("odin_train_y.npy"))
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .success();
    let case = want["mahalanobis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["epsilon"] == 0.002)
        .unwrap();
    close(&scores(dir.path()), &case["scores"], 1e-4);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("mahalanobis.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["chosen"]["epsilon"], 0.002);
    assert_eq!(record["fit"]["classes"].as_array().unwrap().len(), 10);
}

#[test]
fn odin_grid_is_chosen_on_validation_sets_only() {
    let dir = tempfile::tempdir().unwrap();
    // Validation: the 8 test images as "ID", the first 20 training images as "OOD".
    wrn10_args(&mut eood())
        .arg("--data")
        .arg(golden("odin_test_x.npy"))
        .args(["--method", "odin", "--val-max", "20", "--val-id"])
        .arg(golden("odin_test_x.npy"))
        .arg("--val-ood")
        .arg(golden("odin_train_x.npy"))
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .success();
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("odin.json")).unwrap())
            .unwrap();
    let fpr: Vec<f64> = record["validation"]["mean_fpr95"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(fpr.len(), 40, "T x eps grid of the code of record");
    let best = fpr.iter().cloned().fold(f64::INFINITY, f64::min);
    let first_best = fpr.iter().position(|&f| f == best).unwrap();
    assert_eq!(record["chosen"], record["settings"][first_best]);
    assert_eq!(record["validation"]["max_images"], 20);
    assert_eq!(scores(dir.path()).len(), 8);

    // Without validation sets the grid cannot be chosen.
    fails(
        wrn10_args(&mut eood())
            .arg("--data")
            .arg(golden("odin_test_x.npy"))
            .args(["--method", "odin", "--out-dir"])
            .arg(dir.path()),
        "needs --val-id and --val-ood",
    );
    fails(
        wrn10_args(&mut eood())
            .arg("--data")
            .arg(golden("odin_test_x.npy"))
            .args(["--method", "mahalanobis", "--epsilon", "0"]),
        "needs --fit-images and --fit-labels",
    );
}

/// Whether this machine has a GPU libtorch can use (then `--device cuda` is valid).
#[test]
fn hostile_sizes_and_non_finite_input_are_refused_before_the_model_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // float input with a NaN in row 1: named, instead of NaN logits
    let mut x = npy(&golden("wrn10_x.npy"));
    x[&[1usize, 2, 3, 4][..]] = f32::NAN;
    let nan = dir.path().join("nan.npy");
    ndarray_npy::write_npy(&nan, &x).unwrap();
    fails(
        wrn10_args(&mut eood())
            .arg("--data")
            .arg(&nan)
            .arg("--out-dir")
            .arg(&out),
        "nan.npy: input row 1 is not finite (value NaN at element",
    );
    assert!(!out.exists(), "nothing written");
    // architecture flags from 10^9 to libtorch: refused in one line, no C++ abort
    for (flag, value, says) in [
        (
            "--depth",
            "1000000000",
            "WideResNet depth must be between 10 and 1000",
        ),
        (
            "--widen-factor",
            "100000",
            "widen_factor must be between 1 and 64",
        ),
        (
            "--num-classes",
            "1000000000000",
            "num_classes must be between 1 and 100000",
        ),
    ] {
        let mut args = vec![("--depth", "10"), ("--widen-factor", "1")];
        args.retain(|(f, _)| *f != flag);
        args.push((flag, value));
        fails(
            eood()
                .args(["extract", "--state-dict"])
                .arg(golden("wrn10_zip.pt"))
                .args(args.iter().flat_map(|(f, v)| [*f, *v]))
                .arg("--data")
                .arg(golden("wrn10_x.npy"))
                .arg("--out-dir")
                .arg(&out),
            says,
        );
    }
    for (flag, value) in [("--batch-size", "0"), ("--threads", "0")] {
        fails(
            wrn10_args(&mut eood())
                .arg("--data")
                .arg(golden("wrn10_x.npy"))
                .args([flag, value]),
            &format!("{flag} must be between 1 and"),
        );
    }
    assert!(!out.exists());
}

#[test]
fn quiet_keeps_the_result_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = wrn10_args(&mut eood())
        .arg("--data")
        .arg(golden("wrn10_x.npy"))
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .success();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wrote ") && err.contains("(4 x 10)"),
        "{err}"
    );
}

fn ood_nn_has_cuda() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}
