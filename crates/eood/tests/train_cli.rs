//! `eood train` and `eood finetune` on tiny synthetic .npy data (feature `nn`).
#![cfg(feature = "nn")]
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ndarray::{Array1, Array4};
use ndarray_npy::write_npy;
use predicates::prelude::*;

fn eood() -> Command {
    let mut c = Command::cargo_bin("eood").unwrap();
    c.env("OMP_NUM_THREADS", "1");
    c
}

/// `n` images of `side x side x c`; class k = i % 3 brightens the k-th horizontal band.
fn write_set(
    dir: &Path,
    name: &str,
    n: usize,
    side: usize,
    c: usize,
    labelled: bool,
) -> (PathBuf, PathBuf) {
    let mut x = Array4::<u8>::zeros((n, side, side, c));
    let mut y = Array1::<i64>::zeros(n);
    for i in 0..n {
        y[i] = (i % 3) as i64;
        for r in 0..side {
            for col in 0..side {
                for ch in 0..c {
                    let band = if labelled && r * 3 / side == i % 3 {
                        160
                    } else {
                        0
                    };
                    x[[i, r, col, ch]] = band + ((i * 31 + r * 7 + col * 13 + ch) % 61) as u8;
                }
            }
        }
    }
    let (xp, yp) = (
        dir.join(format!("{name}_x.npy")),
        dir.join(format!("{name}_y.npy")),
    );
    write_npy(&xp, &x).unwrap();
    write_npy(&yp, &y).unwrap();
    (xp, yp)
}

