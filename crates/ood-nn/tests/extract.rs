//! Streaming extraction: WRN (PyTorch state_dict) and TorchScript models over float and uint8
//! inputs, against PyTorch's recorded outputs (tests/golden/make_golden.py,
//! tests/golden/make_odin_golden.py); the incremental .npy writer.
mod common;

use ndarray::{Array2, ArrayD};
use ood_data::transforms::Normalize;
use ood_nn::extract::{self, ExtractConfig, InputSet, NpyRowWriter};
use ood_nn::model::Classifier;
use ood_nn::tch::{Device, Kind, Tensor};

use common::{golden, max_rel_err, npy, wrn10};

fn config(batch_size: usize) -> ExtractConfig {
    ExtractConfig {
        batch_size,
        workers: 1,
        progress: false,
    }
}

#[test]
fn wrn_state_dict_logits_and_features_match_pytorch_in_uneven_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (l, f) = (dir.path().join("l.npy"), dir.path().join("f.npy"));
    let input = InputSet::open(&golden("wrn10_x.npy")).unwrap();
    assert!(!input.needs_normalization());
    // 4 rows in batches of 3: a full batch and a partial one.
    let s = extract::extract(&wrn10(), &input, None, &config(3), &l, Some(&f)).unwrap();
    assert_eq!((s.rows, s.classes, s.feature_dim), (4, 10, Some(64)));
    let err = max_rel_err(&npy(&l), &npy(&golden("wrn10_logits.npy")));
    assert!(err < 1e-4, "logits: {err}");
    let err = max_rel_err(&npy(&f), &npy(&golden("wrn10_features.npy")));
    assert!(err < 1e-4, "features: {err}");
    // Only the two outputs remain: no temporary files.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn torchscript_logits_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("l.npy");
    let model = Classifier::from_torchscript(&golden("tiny_script.pt"), Device::Cpu).unwrap();
    let input = InputSet::open(&golden("wrn10_x.npy")).unwrap();
    extract::extract(&model, &input, None, &config(256), &l, None).unwrap();
    let err = max_rel_err(&npy(&l), &npy(&golden("tiny_logits.npy")));
    assert!(err < 1e-4, "{err}");
    // A traced module without features says how to provide them.
    let err = extract::extract(
        &model,
        &input,
        None,
        &config(256),
        &l,
        Some(&dir.path().join("f.npy")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`features(x)` method"), "{err}");
}

#[test]
fn torchscript_features_from_a_pair_or_a_method_on_uint8_images() {
    let input = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    assert!(input.needs_normalization());
    let want_l = npy(&golden("ts_logits.npy"));
    let want_f = npy(&golden("ts_features.npy"));
    for file in ["ts_pair.pt", "ts_method.pt"] {
        let dir = tempfile::tempdir().unwrap();
        let (l, f) = (dir.path().join("l.npy"), dir.path().join("f.npy"));
        let model = Classifier::from_torchscript(&golden(file), Device::Cpu).unwrap();
        let s = extract::extract(
            &model,
            &input,
            Some(&Normalize::cifar()),
            &config(5),
            &l,
            Some(&f),
        )
        .unwrap();
        assert_eq!((s.rows, s.feature_dim), (8, Some(6)));
        assert!(max_rel_err(&npy(&l), &want_l) < 1e-4, "{file} logits");
        assert!(max_rel_err(&npy(&f), &want_f) < 1e-4, "{file} features");
    }
}

#[test]
fn uint8_images_are_normalized_per_channel_like_torchvision() {
    let input = InputSet::open(&golden("odin_test_x.npy")).unwrap();
    let n = Normalize {
        mean: vec![0.1, 0.5, 0.9],
        std: vec![0.2, 0.3, 0.4],
    };
    // Two workers, batches of 3: the order and content must not depend on either.
    let batches: Vec<Tensor> = input
        .batches(3, Some(&n), 2)
        .unwrap()
        .map(|b| b.unwrap().x)
        .collect();
    assert_eq!(batches.len(), 3);
    let got = Tensor::cat(&batches, 0);
    let raw: ArrayD<u8> = ndarray_npy::read_npy(golden("odin_test_x.npy")).unwrap();
    let raw = Tensor::from_slice(raw.as_slice().unwrap())
        .view([8, 16, 16, 3])
        .to_kind(Kind::Float)
        .permute([0, 3, 1, 2]);
    let mean = Tensor::from_slice(&n.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&n.std).view([1, 3, 1, 1]);
    let want = (raw / 255.0 - mean) / std;
    assert!(got.allclose(&want, 1e-5, 1e-5, false));
}

#[test]
fn wrong_channel_count_and_empty_input_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gray = dir.path().join("gray.npy");
    ndarray_npy::write_npy(&gray, &ndarray::Array3::<u8>::zeros((2, 8, 8))).unwrap();
    let input = InputSet::open(&gray).unwrap();
    let l = dir.path().join("l.npy");
    let err = extract::extract(
        &wrn10(),
        &input,
        Some(&Normalize::unit(1)),
        &config(4),
        &l,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("1 channels, the model expects 3"), "{err}");
    assert!(!l.exists());

    let f64s = dir.path().join("f64.npy");
    ndarray_npy::write_npy(&f64s, &ndarray::Array4::<f64>::zeros((1, 3, 4, 4))).unwrap();
    let err = InputSet::open(&f64s).unwrap_err().to_string();
    assert!(err.contains("float32"), "{err}");
}

