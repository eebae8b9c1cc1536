//! `eood train` (and the train-then-finetune round) on tiny synthetic .npy data (feature `nn`);
//! fine-tuning from PyTorch checkpoints and the margin grid are in `finetune_cli.rs`.
#![cfg(feature = "nn")]
mod common;

use std::path::Path;

use common::nn::{eood, fails, snapshot, write_set};
use ndarray::Array1;
use ndarray_npy::write_npy;
use predicates::prelude::*;

#[test]
fn help_states_the_code_of_record_defaults() {
    // the optimizer flags are shared (flattened), their defaults depend on the command
    eood().args(["train", "--help"]).assert().success().stdout(
        predicate::str::contains("train 0.1, finetune 0.001")
            .and(predicate::str::contains("(default 128)"))
            .and(predicate::str::contains("[default: 40]"))
            .and(predicate::str::contains("(default 5e-4)"))
            .and(predicate::str::contains("train 100, finetune 10"))
            .and(predicate::str::contains("--force"))
            .and(predicate::str::contains("[default: auto]")),
    );
    eood()
        .args(["finetune", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("finetune 0.001")
                .and(predicate::str::contains("[default: 256]"))
                .and(predicate::str::contains("[default: -23]"))
                .and(predicate::str::contains("[default: -5]"))
                .and(predicate::str::contains("[default: energy]"))
                .and(predicate::str::contains("--state-dict <PT>")),
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
                "--checkpoint",
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
fn checkpoints_are_never_lost_and_sizes_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (x, y) = write_set(d, "train", 6, 28, 1, true);
    let (noise, _) = write_set(d, "noise", 4, 28, 1, false);
    let model = d.join("m.json");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let train = |extra: &[&str]| {
        let mut c = eood();
        c.args(["train", "--depth", "10", "--widen-factor", "1"])
            .args(["--batch-size", "6", "--quiet", "--train-images", &s(&x)])
            .args(["--train-labels", &s(&y)])
            .args(extra);
        c
    };
    train(&["--out", &s(&model), "--epochs", "1"])
        .assert()
        .success();
    let before = snapshot(d);

    // an existing checkpoint is not replaced without --resume or --force
    fails(
        &mut train(&["--out", &s(&model)]),
        "m.json: already exists (pass --force",
    );
    // --resume with another configuration is refused, naming the fields
    fails(
        &mut train(&[
            "--out",
            &s(&model),
            "--resume",
            "--lr",
            "0.2",
            "--seed",
            "3",
        ]),
        "--resume with a different configuration (epochs 1 -> 100, lr 0.1 -> 0.2, seed 1 -> 3)",
    );
    // a second writer fails at once, naming the holder: here this test process holds the OS
    // lock, as a concurrent `eood train` would
    let lock = ood_nn::checkpoint::CheckpointLock::acquire(&model).unwrap();
    fails(
        &mut train(&["--out", &s(&model), "--resume"]),
        &format!("m.lock: locked by process {}", std::process::id()),
    );
    drop(lock);
    // finetune --out equal to its pretrained model
    let finetune = |out: &Path| {
        let mut c = eood();
        c.args([
            "finetune",
            "--checkpoint",
            &s(&model),
            "--outliers",
            &s(&noise),
        ])
        .args([
            "--train-images",
            &s(&x),
            "--train-labels",
            &s(&y),
            "--quiet",
        ])
        .args(["--out", &s(out)]);
        c
    };
    fails(
        &mut finetune(&model),
        "refusing to overwrite an input of this command",
    );
    fails(
        finetune(&d.join("ft.json")).args(["--lambda", "-1"]),
        "--lambda must be between 0 and 1000, got -1",
    );
    // --out over a FIFO (as over a device node) is refused, and nothing is read from it
    let fifo = d.join("fifo.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails(
        &mut train(&["--out", &s(&fifo), "--force"]),
        "refusing to write over a FIFO",
    );
    std::fs::remove_file(&fifo).unwrap();
    // sizes from flags and from labels
    fails(
        &mut train(&[
            "--out",
            &s(&d.join("n.json")),
            "--num-classes",
            "1000000000000",
        ]),
        "num_classes must be between 1 and 100000",
    );
    fails(
        &mut train(&["--out", &s(&d.join("n.json")), "--lr-min", "1"]),
        "--lr-min must be between 0 and 0.1, got 1",
    );
    let big = d.join("huge_labels.npy");
    write_npy(
        &big,
        &Array1::from(vec![0i64, 1, 1_000_000_000_000, 2, 0, 1]),
    )
    .unwrap();
    fails(
        eood()
            .args(["train", "--depth", "10", "--widen-factor", "1", "--quiet"])
            .args(["--train-images", &s(&x), "--train-labels", &s(&big)])
            .args(["--out", &s(&d.join("n.json"))]),
        "classes of the training labels (largest label + 1) must be between 1 and 100000, got 1000000000001",
    );
    // images of another size than the checkpoint's are named with both shapes
    let (x32, _) = write_set(d, "big", 2, 32, 1, false);
    fails(
        eood()
            .args(["extract", "--checkpoint", &s(&model), "--data", &s(&x32)])
            .args(["--out-dir", &s(&d.join("ex")), "--quiet"]),
        "images are 32x32x1 (H x W x C) but",
    );
    assert_eq!(
        snapshot(d).len(),
        before.len() + 3,
        "only the new fixtures added"
    );
    for (name, bytes) in &before {
        assert_eq!(
            &std::fs::read(d.join(name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }

    // a sidecar declaring a huge architecture fails cleanly, not in C++
    let text = std::fs::read_to_string(&model).unwrap();
    let huge = d.join("huge.json");
    std::fs::write(
        &huge,
        text.replace("\"depth\": 10", "\"depth\": 1000000000"),
    )
    .unwrap();
    fails(
        eood()
            .args(["extract", "--checkpoint", &s(&huge), "--data", &s(&x)])
            .args(["--out-dir", &s(&d.join("ex"))]),
        "huge.json: architecture: WideResNet depth must be between 10 and 1000, got 1000000000",
    );

    // a lock file left behind by a crash (no process holds its lock) does not block
    std::fs::write(d.join("m.lock"), "1\n").unwrap();
    // --force on resume records the change in the log and goes on
    train(&["--out", &s(&model), "--resume", "--force", "--epochs", "2"])
        .assert()
        .success();
    let log = std::fs::read_to_string(d.join("m.log.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[1].contains("\"resume_changes\":[\"epochs\"]"),
        "{log}"
    );
    assert!(lines[2].contains("\"epoch\":2"), "{log}");
    assert!(!d.join("m.lock").exists(), "the lock is released");
}
