//! CLI tests of the framework-free commands (score, metrics, calibrate, detect, fit) on
//! tiny fixtures generated in each test, including every bad input the core must refuse with one
//! line naming the file and the problem, and exit code 2.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ndarray::{array, Array2};
use ood_core::io::npy::{
    read_f64_vector, read_labels, write_f64_matrix, write_f64_vector, write_i64_vector,
};
use ood_core::{metrics, Convention, MetricsConfig};
use serde_json::Value;

fn eood() -> Command {
    Command::cargo_bin("eood").unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn vector(&self, name: &str, v: &[f64]) -> PathBuf {
        let p = self.path(name);
        write_f64_vector(&p, v).unwrap();
        p
    }
    fn matrix(&self, name: &str, m: &Array2<f64>) -> PathBuf {
        let p = self.path(name);
        write_f64_matrix(&p, m).unwrap();
        p
    }
    /// A .npy written byte by byte, for headers our writer never produces.
    fn raw(&self, name: &str, header: &str, payload: &[u8]) -> PathBuf {
        let p = self.path(name);
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(payload);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// ID scores 0..40 (step 0.5, with duplicates) and OOD scores overlapping the low end.
    fn id_ood(&self) -> (PathBuf, PathBuf) {
        let id: Vec<f64> = (0..80).map(|i| (i / 2) as f64 * 0.5 + 2.0).collect();
        let ood: Vec<f64> = (0..30).map(|i| (i % 15) as f64 * 0.5).collect();
        (self.vector("id.npy", &id), self.vector("ood.npy", &ood))
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run, expect exit code 2 and exactly one stderr line containing every `needles`.
fn fails_with(cmd: &mut Command, needles: &[&str]) {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected, got: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

fn stdout_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

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
fn metrics_json_is_one_object_matching_the_library() {
    let f = Fixture::new();
    let (id, ood) = f.id_ood();
    for (conv, c) in [
        ("paper", Convention::Paper),
        ("ood-positive", Convention::OodPositive),
    ] {
        let v = stdout_json(eood().args([
            "metrics",
            "--id",
            s(&id),
            "--ood",
            s(&ood),
            "--format",
            "json",
            "--convention",
            conv,
        ]));
        let lib = metrics::evaluate(
            &read_f64_vector(&id).unwrap(),
            &read_f64_vector(&ood).unwrap(),
            &MetricsConfig {
                convention: c,
                tpr: 0.95,
            },
        )
        .unwrap()
        .percent();
        for (key, want) in [
            ("fpr95", lib.fpr),
            ("auroc", lib.auroc),
            ("aupr_in", lib.aupr_in),
            ("aupr_out", lib.aupr_out),
            ("detection_error", lib.detection_error),
        ] {
            // serde_json's default float parser may be one ulp off
            assert!(
                (v[key].as_f64().unwrap() - want).abs() < 1e-12,
                "{conv} {key}: {} vs {want}",
                v[key]
            );
        }
        assert!(v.get("auroc_std").is_none());
        assert_eq!(v["convention"], conv);
    }
}

#[test]
fn metrics_with_draws_reports_std_and_is_reproducible() {
    let f = Fixture::new();
    let (id, ood) = f.id_ood();
    let args = [
        "metrics",
        "--id",
        s(&id),
        "--ood",
        s(&ood),
        "--format",
        "json",
        "--draws",
        "5",
        "--samples",
        "10",
        "--seed",
        "7",
    ];
    let a = stdout_json(eood().args(args));
    for key in ["fpr95", "auroc", "aupr_in", "aupr_out", "detection_error"] {
        assert!(
            a[key].is_f64() && a[format!("{key}_std")].is_f64(),
            "{key} missing in {a}"
        );
    }
    assert!(a["auroc_std"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (a["draws"].as_u64(), a["samples"].as_u64()),
        (Some(5), Some(10))
    );
    assert_eq!(stdout_json(eood().args(args)), a);
    // --samples needs --draws
    let out = eood()
        .args([
            "metrics",
            "--id",
            s(&id),
            "--ood",
            s(&ood),
            "--samples",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn metrics_several_sets_table_and_csv() {
    let f = Fixture::new();
    let (id, ood) = f.id_ood();
    let far = f.vector("far.npy", &[-10.0, -9.0, -8.0]);
    let out = eood()
        .args([
            "metrics",
            "--id",
            s(&id),
            "--ood",
            s(&ood),
            "--ood",
            s(&far),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("FPR95") && lines[0].contains("AUROC") && lines[0].contains("AUPR-Out"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("ood ")
            && lines[2].starts_with("far ")
            && lines[3].starts_with("mean "),
        "{table}"
    );
    assert!(
        lines[2].contains("100.00"),
        "far set is perfectly separated: {table}"
    );

    let out = eood()
        .args([
            "metrics",
            "--id",
            s(&id),
            "--ood",
            s(&ood),
            "--ood",
            s(&far),
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "ood,fpr95,auroc,aupr_in,aupr_out,detection_error");
    assert_eq!(rows.len(), 4);
    assert!(rows[2].starts_with("far,0,100,100,100,0"), "{csv}");

    let v = stdout_json(eood().args([
        "metrics",
        "--id",
        s(&id),
        "--ood",
        s(&ood),
        "--ood",
        s(&far),
        "--format",
        "json",
    ]));
    let sets = v["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2);
    let mean = (sets[0]["auroc"].as_f64().unwrap() + sets[1]["auroc"].as_f64().unwrap()) / 2.0;
    assert!((v["auroc"].as_f64().unwrap() - mean).abs() < 1e-12);
}

#[test]
fn metrics_refuses_bad_inputs() {
    let f = Fixture::new();
    let (id, ood) = f.id_ood();
    let run = |idp: &Path, needles: &[&str]| {
        fails_with(
            eood().args(["metrics", "--id", s(idp), "--ood", s(&ood)]),
            needles,
        )
    };

    run(&f.path("missing.npy"), &["missing.npy", "No such file"]);
    // unreadable: a directory where a file is expected
    std::fs::create_dir(f.path("dir.npy")).unwrap();
    run(&f.path("dir.npy"), &["dir.npy"]);
    let text = f.path("text.npy");
    std::fs::write(&text, "id,score\n1,0.5\n").unwrap();
    run(&text, &["text.npy", "not a .npy file"]);
    let int = f.raw(
        "int.npy",
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }\n",
        &[0; 16],
    );
    run(
        &int,
        &[
            "int.npy",
            "unsupported dtype",
            "expected float32 or float64",
        ],
    );
    let half = f.raw(
        "half.npy",
        "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }\n",
        &[0; 4],
    );
    run(&half, &["half.npy", "unsupported dtype '<f2'"]);
    let two_d = f.matrix("twod.npy", &array![[1.0, 2.0], [3.0, 4.0]]);
    run(
        &two_d,
        &["twod.npy", "expected a 1-D array, found shape (2, 2)"],
    );
    let fortran = f.raw(
        "fortran.npy",
        "{'descr': '<f8', 'fortran_order': True, 'shape': (2,), }\n",
        &[0; 16],
    );
    run(&fortran, &["fortran.npy", "Fortran-order"]);
    let trunc = f.raw(
        "trunc.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }\n",
        &[0; 30],
    );
    run(
        &trunc,
        &[
            "trunc.npy",
            "truncated: header announces 32 data bytes, file holds 30",
        ],
    );
    let empty = f.raw(
        "empty.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }\n",
        &[],
    );
    run(&empty, &["empty.npy", "array is empty"]);
    let nan = f.vector("nan.npy", &[1.0, 2.0, f64::NAN, 3.0]);
    run(
        &nan,
        &["nan.npy", "value at index 2 is NaN", "--drop-nonfinite"],
    );
    let inf = f.vector("inf.npy", &[f64::NEG_INFINITY, 2.0]);
    run(&inf, &["inf.npy", "value at index 0 is -inf"]);
    let all_nan = f.vector("allnan.npy", &[f64::NAN]);
    fails_with(
        eood().args([
            "metrics",
            "--id",
            s(&all_nan),
            "--ood",
            s(&ood),
            "--drop-nonfinite",
        ]),
        &["allnan.npy", "all 1 values are non-finite"],
    );
    // the OOD file is checked just as well
    fails_with(
        eood().args(["metrics", "--id", s(&id), "--ood", s(&nan)]),
        &["nan.npy", "index 2"],
    );
    for tpr in ["0", "1", "1.5", "-0.2"] {
        fails_with(
            eood().args(["metrics", "--id", s(&id), "--ood", s(&ood), "--tpr", tpr]),
            &["--tpr must be in (0, 1)"],
        );
    }
    fails_with(
        eood().args(["metrics", "--id", s(&id), "--ood", s(&ood), "--draws", "0"]),
        &["--draws"],
    );
}

#[test]
fn metrics_drop_nonfinite_says_how_many() {
    let f = Fixture::new();
    let (_, ood) = f.id_ood();
    let nan = f.vector("nan.npy", &[50.0, f64::NAN, 60.0, f64::INFINITY, 70.0]);
    let out = eood()
        .args([
            "metrics",
            "--id",
            s(&nan),
            "--ood",
            s(&ood),
            "--drop-nonfinite",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nan.npy: dropped 2 non-finite values"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_id"], 3);
    assert_eq!(v["auroc"].as_f64().unwrap(), 100.0);
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
