//! CLI tests of the framework-free commands score, calibrate, detect and fit (metrics:
//! `metrics_cli.rs`) on tiny fixtures generated in each test, including every bad input the core
//! must refuse with one line naming the file and the problem, and exit code 2.

mod common;

use common::{eood, fails_with, s, Fixture};
use ndarray::array;
use ood_core::io::npy::{read_f64_vector, read_labels, write_i64_vector};
use serde_json::Value;

#[test]
fn score_writes_each_method() {
    let f = Fixture::new();
    let logits = array![[0.0, 0.0], [3f64.ln(), 0.0], [5.0, -1.0]];
    let l = f.matrix("logits.npy", &logits);
    let out = f.path("s.npy");
    for (method, t, expected) in [
        (
            "energy",
            "1",
            vec![2f64.ln(), 4f64.ln(), 5.0 + (1.0 + (-6f64).exp()).ln()],
        ),
        ("msp", "1", vec![0.5, 0.75, 1.0 / (1.0 + (-6f64).exp())]),
        ("maxlogit", "1", vec![0.0, 3f64.ln(), 5.0]),
        (
            "energy",
            "2",
            vec![
                2.0 * 2f64.ln(),
                2.0 * (3f64.sqrt() + 1.0).ln(),
                5.0 + 2.0 * (1.0 + (-3f64).exp()).ln(),
            ],
        ),
    ] {
        eood()
            .args([
                "score",
                "--method",
                method,
                "--temperature",
                t,
                "--logits",
                s(&l),
                "--out",
                s(&out),
            ])
            .assert()
            .success();
        let got = read_f64_vector(&out).unwrap();
        for (a, b) in got.iter().zip(&expected) {
            assert!(
                (a - b).abs() < 1e-12,
                "{method} T={t}: {got:?} vs {expected:?}"
            );
        }
    }
}

