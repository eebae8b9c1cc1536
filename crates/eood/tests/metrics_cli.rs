//! CLI tests of `eood metrics`: one JSON object equal to the library's metrics, draws, several
//! OOD sets as a table or CSV, non-finite scores, and every bad input refused with one line.

mod common;

use std::path::Path;

use common::{eood, fails_with, s, stdout_json, Fixture};
use ndarray::array;
use ood_core::io::npy::read_f64_vector;
use ood_core::{metrics, Convention, MetricsConfig};
use serde_json::Value;

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