#[test]
fn a_failed_extraction_keeps_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    let l = dir.path().join("logits.npy");
    std::fs::write(&l, b"previous").unwrap();
    // The traced module fails on 1-channel input at the first batch.
    let gray = dir.path().join("gray.npy");
    ndarray_npy::write_npy(&gray, &ndarray::Array4::<f32>::zeros((3, 1, 8, 8))).unwrap();
    let model = Classifier::from_torchscript(&golden("tiny_script.pt"), Device::Cpu).unwrap();
    let input = InputSet::open(&gray).unwrap();
    assert!(extract::extract(&model, &input, None, &config(2), &l, None).is_err());
    assert_eq!(std::fs::read(&l).unwrap(), b"previous");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "temporary file left"
    );
}

#[test]
fn row_writer_streams_a_valid_npy_and_checks_the_row_count() {
    let dir = tempfile::tempdir().unwrap();
    for (rows, cols) in [(1usize, 1usize), (5, 3), (7, 100), (300, 17)] {
        let path = dir.path().join(format!("a{rows}x{cols}.npy"));
        let want = Array2::from_shape_fn((rows, cols), |(i, j)| (i * 1000 + j) as f32 * 0.5 - 3.0);
        let mut w = NpyRowWriter::create(&path, rows).unwrap();
        for chunk in want.as_slice().unwrap().chunks(cols * 2) {
            w.push(chunk, cols).unwrap();
        }
        w.finish().unwrap();
        let got: Array2<f32> = ndarray_npy::read_npy(&path).unwrap();
        assert_eq!(got, want);
        // numpy requires the data to start at a multiple of 64 bytes.
        let bytes = std::fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
    }
    // Too few rows: error, nothing at the target, no temporary left.
    let path = dir.path().join("short.npy");
    let mut w = NpyRowWriter::create(&path, 3).unwrap();
    w.push(&[1.0, 2.0], 2).unwrap();
    assert!(w.finish().unwrap_err().to_string().contains("1 of 3 rows"));
    // Too many rows and ragged rows are refused.
    let mut w = NpyRowWriter::create(&path, 1).unwrap();
    assert!(w.push(&[1.0, 2.0, 3.0, 4.0], 2).is_err());
    assert!(w.push(&[1.0, 2.0, 3.0], 2).is_err());
    drop(w);
    assert!(!path.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn head_keeps_the_first_rows_of_either_input_kind() {
    for (file, normalize) in [
        ("odin_test_x.npy", Some(Normalize::cifar())),
        ("wrn10_x.npy", None),
    ] {
        let full = InputSet::open(&golden(file)).unwrap();
        let all: Vec<Tensor> = full
            .batches(64, normalize.as_ref(), 0)
            .unwrap()
            .map(|b| b.unwrap().x)
            .collect();
        let head = InputSet::open(&golden(file)).unwrap().head(3);
        assert_eq!(head.len(), 3);
        let got: Vec<Tensor> = head
            .batches(2, normalize.as_ref(), 1)
            .unwrap()
            .map(|b| b.unwrap().x)
            .collect();
        assert_eq!(got.len(), 2, "{file}: batches of 2 + 1");
        assert!(
            Tensor::cat(&got, 0).equal(&all[0].narrow(0, 0, 3)),
            "{file}"
        );
        assert_eq!(
            InputSet::open(&golden(file)).unwrap().head(1000).len(),
            full.len()
        );
    }
}