#[test]
fn score_refusals() {
    let f = Fixture::new();
    let out = f.path("s.npy");
    let good = f.matrix("l.npy", &array![[1.0, 2.0]]);
    for t in ["0", "-1"] {
        fails_with(
            eood().args([
                "score",
                "--temperature",
                t,
                "--logits",
                s(&good),
                "--out",
                s(&out),
            ]),
            &["l.npy", "temperature must be a positive finite number"],
        );
    }
    let nan = f.matrix("nan.npy", &array![[1.0, 2.0], [f64::NAN, 0.0]]);
    fails_with(
        eood().args(["score", "--logits", s(&nan), "--out", s(&out)]),
        &["nan.npy", "logit at row 1, column 0 is NaN"],
    );
    let v = f.vector("v.npy", &[1.0, 2.0]);
    fails_with(
        eood().args(["score", "--logits", s(&v), "--out", s(&out)]),
        &["v.npy", "expected a 2-D array"],
    );
    // output directory missing: error names the temporary file beside the target, nothing written
    let nowhere = f.path("no/such/dir/s.npy");
    fails_with(
        eood().args(["score", "--logits", s(&good), "--out", s(&nowhere)]),
        &["no/such/dir"],
    );
    // a failed run never touches an existing output
    std::fs::write(&out, "old").unwrap();
    fails_with(
        eood().args(["score", "--logits", s(&nan), "--out", s(&out)]),
        &["nan.npy"],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
}

#[test]
fn calibrate_then_detect() {
    let f = Fixture::new();
    let val: Vec<f64> = (0..100).map(f64::from).collect();
    let v = f.vector("val.npy", &val);
    let det = f.path("det.json");
    eood()
        .args(["calibrate", "--id-scores", s(&v), "--out", s(&det)])
        .assert()
        .success();
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&det).unwrap()).unwrap();
    assert_eq!(d["tau"], 4.5);
    assert_eq!(d["target_tpr"], 0.95);
    assert_eq!(d["method"], "energy");
    assert_eq!(d["temperature"], 1.0);
    assert_eq!(d["accepted_fraction"], 0.95);

    let new = f.vector("new.npy", &[4.0, 4.5, 4.6, 100.0, -3.0]);
    let flags = f.path("flags.npy");
    let out = eood()
        .args([
            "detect",
            "--detector",
            s(&det),
            "--scores",
            s(&new),
            "--out",
            s(&flags),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted 2 of 5"));
    assert_eq!(read_labels(&flags).unwrap(), vec![0, 0, 1, 1, 0]);
}

#[test]
fn calibrate_and_detect_refusals() {
    let f = Fixture::new();
    let v = f.vector("val.npy", &[1.0, 2.0, 3.0]);
    let det = f.path("det.json");
    for tpr in ["0", "1", "2"] {
        fails_with(
            eood().args([
                "calibrate",
                "--id-scores",
                s(&v),
                "--tpr",
                tpr,
                "--out",
                s(&det),
            ]),
            &["--tpr must be in (0, 1)"],
        );
    }
    let nan = f.vector("nan.npy", &[1.0, f64::NAN]);
    fails_with(
        eood().args(["calibrate", "--id-scores", s(&nan), "--out", s(&det)]),
        &["nan.npy", "index 1 is NaN"],
    );
    eood()
        .args([
            "calibrate",
            "--id-scores",
            s(&nan),
            "--out",
            s(&det),
            "--drop-nonfinite",
        ])
        .assert()
        .success();
    fails_with(
        eood().args([
            "calibrate",
            "--id-scores",
            s(&f.path("none.npy")),
            "--out",
            s(&det),
        ]),
        &["none.npy", "No such file"],
    );

    let flags = f.path("flags.npy");
    fails_with(
        eood().args([
            "detect",
            "--detector",
            s(&det),
            "--scores",
            s(&nan),
            "--out",
            s(&flags),
        ]),
        &["nan.npy", "index 1 is NaN"],
    );
    let bad = f.path("bad.json");
    std::fs::write(&bad, "{\"format\": \"something-else\"}").unwrap();
    fails_with(
        eood().args([
            "detect",
            "--detector",
            s(&bad),
            "--scores",
            s(&v),
            "--out",
            s(&flags),
        ]),
        &["bad.json", "not a valid detector file"],
    );
    fails_with(
        eood().args([
            "detect",
            "--detector",
            s(&f.path("gone.json")),
            "--scores",
            s(&v),
            "--out",
            s(&flags),
        ]),
        &["gone.json"],
    );
    assert!(!flags.exists());
}

#[test]
fn mahalanobis_fit_and_score() {
    let f = Fixture::new();
    let x = f.matrix(
        "x.npy",
        &array![
            [1.0, 0.0],
            [-1.0, 0.0],
            [0.0, 1.0],
            [0.0, -1.0],
            [11.0, 0.0],
            [9.0, 0.0],
            [10.0, 1.0],
            [10.0, -1.0]
        ],
    );
    let y = f.path("y.npy");
    write_i64_vector(&y, &[0, 0, 0, 0, 1, 1, 1, 1]).unwrap();
    let model = f.path("maha.json");
    eood()
        .args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&x),
            "--labels",
            s(&y),
            "--out",
            s(&model),
        ])
        .assert()
        .success();
    let t = f.matrix("t.npy", &array![[1.0, 1.0], [10.0, 0.0]]);
    let out = f.path("s.npy");
    eood()
        .args([
            "score",
            "--method",
            "mahalanobis_features",
            "--fitted",
            s(&model),
            "--features",
            s(&t),
            "--out",
            s(&out),
        ])
        .assert()
        .success();
    let sc = read_f64_vector(&out).unwrap();
    assert!((sc[0] + 4.0).abs() < 1e-12 && sc[1].abs() < 1e-12, "{sc:?}");

    // refusals: label count, singular covariance, wrong feature width, float labels, bad model
    let y3 = f.path("y3.npy");
    write_i64_vector(&y3, &[0, 1, 0]).unwrap();
    fails_with(
        eood().args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&x),
            "--labels",
            s(&y3),
            "--out",
            s(&model),
        ]),
        &["y3.npy", "labels have 3 rows but the training data has 8"],
    );
    let flat = f.matrix("flat.npy", &array![[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]);
    fails_with(
        eood().args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&flat),
            "--labels",
            s(&y3),
            "--out",
            s(&model),
        ]),
        &["flat.npy", "singular", "shrinkage"],
    );
    eood()
        .args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&flat),
            "--labels",
            s(&y3),
            "--shrinkage",
            "0.1",
            "--out",
            s(&f.path("m2.json")),
        ])
        .assert()
        .success();
    let wide = f.matrix("wide.npy", &array![[1.0, 2.0, 3.0]]);
    fails_with(
        eood().args([
            "score",
            "--method",
            "mahalanobis_features",
            "--fitted",
            s(&model),
            "--features",
            s(&wide),
            "--out",
            s(&out),
        ]),
        &["wide.npy", "3 columns", "fitted on 2"],
    );
    let fl = f.vector("flabels.npy", &[0.0, 1.0]);
    fails_with(
        eood().args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&x),
            "--labels",
            s(&fl),
            "--out",
            s(&model),
        ]),
        &["flabels.npy", "expected int32, int64 or uint8"],
    );
    let junk = f.path("junk.json");
    std::fs::write(&junk, "[]").unwrap();
    fails_with(
        eood().args([
            "score",
            "--method",
            "mahalanobis_features",
            "--fitted",
            s(&junk),
            "--features",
            s(&t),
            "--out",
            s(&out),
        ]),
        &["junk.json: not a detector"],
    );
}

