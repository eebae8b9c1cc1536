//! `eood bundle create|check|decide` on the shipped bundle (models/fmnist-bundle), the bad
//! bundles they must refuse with one line and exit 2, and (with `nn`) the same numbers as the
//! extract -> score -> detect path through libtorch.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ood_data::formats::npy_images::NpyImages;
use serde_json::Value;

fn eood() -> Command {
    Command::cargo_bin("eood").unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mnist_npy() -> PathBuf {
    root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy")
}

/// The eight MNIST digits as PNG files.
fn write_pngs(dir: &Path) -> Vec<PathBuf> {
    let imgs = NpyImages::open(&mnist_npy()).unwrap();
    (0..imgs.len())
        .map(|i| {
            let v = imgs.image(i).unwrap();
            let buf = image::GrayImage::from_fn(28, 28, |x, y| {
                image::Luma([v[[y as usize, x as usize, 0]]])
            });
            let p = dir.join(format!("digit{i}.png"));
            buf.save(&p).unwrap();
            p
        })
        .collect()
}

fn json_lines(out: &assert_cmd::assert::Assert) -> Vec<Value> {
    String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn decide(pngs: &[PathBuf]) -> Vec<Value> {
    let out = eood()
        .args(["bundle", "decide", "--bundle"])
        .arg(root().join("models/fmnist-bundle"))
        .args(pngs)
        .assert()
        .success();
    json_lines(&out)
}

/// `eood detect --bundle DIR --images NPY` as JSON lines.
fn detect_npy(bundle: &Path, npy: &Path) -> Vec<Value> {
    let out = eood()
        .args(["detect", "--bundle"])
        .arg(bundle)
        .arg("--images")
        .arg(npy)
        .assert()
        .success();
    json_lines(&out)
}

/// `eood score --method energy` then `eood detect` on `logits`: the scores and flags.
fn score_and_detect(
    dir: &Path,
    logits: &Path,
    detector: &Path,
) -> (ndarray::Array1<f64>, ndarray::Array1<u8>) {
    let scores = dir.join("scores.npy");
    eood()
        .args(["score", "--method", "energy", "--logits"])
        .arg(logits)
        .arg("--out")
        .arg(&scores)
        .assert()
        .success();
    let flags = dir.join("flags.npy");
    eood()
        .args(["detect", "--detector"])
        .arg(detector)
        .arg("--scores")
        .arg(&scores)
        .arg("--out")
        .arg(&flags)
        .assert()
        .success();
    (
        ndarray_npy::read_npy(&scores).unwrap(),
        ndarray_npy::read_npy(&flags).unwrap(),
    )
}

/// Bundle decisions equal the scores and flags of the score -> detect path, to `tol`.
fn assert_same_decisions(
    d: &[Value],
    want: &(ndarray::Array1<f64>, ndarray::Array1<u8>),
    tol: f64,
) {
    assert_eq!(d.len(), want.0.len());
    for (i, v) in d.iter().enumerate() {
        let s = v["score"].as_f64().unwrap();
        assert!(
            (s - want.0[i]).abs() < tol,
            "{i}: bundle {s}, path {}",
            want.0[i]
        );
        assert_eq!(v["accepted"] == true, want.1[i] == 1, "{i}");
    }
}

#[test]
fn check_accepts_the_shipped_bundle() {
    let out = eood()
        .args(["bundle", "check"])
        .arg(root().join("models/fmnist-bundle"))
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.starts_with("ok: "), "{text}");
    assert!(text.contains("onnx model.onnx, 10 classes, 64 features, energy tau = 5.651373015166513, input 28x28x1"), "{text}");
}

#[test]
fn decide_refuses_mnist_pngs() {
    let t = tempfile::tempdir().unwrap();
    let d = decide(&write_pngs(t.path()));
    assert_eq!(d.len(), 8);
    let accepted: Vec<usize> = (0..8).filter(|&i| d[i]["accepted"] == true).collect();
    assert_eq!(accepted, [0, 1, 6], "{d:?}");
    assert!(d[0]["input"].as_str().unwrap().ends_with("digit0.png"));
    assert!(d[0]["score"].as_f64().unwrap().is_finite());
}

#[test]
fn bad_bundles_and_images_are_one_line_exit_2() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("b");
    std::fs::create_dir(&dir).unwrap();
    for f in ["bundle.json", "model.onnx", "detector.json"] {
        std::fs::copy(root().join("models/fmnist-bundle").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("detector.json"), b"{}").unwrap();
    let out = eood().args(["bundle", "check"]).arg(&dir).assert().code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("detector.json: SHA-256 is "), "{err}");

    let junk = t.path().join("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = eood()
        .args(["bundle", "decide", "--bundle"])
        .arg(root().join("models/fmnist-bundle"))
        .arg(&junk)
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("junk.png"), "{err}");
}

