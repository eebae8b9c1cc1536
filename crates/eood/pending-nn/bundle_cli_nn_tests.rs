// Tests for the libtorch bundle loader and `extract --onnx`, to go into
// crates/eood/tests/bundle_cli.rs once pending-nn/ is wired in (see README.md).

/// Both shipped bundles (ONNX through tract, checkpoint through libtorch) decide like the
/// libtorch path: extract (tch) -> score energy -> detect.
#[cfg(feature = "nn")]
#[test]
fn shipped_bundles_equal_extract_score_detect() {
    let t = tempfile::tempdir().unwrap();
    let ex = t.path().join("ex");
    eood()
        .args(["extract", "--checkpoint"])
        .arg(root().join("models/fmnist-wrn-10-1.json"))
        .arg("--data")
        .arg(mnist_npy())
        .args(["--quiet", "--out-dir"])
        .arg(&ex)
        .assert()
        .success();
    let logits: ndarray::Array2<f32> = ndarray_npy::read_npy(ex.join("logits.npy")).unwrap();
    let fixture: ndarray::Array2<f32> = ndarray_npy::read_npy(tch_logits_fixture()).unwrap();
    assert!(logits
        .iter()
        .zip(&fixture)
        .all(|(a, b)| (a - b).abs() < 1e-5));
    let want = score_and_detect(
        t.path(),
        &ex.join("logits.npy"),
        &root().join("models/fmnist-detector.json"),
    );
    for name in ["fmnist-bundle", "fmnist-bundle-torch"] {
        let d = detect_npy(&root().join("models").join(name), &mnist_npy());
        assert_same_decisions(&d, &want, if name.ends_with("torch") { 1e-9 } else { 1e-4 });
    }
    let out = eood()
        .args(["bundle", "check"])
        .arg(root().join("models/fmnist-bundle-torch"))
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains(
            "(checkpoint model.json, 10 classes, 64 features, energy tau = 5.651373015166513"
        ),
        "{text}"
    );
}

#[cfg(feature = "nn")]
fn golden(name: &str) -> PathBuf {
    root().join("crates/ood-nn/tests/golden").join(name)
}

/// A TorchScript and a state_dict bundle, made and checked, decide like extract -> score ->
/// detect on the same uint8 images (PyTorch's golden logits for the TorchScript one).
#[cfg(feature = "nn")]
#[test]
fn torchscript_and_state_dict_bundles_equal_the_extract_path() {
    let t = tempfile::tempdir().unwrap();
    let detector = root().join("models/fmnist-detector.json");
    let create = |model: &[&str], input: &str, mean: &str, std: &str, out: &Path| {
        eood()
            .args(["bundle", "create"])
            .args(model)
            .args(["--input", input, "--mean", mean, "--std", std, "--detector"])
            .arg(&detector)
            .arg("--out-dir")
            .arg(out)
            .assert()
            .success();
        eood().args(["bundle", "check"]).arg(out).assert().success();
    };
    // TorchScript: the 16x16x3 golden images, CIFAR normalization, PyTorch's logits
    let ts = t.path().join("ts");
    let (cifar_mean, cifar_std) = (
        "0.49137256,0.48235294,0.44666666",
        "0.24705882,0.24352941,0.2615686",
    );
    let ts_pt = golden("ts_pair.pt");
    create(
        &["--torchscript", ts_pt.to_str().unwrap()],
        "16x16x3",
        cifar_mean,
        cifar_std,
        &ts,
    );
    let m: Value = serde_json::from_slice(&std::fs::read(ts.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(m["model"]["kind"], "torchscript");
    let d = detect_npy(&ts, &golden("odin_test_x.npy"));
    let want = score_and_detect(t.path(), &golden("ts_logits.npy"), &detector);
    assert_same_decisions(&d, &want, 1e-4);

    // state_dict: a WRN-10-1 on 32x32x3 random images, against extract --state-dict
    let sd = t.path().join("sd");
    let pt = golden("wrn10_zip.pt");
    let sd_args = [
        "--state-dict",
        pt.to_str().unwrap(),
        "--depth",
        "10",
        "--widen-factor",
        "1",
    ];
    create(&sd_args, "32x32x3", "0.5,0.5,0.5", "0.25,0.25,0.25", &sd);
    let m: Value = serde_json::from_slice(&std::fs::read(sd.join("bundle.json")).unwrap()).unwrap();
    assert_eq!(m["model"]["architecture"]["depth"], 10);
    let imgs = ndarray::Array4::from_shape_fn((5, 32, 32, 3), |(n, y, x, c)| {
        ((n * 71 + y * 13 + x * 7 + c * 31) % 256) as u8
    });
    let npy = t.path().join("imgs.npy");
    ndarray_npy::write_npy(&npy, &imgs).unwrap();
    let ex = t.path().join("ex");
    eood()
        .args(["extract"])
        .args(sd_args)
        .arg("--data")
        .arg(&npy)
        .args([
            "--mean",
            "0.5,0.5,0.5",
            "--std",
            "0.25,0.25,0.25",
            "--quiet",
            "--out-dir",
        ])
        .arg(&ex)
        .assert()
        .success();
    let d = detect_npy(&sd, &npy);
    let want = score_and_detect(t.path(), &ex.join("logits.npy"), &detector);
    assert_same_decisions(&d, &want, 1e-9);
}

/// `eood extract --onnx` (tract) gives the logits and features of `--checkpoint` (libtorch).
#[cfg(feature = "nn")]
#[test]
fn extract_onnx_equals_extract_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let run = |model: &[&str], out: &Path| {
        eood()
            .arg("extract")
            .args(model)
            .arg("--data")
            .arg(mnist_npy())
            .args(["--features", "--quiet", "--batch-size", "3", "--out-dir"])
            .arg(out)
            .assert()
            .success();
    };
    let onnx = root().join("models/fmnist-wrn-10-1.onnx");
    let ckpt = root().join("models/fmnist-wrn-10-1.json");
    run(&["--onnx", onnx.to_str().unwrap()], &t.path().join("a"));
    run(
        &["--checkpoint", ckpt.to_str().unwrap()],
        &t.path().join("b"),
    );
    for f in ["logits.npy", "features.npy"] {
        let a: ndarray::Array2<f32> = ndarray_npy::read_npy(t.path().join("a").join(f)).unwrap();
        let b: ndarray::Array2<f32> = ndarray_npy::read_npy(t.path().join("b").join(f)).unwrap();
        assert_eq!(a.dim(), b.dim());
        let err = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "{f}: {err}");
    }
    let rec: Value =
        serde_json::from_slice(&std::fs::read(t.path().join("a/extract.json")).unwrap()).unwrap();
    assert_eq!(rec["rows"], 8);
    assert_eq!(rec["feature_dim"], 64);
}