/// `--help` names what each file flag takes, as docs/cli.md writes it (`--out NPY`,
/// `--out JSON`, `--fitted FITTED`).
#[test]
fn help_names_the_file_kinds() {
    for (cmd, wanted) in [
        (
            "score",
            &["--out <NPY>", "--fitted <FITTED>", "--logits <NPY>"][..],
        ),
        ("fit", &["--out <FITTED>", "--features <NPY>"][..]),
        ("calibrate", &["--out <JSON>", "--id-scores <NPY>"][..]),
        (
            "detect",
            &["--out <NPY>", "--detector <JSON>", "--scores <NPY>"][..],
        ),
    ] {
        let out = eood().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for w in wanted {
            assert!(help.contains(w), "`eood {cmd} --help` lacks {w:?}:\n{help}");
        }
    }
}

/// Regression: a fitted zoo file given to `detect --detector`, or a calibrated one to
/// `score --fitted`, failed with serde's "missing field"; now each says what the file is.
#[test]
fn calibrated_and_fitted_files_are_told_apart() {
    let f = Fixture::new();
    let val: Vec<f64> = (1..=20).map(f64::from).collect();
    let v = f.vector("val.npy", &val);
    let det = f.path("det.json");
    eood()
        .args(["calibrate", "--id-scores", s(&v), "--out", s(&det)])
        .assert()
        .success();
    let mut d: Value = serde_json::from_str(&std::fs::read_to_string(&det).unwrap()).unwrap();
    assert_eq!(
        (d["version"].as_u64(), d["kind"].as_str()),
        (Some(2), Some("calibrated"))
    );
    let l = f.matrix("logits.npy", &array![[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]]);
    let klm = f.path("klm.json");
    eood()
        .args([
            "fit",
            "--method",
            "klm",
            "--logits",
            s(&l),
            "--out",
            s(&klm),
        ])
        .assert()
        .success();
    let k: Value = serde_json::from_str(&std::fs::read_to_string(&klm).unwrap()).unwrap();
    assert_eq!(
        (k["version"].as_u64(), k["kind"].as_str()),
        (Some(2), Some("fitted"))
    );
    let out = f.path("out.npy");
    fails_with(
        eood().args(["score", "--fitted", s(&det), "--logits", s(&l), "--out", s(&out)]),
        &["det.json: this is a calibrated detector (of `eood calibrate`, for `eood detect --detector`), not a fitted zoo detector"],
    );
    fails_with(
        eood().args(["detect", "--detector", s(&klm), "--scores", s(&v), "--out", s(&out)]),
        &["klm.json: this is a fitted zoo detector (of `eood fit`, for `eood score --fitted`), not a calibrated detector"],
    );
    assert!(!out.exists());
    // a version 1 calibrated file (no kind) still detects
    let new = f.vector("new.npy", &[1.0, 1.5, 1.6, 20.0]);
    let v1 = f.path("v1.json");
    d["version"] = 1.into();
    d.as_object_mut().unwrap().remove("kind");
    std::fs::write(&v1, d.to_string()).unwrap();
    eood()
        .args([
            "detect",
            "--detector",
            s(&v1),
            "--scores",
            s(&new),
            "--out",
            s(&out),
        ])
        .assert()
        .success();
    // tau = 1.5: the lowest of the 20 is rejected
    assert_eq!(read_labels(&out).unwrap(), vec![0, 0, 1, 1]);
}