#[test]
fn create_writes_a_bundle_that_checks() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("bundle");
    let args = |c: &mut Command| {
        c.args(["bundle", "create", "--onnx"])
            .arg(root().join("models/fmnist-wrn-10-1.onnx"))
            .arg("--input-from")
            .arg(root().join("models/fmnist-wrn-10-1.json"))
            .arg("--detector")
            .arg(root().join("models/fmnist-detector.json"))
            .arg("--out-dir")
            .arg(&out);
    };
    let mut c = eood();
    args(&mut c);
    c.assert().success();
    eood()
        .args(["bundle", "check"])
        .arg(&out)
        .assert()
        .success();
    // a second create keeps the first bundle: one line, exit 2
    let mut c = eood();
    args(&mut c);
    let o = c.assert().code(2);
    let err = String::from_utf8(o.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// PyTorch's logits of the eight MNIST digits through the shipped checkpoint
/// (crates/ood-bundle/tests/fixtures/make_torch_logits.py), committed so that the build
/// without libtorch checks pixels -> decisions against the extract -> score -> detect path.
fn torch_logits_fixture() -> PathBuf {
    root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.torch-logits.npy")
}

#[test]
fn detect_with_a_bundle_equals_extract_score_detect_and_decide() {
    let t = tempfile::tempdir().unwrap();
    let bundle = root().join("models/fmnist-bundle");
    let d = detect_npy(&bundle, &mnist_npy());
    let want = score_and_detect(
        t.path(),
        &torch_logits_fixture(),
        &root().join("models/fmnist-detector.json"),
    );
    assert_same_decisions(&d, &want, 1e-4);
    assert!(d[3]["input"]
        .as_str()
        .unwrap()
        .ends_with("mnist-t10k-first8.npy[3]"));
    // the same images as PNG files: the same decisions, to the bit
    let pngs = decide(&write_pngs(t.path()));
    for (a, b) in d.iter().zip(&pngs) {
        assert_eq!(a["score"], b["score"]);
        assert_eq!(a["label"], b["label"]);
    }
}

#[test]
fn detect_prints_a_table_or_csv() {
    let bundle = root().join("models/fmnist-bundle");
    let run = |format: &str| {
        let out = eood()
            .args(["detect", "--format", format, "--bundle"])
            .arg(&bundle)
            .arg("--images")
            .arg(mnist_npy())
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    };
    let jsonl = detect_npy(&bundle, &mnist_npy());
    let csv = run("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "input,accepted,score,class,label,confidence");
    assert_eq!(lines.len(), 9);
    for (line, j) in lines[1..].iter().zip(&jsonl) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[1], j["accepted"].to_string());
        assert_eq!(f[2].parse::<f64>().unwrap(), j["score"].as_f64().unwrap());
        assert_eq!(f[4], j["label"].as_str().unwrap());
    }
    let table = run("table");
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("accepted") && rows[0].ends_with("input"),
        "{table}"
    );
    assert_eq!(rows.len(), 9);
    assert!(
        rows[1].starts_with("yes") && rows[3].starts_with("no"),
        "{table}"
    );
    // a scores-path flag with --bundle is a usage error, not a silent mix
    eood()
        .args(["detect", "--scores", "s.npy", "--bundle"])
        .arg(&bundle)
        .arg("--images")
        .arg(mnist_npy())
        .assert()
        .code(2);
}

#[cfg(not(feature = "nn"))]
#[test]
fn a_libtorch_bundle_names_the_missing_feature() {
    let out = eood()
        .args(["bundle", "check"])
        .arg(root().join("models/fmnist-bundle-torch"))
        .assert()
        .code(2);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("a checkpoint model needs libtorch") && err.contains("`nn` feature"),
        "{err}"
    );
}

/// The shipped ONNX bundle decides like the libtorch path: extract (tch) -> score energy ->
/// detect, and tch's logits are the committed PyTorch ones.
#[cfg(feature = "nn")]
#[test]
fn shipped_bundle_equals_extract_score_detect() {
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
    let fixture: ndarray::Array2<f32> = ndarray_npy::read_npy(torch_logits_fixture()).unwrap();
    assert!(logits
        .iter()
        .zip(&fixture)
        .all(|(a, b)| (a - b).abs() < 1e-4));
    let want = score_and_detect(
        t.path(),
        &ex.join("logits.npy"),
        &root().join("models/fmnist-detector.json"),
    );
    let d = detect_npy(&root().join("models/fmnist-bundle"), &mnist_npy());
    assert_same_decisions(&d, &want, 1e-4);
}

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
    let fixture: ndarray::Array2<f32> = ndarray_npy::read_npy(torch_logits_fixture()).unwrap();
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
