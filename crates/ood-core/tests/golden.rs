//! Golden values from scikit-learn and the code of record's `get_measures` logic.
//! Regenerate with `.venv/bin/python crates/ood-core/tests/golden/make_golden.py`.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use ood_core::io::npy::{read_f64_matrix, read_f64_vector, read_labels};
use ood_core::scores::{Energy, LogitScore, MahalanobisParams, MaxLogit, Msp};
use ood_core::{metrics, Convention, Metrics, MetricsConfig};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(dir().join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn vec_f64(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(vec_f64).collect();
    Array2::from_shape_vec((rows.len(), rows[0].len()), rows.concat()).unwrap()
}

fn expected(v: &Value) -> Metrics {
    Metrics {
        fpr: v["fpr"].as_f64().unwrap(),
        auroc: v["auroc"].as_f64().unwrap(),
        aupr_in: v["aupr_in"].as_f64().unwrap(),
        aupr_out: v["aupr_out"].as_f64().unwrap(),
        detection_error: v["detection_error"].as_f64().unwrap(),
    }
}

fn assert_close(name: &str, got: Metrics, want: Metrics) {
    let names = ["fpr", "auroc", "aupr_in", "aupr_out", "detection_error"];
    for ((g, w), n) in got.to_array().iter().zip(want.to_array()).zip(names) {
        assert!((g - w).abs() <= 1e-12, "{name}: {n} = {g}, reference {w}");
    }
}

#[test]
fn metrics_match_sklearn_and_code_of_record() {
    let g = golden();
    let cases = g["metrics"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (id, ood) = (vec_f64(&case["id"]), vec_f64(&case["ood"]));
        let tpr = case["tpr"].as_f64().unwrap();
        for (conv, key) in [
            (Convention::Paper, "paper"),
            (Convention::OodPositive, "ood_positive"),
        ] {
            let got = metrics::evaluate(
                &id,
                &ood,
                &MetricsConfig {
                    convention: conv,
                    tpr,
                },
            )
            .unwrap();
            assert_close(&format!("{name}/{key}"), got, expected(&case[key]));
        }
    }
}

#[test]
fn logit_scores_match_numpy() {
    let g = golden();
    let s = &g["scores"];
    let logits = matrix(&s["logits"]);
    let check = |scorer: &dyn LogitScore, key: &str| {
        let got = scorer.score(logits.view()).unwrap();
        let want = vec_f64(&s[key]);
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{key}[{i}]: {a} vs {b}"
            );
        }
    };
    check(&Energy { temperature: 1.0 }, "energy_t1");
    check(&Energy { temperature: 2.0 }, "energy_t2");
    check(&Msp { temperature: 1.0 }, "msp_t1");
    check(
        &Msp {
            temperature: 1000.0,
        },
        "msp_t1000",
    );
    check(&MaxLogit, "maxlogit");
}

#[test]
fn mahalanobis_matches_numpy_and_sklearn_covariance() {
    let g = golden();
    let m = &g["mahalanobis"];
    let train = matrix(&m["train"]);
    let labels: Vec<i64> = m["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let test = matrix(&m["test"]);
    let fitted = MahalanobisParams::default()
        .fit(train.view(), &labels)
        .unwrap();
    let close = |a: &Array2<f64>, b: &Array2<f64>| {
        a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() < 1e-10)
    };
    assert!(close(fitted.means(), &matrix(&m["means"])));
    assert!(close(fitted.covariance(), &matrix(&m["covariance"])));
    for (shrinkage, key) in [(0.0, "scores_shrink0"), (0.3, "scores_shrink0.3")] {
        let got = MahalanobisParams { shrinkage }
            .fit(train.view(), &labels)
            .unwrap()
            .score(test.view())
            .unwrap();
        for (i, (a, b)) in got.iter().zip(vec_f64(&m[key])).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{key}[{i}]: {a} vs {b}"
            );
        }
    }
}

#[test]
fn npy_files_written_by_numpy() {
    let d = dir().join("npy");
    assert_eq!(
        read_f64_vector(&d.join("scores_f32.npy")).unwrap(),
        vec![0.5, -1.25, 3.0]
    );
    assert_eq!(
        read_f64_vector(&d.join("scores_f64.npy")).unwrap(),
        vec![0.1, 2.0 / 3.0, -7.5]
    );
    let l = read_f64_matrix(&d.join("logits_f32.npy")).unwrap();
    assert_eq!(
        l,
        Array2::from_shape_vec((2, 3), vec![0., 1., 2., 3., 4., 5.]).unwrap()
    );
    assert_eq!(
        read_labels(&d.join("labels_i32.npy")).unwrap(),
        vec![0, 2, 1]
    );
    assert_eq!(read_labels(&d.join("labels_u8.npy")).unwrap(), vec![4, 0]);

    let err = |p: &str| read_f64_matrix(&d.join(p)).unwrap_err().to_string();
    assert!(err("fortran.npy").contains("fortran.npy: Fortran-order arrays are not supported"));
    assert!(err("f16.npy").contains("f16.npy: unsupported dtype '<f2'"));
    let e = read_f64_vector(&d.join("truncated.npy"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated.npy: truncated: header announces 24 data bytes, file holds 19"),
        "{e}"
    );
}
