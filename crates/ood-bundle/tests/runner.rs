//! The tract runner against PyTorch: the golden file is written by scripts/export-onnx.py
//! (logits and features of four fixed inputs, computed by PyTorch on the shipped checkpoint).

use std::path::{Path, PathBuf};

use ndarray::{s, Array4};
use ood_bundle::manifest::read_capped;
use ood_bundle::{BundleError, OnnxModel};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped_model() -> OnnxModel {
    let p = root().join("models/fmnist-wrn-10-1.onnx");
    let bytes = read_capped(&p, "model", 1 << 30).unwrap();
    OnnxModel::from_bytes(&p, &bytes, [1, 28, 28], "logits", "features").unwrap()
}

struct Golden {
    input: Array4<f32>,
    logits: Vec<Vec<f64>>,
    features: Vec<Vec<f64>>,
}

fn golden() -> Golden {
    let p = root().join("crates/ood-bundle/tests/fixtures/fmnist-wrn-10-1.golden.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).unwrap();
    let values: Vec<f32> = serde_json::from_value(v["input_values"].clone()).unwrap();
    let input = Array4::from_shape_vec((shape[0], shape[1], shape[2], shape[3]), values).unwrap();
    Golden {
        input,
        logits: serde_json::from_value(v["logits"].clone()).unwrap(),
        features: serde_json::from_value(v["features"].clone()).unwrap(),
    }
}

fn max_abs_diff(a: ndarray::ArrayView2<f32>, b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.nrows(), b.len());
    let mut worst = 0.0f64;
    for (row, want) in a.rows().into_iter().zip(b) {
        assert_eq!(row.len(), want.len());
        for (&x, &y) in row.iter().zip(want) {
            worst = worst.max((x as f64 - y).abs());
        }
    }
    worst
}

#[test]
fn tract_matches_pytorch_golden_logits_and_features() {
    let g = golden();
    let out = shipped_model().forward(g.input.view()).unwrap();
    assert_eq!(out.logits.dim(), (4, 10));
    assert_eq!(out.features.dim(), (4, 64));
    let dl = max_abs_diff(out.logits.view(), &g.logits);
    let df = max_abs_diff(out.features.view(), &g.features);
    assert!(dl < 1e-4, "logits differ from PyTorch by {dl}");
    assert!(df < 1e-4, "features differ from PyTorch by {df}");
    // the golden inputs are not degenerate: the four rows have different arg-max or values
    assert!((g.logits[0][0] - g.logits[1][0]).abs() > 1e-3);
}

#[test]
fn one_plan_serves_every_batch_size() {
    let g = golden();
    let m = shipped_model();
    let all = m.forward(g.input.view()).unwrap();
    for i in 0..4 {
        let one = m.forward(g.input.slice(s![i..i + 1, .., .., ..])).unwrap();
        for (a, b) in one.logits.row(0).iter().zip(all.logits.row(i)) {
            assert!((a - b).abs() < 1e-5, "row {i}: {a} vs {b}");
        }
    }
    // 9 rows (repeats) still work on the same plan
    let big = ndarray::concatenate(
        ndarray::Axis(0),
        &[
            g.input.view(),
            g.input.view(),
            g.input.slice(s![..1, .., .., ..]),
        ],
    )
    .unwrap();
    let out = m.forward(big.view()).unwrap();
    assert_eq!(out.logits.nrows(), 9);
    assert!((out.logits[[8, 3]] - all.logits[[0, 3]]).abs() < 1e-5);
}

#[test]
fn wrong_shapes_and_garbage_models_are_typed_errors() {
    let m = shipped_model();
    let e = m
        .forward(Array4::<f32>::zeros((2, 1, 32, 32)).view())
        .unwrap_err();
    assert!(matches!(e, BundleError::BadInput { .. }), "{e}");
    assert!(e.to_string().contains("[2, 1, 32, 32]"), "{e}");

    let p = Path::new("garbage.onnx");
    let e = OnnxModel::from_bytes(
        p,
        b"not a protobuf at all",
        [1, 28, 28],
        "logits",
        "features",
    )
    .unwrap_err();
    assert!(matches!(e, BundleError::ModelLoad { .. }), "{e}");
    assert!(e
        .to_string()
        .starts_with("garbage.onnx: the ONNX model could not be loaded"));

    let good = std::fs::read(root().join("models/fmnist-wrn-10-1.onnx")).unwrap();
    let e = OnnxModel::from_bytes(p, &good, [1, 28, 28], "logits", "nope").unwrap_err();
    assert_eq!(
        e.to_string(),
        "garbage.onnx: the model has no output named \"nope\""
    );
}
