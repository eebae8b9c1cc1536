//! `eood finetune` from a PyTorch state dict, and the validation margin grid (with
//! `--stop-after` and `--resume`), on tiny synthetic .npy data (feature `nn`).
#![cfg(feature = "nn")]
mod common;

use std::path::Path;

use common::nn::{eood, write_set};
use predicates::prelude::*;

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
            "--state-dict",
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
            "--state-dict",
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
    let finetune = |extra: &[&str]| {
        let mut c = eood();
        c.args([
            "finetune",
            "--checkpoint",
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
        .args(extra);
        c
    };
    // --stop-after counts epochs over the grid (it used to be ignored there): one epoch
    // finishes the first point, the second is not started, nothing is selected yet.
    finetune(&["--stop-after", "1"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "stopped at grid point 2/2 after --stop-after 1 epochs; continue with --resume",
        ));
    assert!(d.join("ft.grid-0.json").exists());
    assert!(!d.join("ft.grid-1.json").exists() && !out.exists());
    let first = std::fs::read_to_string(d.join("ft.grid-0.json")).unwrap();
    finetune(&["--resume"])
        .assert()
        .success()
        .stderr(predicate::str::contains("best margins"));
    // the finished point was not retrained on resume
    assert_eq!(
        std::fs::read_to_string(d.join("ft.grid-0.json")).unwrap(),
        first
    );
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

/// The raw 80M Tiny Images binary (3072-byte column-major records) with the code of record's
/// CIFAR exclusion list is an outlier source of `finetune` (streamed, random offset per epoch);
/// an exclusion list for a `.npy` or one that excludes every record is refused in one line.
#[test]
fn finetune_streams_tiny_images_with_the_cifar_exclusion_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = write_set(d, "train", 8, 32, 3, true);
    let bin = d.join("tiny_images.bin");
    std::fs::write(
        &bin,
        (0..12u8)
            .flat_map(|r| vec![r * 20; 3072])
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let idxs = d.join("80mn_cifar_idxs.txt");
    std::fs::write(&idxs, "1\n5\n").unwrap();
    let pt = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ood-nn/tests/golden/wrn10_zip.pt");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let run = |outliers: &Path, exclusion: &Path, out: &Path| {
        let mut c = eood();
        c.args([
            "finetune",
            "--state-dict",
            &s(&pt),
            "--depth",
            "10",
            "--widen-factor",
            "1",
        ])
        .args([
            "--num-classes",
            "10",
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
        ])
        .args([
            "--outliers",
            &s(outliers),
            "--outlier-exclusion",
            &s(exclusion),
        ])
        .args([
            "--quiet",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--outlier-batch-size",
            "4",
        ])
        .args(["--out", &s(out)]);
        c
    };
    run(&bin, &idxs, &d.join("ft.json")).assert().success();
    assert!(d.join("ft.json").exists());
    run(&x, &idxs, &d.join("bad.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a Tiny Images .bin"));
    let all = d.join("all.txt");
    std::fs::write(&all, (1..=12).map(|i| format!("{i}\n")).collect::<String>()).unwrap();
    run(&bin, &all, &d.join("bad.json"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("every image is excluded"));
}

/// Accuracy of `model` on `images` against `labels`, from `eood extract`'s logits.
fn accuracy(model: &Path, images: &Path, labels: &Path, out: &Path) -> f64 {
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    eood()
        .args(["extract", "--checkpoint", &s(model), "--data", &s(images)])
        .args(["--out-dir", &s(out), "--quiet"])
        .assert()
        .success();
    let logits = ood_core::io::npy::read_f64_matrix(&out.join("logits.npy")).unwrap();
    let y = ood_core::io::npy::read_labels(labels).unwrap();
    let right = logits
        .rows()
        .into_iter()
        .zip(&y)
        .filter(|(r, &y)| {
            let arg = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
            arg as i64 == y
        })
        .count();
    right as f64 / y.len() as f64
}

/// With validation labels the grid records each point's ID validation accuracy and the
/// pretrained model's (both equal to what `eood extract` measures), and chooses by the floor:
/// the lowest validation FPR among the points within --accuracy-tolerance of the pretrained
/// accuracy, else the most accurate. Fine-tuning keeps outliers out of BatchNorm by default.
#[test]
fn margin_grid_keeps_validation_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (x, y) = write_set(d, "train", 24, 28, 1, true);
    let (vx, vy) = write_set(d, "val", 12, 28, 1, true);
    let (noise, _) = write_set(d, "noise", 16, 28, 1, false);
    let (vood, _) = write_set(d, "valood", 9, 28, 1, false);
    let model = d.join("pre.json");
    eood()
        .args(["train", "--depth", "10", "--widen-factor", "1", "--quiet"])
        .args(["--epochs", "2", "--batch-size", "8"])
        .args(["--train-images", &s(&x), "--train-labels", &s(&y)])
        .args(["--out", &s(&model)])
        .assert()
        .success();
    let out = d.join("ft.json");
    eood()
        .args(["finetune", "--checkpoint", &s(&model), "--quiet"])
        .args(["--m-in-grid=-2,-40", "--m-out-grid=-1", "--lr", "0.05"])
        .args(["--train-images", &s(&x), "--train-labels", &s(&y)])
        .args(["--outliers", &s(&noise), "--val-images", &s(&vx)])
        .args(["--val-labels", &s(&vy), "--val-ood", &s(&vood)])
        .args(["--accuracy-tolerance", "0.1"])
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--outlier-batch-size",
            "8",
        ])
        .args(["--out", &s(&out)])
        .assert()
        .success();
    let grid: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ft.grid.json")).unwrap()).unwrap();
    let floor = &grid["accuracy_floor"];
    let pretrained = accuracy(&model, &vx, &vy, &d.join("x_pre"));
    assert_eq!(floor["pretrained"].as_f64().unwrap(), pretrained);
    assert_eq!(floor["tolerance"].as_f64().unwrap(), 0.1);
    let points = grid["points"].as_array().unwrap();
    let (mut fpr, mut acc) = (vec![], vec![]);
    for (i, p) in points.iter().enumerate() {
        let ck = d.join(format!("ft.grid-{i}.json"));
        let a = accuracy(&ck, &vx, &vy, &d.join(format!("x{i}")));
        assert_eq!(p["val_accuracy"].as_f64().unwrap(), a, "point {i}");
        acc.push(a);
        fpr.push(p["mean_val_fpr95"].as_f64().unwrap());
    }
    let admitted: Vec<usize> = (0..2).filter(|&i| acc[i] >= pretrained - 0.1).collect();
    let want = match admitted.as_slice() {
        [] => (0..2).fold(0, |b, i| if acc[i] > acc[b] { i } else { b }),
        a => a
            .iter()
            .copied()
            .fold(a[0], |b, i| if fpr[i] < fpr[b] { i } else { b }),
    };
    assert_eq!(grid["best"]["m_in"], points[want]["m_in"]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(meta["metrics"]["val_accuracy"].as_f64().unwrap(), acc[want]);
    // the default is the code of record's joint pass (not recorded, so old files resume)
    assert!(meta["training"].get("outlier_batchnorm").is_none());
    // `--outlier-bn id-statistics` is recorded
    let joint = d.join("id-statistics.json");
    eood()
        .args(["finetune", "--checkpoint", &s(&model), "--quiet"])
        .args([
            "--outlier-bn",
            "id-statistics",
            "--m-in",
            "-2",
            "--m-out",
            "-1",
        ])
        .args(["--train-images", &s(&x), "--train-labels", &s(&y)])
        .args(["--outliers", &s(&noise)])
        .args([
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--outlier-batch-size",
            "8",
        ])
        .args(["--out", &s(&joint)])
        .assert()
        .success();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&joint).unwrap()).unwrap();
    assert_eq!(meta["training"]["outlier_batchnorm"], "id_statistics");
}