#[test]
fn help_states_the_code_of_record_defaults() {
    eood().args(["train", "--help"]).assert().success().stdout(
        predicate::str::contains("[default: 0.1]")
            .and(predicate::str::contains("[default: 128]"))
            .and(predicate::str::contains("[default: 40]"))
            .and(predicate::str::contains("[default: 0.0005]"))
            .and(predicate::str::contains("[default: 100]")),
    );
    eood()
        .args(["finetune", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("[default: 0.001]")
                .and(predicate::str::contains("[default: 256]"))
                .and(predicate::str::contains("[default: -23]"))
                .and(predicate::str::contains("[default: -5]"))
                .and(predicate::str::contains("[default: energy]"))
                .and(predicate::str::contains("[default: 10]")),
        );
}

#[test]
fn train_then_finetune_with_energy_and_oe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = write_set(d, "train", 24, 28, 1, true);
    let (tx, ty) = write_set(d, "test", 9, 28, 1, true);
    let (noise, _) = write_set(d, "noise", 16, 28, 1, false);
    let model = d.join("pre.json");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    eood()
        .args([
            "train",
            "--depth",
            "10",
            "--widen-factor",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--quiet",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--test-images",
            &s(&tx),
            "--test-labels",
            &s(&ty),
        ])
        .args(["--out", &s(&model), "--stop-after", "1"])
        .assert()
        .success()
        .stderr(predicate::str::contains("epoch 1/2"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(meta["epoch"], 1);
    assert_eq!(meta["architecture"]["in_channels"], 1);
    assert_eq!(meta["architecture"]["num_classes"], 3);
    assert_eq!(meta["input"]["mean"][0].as_f64().unwrap() as f32, 0.286f32);
    // Resume the interrupted run to its end.
    eood()
        .args([
            "train",
            "--depth",
            "10",
            "--widen-factor",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--quiet",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--out",
            &s(&model),
            "--resume",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("epoch 2/2"));
    assert_eq!(
        std::fs::read_to_string(d.join("pre.log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );

    for loss in ["energy", "oe"] {
        let out = d.join(format!("ft_{loss}.json"));
        eood()
            .args([
                "finetune",
                "--from",
                &s(&model),
                "--loss",
                loss,
                "--m-in",
                "auto",
                "--m-out",
                "auto",
            ])
            .args([
                "--train-images",
                &s(&x),
                "--train-labels",
                &s(&y),
                "--outliers",
                &s(&noise),
            ])
            .args([
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--outlier-batch-size",
                "8",
                "--out",
                &s(&out),
            ])
            .assert()
            .success()
            .stderr(predicate::str::contains("wrote"));
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let objective = &meta["training"]["objective"]["finetune"];
        assert_eq!(
            objective["loss"],
            if loss == "energy" {
                "energy"
            } else {
                "outlier_exposure"
            }
        );
        if loss == "energy" {
            assert!(
                objective["m_in"].as_f64().unwrap() < 0.0,
                "auto margin is a mean energy: {objective}"
            );
        }
    }
}

#[test]
fn finetune_from_a_pytorch_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = write_set(d, "train", 8, 32, 3, true);
    let (noise, _) = write_set(d, "noise", 8, 32, 3, false);
    let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ood-nn/tests/golden/wrn10_zip.pt");
    let out = d.join("ft.json");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    eood()
        .args([
            "finetune",
            "--from",
            &s(&pt),
            "--depth",
            "10",
            "--widen-factor",
            "1",
            "--num-classes",
            "10",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--outliers",
            &s(&noise),
            "--quiet",
        ])
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--outlier-batch-size",
            "4",
            "--out",
            &s(&out),
        ])
        .assert()
        .success();
    assert!(out.exists());
    // The wrong architecture is a one-line error naming the mismatch, exit code 2.
    eood()
        .args([
            "finetune",
            "--from",
            &s(&pt),
            "--depth",
            "16",
            "--widen-factor",
            "1",
            "--num-classes",
            "10",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--outliers",
            &s(&noise),
            "--quiet",
        ])
        .args(["--out", &s(&d.join("bad.json"))])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("missing: block1.layer.1")
                .and(predicate::str::contains("wrn10_zip.pt")),
        );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = write_set(d, "train", 6, 28, 1, true);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    eood()
        .args([
            "train",
            "--depth",
            "12",
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
        ])
        .args(["--out", &s(&d.join("m.json"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("6n+4"));
    eood()
        .args([
            "train",
            "--train-images",
            &s(&d.join("absent.npy")),
            "--train-labels",
            &s(&y),
        ])
        .args(["--out", &s(&d.join("m.json"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("absent.npy"));
    eood()
        .args([
            "train",
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--out",
            &s(&d.join("m.safetensors")),
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("JSON sidecar"));
}

#[test]
fn margin_grid_selects_by_validation_fpr() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (x, y) = write_set(d, "train", 24, 28, 1, true);
    let (vx, _) = write_set(d, "val", 9, 28, 1, true);
    let (noise, _) = write_set(d, "noise", 16, 28, 1, false);
    let (vood, _) = write_set(d, "valood", 9, 28, 1, false);
    let model = d.join("pre.json");
    eood()
        .args([
            "train",
            "--depth",
            "10",
            "--widen-factor",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--quiet",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--out",
            &s(&model),
        ])
        .assert()
        .success();
    let out = d.join("ft.json");
    eood()
        .args([
            "finetune",
            "--from",
            &s(&model),
            "--m-in-grid=-2,-8",
            "--m-out-grid=-1",
            "--quiet",
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--outliers",
            &s(&noise),
        ])
        .args(["--val-images", &s(&vx), "--val-ood", &s(&vood)])
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--outlier-batch-size",
            "8",
            "--out",
            &s(&out),
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("best margins"));
    let grid: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ft.grid.json")).unwrap()).unwrap();
    let points = grid["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let fprs: Vec<f64> = points
        .iter()
        .map(|p| p["mean_val_fpr95"].as_f64().unwrap())
        .collect();
    let best = fprs.iter().cloned().fold(f64::INFINITY, f64::min);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(meta["metrics"]["mean_val_fpr95"].as_f64().unwrap(), best);
    let chosen = &meta["training"]["objective"]["finetune"];
    let best_point = points
        .iter()
        .find(|p| p["mean_val_fpr95"].as_f64().unwrap() == best)
        .unwrap();
    assert_eq!(chosen["m_in"], best_point["m_in"]);
    assert!(d.join("ft.grid-0.json").exists() && d.join("ft.grid-1.json").exists());
}
