//! The shipped bundle (models/fmnist-bundle), bundle creation, hostile bundles, and decisions.

use std::path::{Path, PathBuf};

use ndarray::{array, Array3};
use ood_bundle::create::{contract_from_checkpoint, create, create_with, CreateOptions};
use ood_bundle::{
    Bundle, BundleError, Forward, Model, ModelFiles, ModelKind, ModelLoader, Result as BResult,
};
use ood_data::formats::npy_images::NpyImages;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped() -> Bundle {
    Bundle::load(&root().join("models/fmnist-bundle")).unwrap()
}

fn mnist8() -> NpyImages {
    NpyImages::open(&root().join("crates/ood-bundle/tests/fixtures/mnist-t10k-first8.npy")).unwrap()
}

/// Fashion-MNIST's class names, from the dataset registry (their one owner).
fn fmnist() -> &'static [&'static str] {
    ood_data::registry::get("fmnist").unwrap().classes
}

#[test]
fn shipped_bundle_verifies_and_runs() {
    let b = shipped();
    assert_eq!(b.self_test().unwrap(), (10, 64));
    let m = b.manifest();
    assert_eq!(m.labels, fmnist());
    assert_eq!(m.labels[9], "Ankle boot");
    assert_eq!(m.scoring.method, "energy");
    assert_eq!(m.scoring.tau, 5.651373015166513);
    assert_eq!(m.scoring.temperature, Some(1.0));
    assert_eq!(
        (m.input.height, m.input.width, m.input.channels),
        (28, 28, 1)
    );
    assert_eq!(m.input.mean, [0.286]);
    assert_eq!(m.input.std, [0.353]);
}

#[test]
fn mnist_digits_are_refused_and_decisions_follow_the_energy_rule() {
    let b = shipped();
    let imgs = mnist8();
    let owned: Vec<_> = (0..imgs.len()).map(|i| imgs.image(i).unwrap()).collect();
    let views: Vec<_> = owned.iter().map(|a| a.view()).collect();
    let d = b.decide(&views).unwrap();
    assert_eq!(d.len(), 8);
    // MNIST is near-OOD for this model (docs/results: FPR95 well above 0): 5 of these 8 refused
    let accepted: Vec<usize> = (0..8).filter(|&i| d[i].accepted).collect();
    assert_eq!(accepted, [0, 1, 6], "{d:?}");
    assert!((d[2].score - 2.99825).abs() < 1e-4, "{}", d[2].score);
    // the same numbers by hand: preprocess -> forward -> energy = T logsumexp(logits / T)
    let batch = b.manifest().input.preprocess(&views).unwrap();
    let out = b.forward(batch.view()).unwrap();
    for (i, dec) in d.iter().enumerate() {
        let row: Vec<f64> = out.logits.row(i).iter().map(|&v| v as f64).collect();
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = mx + row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
        assert!(
            (dec.score - lse).abs() < 1e-4,
            "{i}: {} vs {lse}",
            dec.score
        );
        assert_eq!(dec.accepted, lse > 5.651373015166513);
        assert!((dec.confidence - (mx - lse).exp()).abs() < 1e-9);
        assert_eq!(dec.label, fmnist()[dec.class]);
        assert_eq!(row[dec.class], mx);
    }
}

#[test]
fn rgb_and_resized_images_are_brought_to_the_contract() {
    let b = shipped();
    let imgs = mnist8();
    let gray: Vec<_> = (0..3).map(|i| imgs.image(i).unwrap()).collect();
    let rgb: Vec<Array3<u8>> = gray
        .iter()
        .map(|g| Array3::from_shape_fn((28, 28, 3), |(y, x, _)| g[[y, x, 0]]))
        .collect();
    let rgb_views: Vec<_> = rgb.iter().map(|a| a.view()).collect();
    // equal channels have luma equal to the channel: identical decisions
    let gray_views: Vec<_> = gray.iter().map(|a| a.view()).collect();
    assert_eq!(
        b.decide(&gray_views).unwrap(),
        b.decide(&rgb_views).unwrap()
    );
    // a 2x (nearest) enlargement comes back to 28x28 through the bilinear rule
    let big = Array3::from_shape_fn((56, 70, 1), |(y, x, _)| {
        gray[0][[y / 2, (x.saturating_sub(7) / 2).min(27), 0]]
    });
    let d = b.decide(&[big.view()]).unwrap();
    assert!(d[0].score.is_finite());
}

#[test]
fn logits_given_directly() {
    let b = shipped();
    let logits = array![
        [10.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0; 10]
    ];
    let d = b.decide_logits(logits.view(), None).unwrap();
    let e0 = 10.0 + (1.0 + 9.0 * (-10.0f64).exp()).ln();
    assert!((d[0].score - e0).abs() < 1e-12);
    assert!(d[0].accepted && d[0].class == 0 && d[0].label == "T-shirt/top");
    let e1 = 1.0 + 10f64.ln();
    assert!((d[1].score - e1).abs() < 1e-12);
    assert!(!d[1].accepted);
    assert!((d[1].confidence - 0.1).abs() < 1e-12);

    let nan = array![[f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]];
    let e = b.decide_logits(nan.view(), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "logits at row 0, column 0 is NaN (need finite values)"
    );
    let e = b
        .decide_logits(array![[1.0, 2.0]].view(), None)
        .unwrap_err();
    assert!(e
        .to_string()
        .contains("logits have 2 columns, the bundle has 10 classes"));
}

fn copy_shipped(to: &Path) {
    for f in ["bundle.json", "model.onnx", "detector.json"] {
        std::fs::copy(root().join("models/fmnist-bundle").join(f), to.join(f)).unwrap();
    }
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("bundle.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn hostile_bundles_are_refused_with_typed_errors() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    copy_shipped(dir);
    Bundle::load(dir).unwrap();

    // a flipped byte in the model
    let mut m = std::fs::read(dir.join("model.onnx")).unwrap();
    m[1000] ^= 1;
    std::fs::write(dir.join("model.onnx"), &m).unwrap();
    let e = Bundle::load(dir).unwrap_err();
    assert!(matches!(e, BundleError::Checksum { .. }), "{e}");
    copy_shipped(dir);

    // path traversal in a file name
    edit_manifest(dir, |v| v["model"]["file"] = "../../etc/passwd".into());
    let e = Bundle::load(dir).unwrap_err();
    assert_eq!(
        e.to_string(),
        "model.file: file name \"../../etc/passwd\" is not a plain file name inside the bundle folder"
    );
    copy_shipped(dir);

    // unknown fields, absurd sizes, label count that disagrees with the model
    edit_manifest(dir, |v| v["extra"] = 1.into());
    assert!(matches!(
        Bundle::load(dir).unwrap_err(),
        BundleError::Json { .. }
    ));
    copy_shipped(dir);
    edit_manifest(dir, |v| v["input"]["height"] = 1_000_000_000u64.into());
    let e = Bundle::load(dir).unwrap_err().to_string();
    assert!(e.contains("outside 1..=4096"), "{e}");
    copy_shipped(dir);
    edit_manifest(dir, |v| v["labels"] = serde_json::json!(["a", "b"]));
    let b = Bundle::load(dir).unwrap();
    assert_eq!(
        b.self_test().unwrap_err().to_string(),
        "the model has 10 classes but the bundle names 2"
    );
    copy_shipped(dir);

    // oversized manifest, and a directory where the manifest belongs
    std::fs::write(dir.join("bundle.json"), vec![b' '; (1 << 20) + 1]).unwrap();
    assert!(matches!(
        Bundle::load(dir).unwrap_err(),
        BundleError::TooLarge { .. }
    ));
    std::fs::remove_file(dir.join("bundle.json")).unwrap();
    std::fs::create_dir(dir.join("bundle.json")).unwrap();
    assert!(matches!(Bundle::load(dir).unwrap_err(), BundleError::Io(_)));
}

fn options(out: &Path, labels: Option<PathBuf>) -> CreateOptions {
    let (input, source) =
        contract_from_checkpoint(&root().join("models/fmnist-wrn-10-1.json")).unwrap();
    CreateOptions {
        model: root().join("models/fmnist-wrn-10-1.onnx"),
        kind: ModelKind::Onnx,
        architecture: None,
        input,
        detector: root().join("models/fmnist-detector.json"),
        fitted: None,
        labels,
        out_dir: out.to_path_buf(),
        source: Some(source),
        force: false,
    }
}

#[test]
fn create_reproduces_the_shipped_manifest_and_refuses_mistakes() {
    let t = tempfile::tempdir().unwrap();
    let labels = t.path().join("names.txt");
    std::fs::write(&labels, fmnist().join("\n") + "\n").unwrap();
    let out = t.path().join("b");
    let m = create(&options(&out, Some(labels.clone()))).unwrap();
    assert_eq!(&m, shipped().manifest());
    assert_eq!(
        std::fs::read(out.join("bundle.json")).unwrap(),
        std::fs::read(root().join("models/fmnist-bundle/bundle.json")).unwrap()
    );
    // an existing bundle is kept without force
    let e = create(&options(&out, Some(labels.clone()))).unwrap_err();
    assert!(matches!(e, BundleError::Output(_)), "{e}");
    let mut o = options(&out, Some(labels.clone()));
    o.force = true;
    create(&o).unwrap();

    // nine names for ten classes: nothing written
    std::fs::write(&labels, fmnist()[..9].join("\n")).unwrap();
    let out2 = t.path().join("c");
    let e = create(&options(&out2, Some(labels))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the model has 10 classes but the bundle names 9"
    );
    assert!(!out2.exists());
    // no labels: the class ids
    let m = create(&options(&out2, None)).unwrap();
    assert_eq!(m.labels[9], "9");
}

/// A stand-in for a libtorch model: fixed logits (class 0 strong for a bright image), so the
/// loader plumbing is tested without libtorch.
struct FakeModel;

impl Model for FakeModel {
    fn forward(&self, batch: ndarray::ArrayView4<f32>) -> BResult<Forward> {
        let n = batch.shape()[0];
        let logits = ndarray::Array2::from_shape_fn((n, 10), |(i, j)| {
            let mean = batch.index_axis(ndarray::Axis(0), i).mean().unwrap_or(0.0);
            if j == 0 {
                10.0 * mean
            } else {
                0.0
            }
        });
        Ok(Forward {
            logits,
            features: ndarray::Array2::zeros((n, 3)),
        })
    }
    fn input_chw(&self) -> [usize; 3] {
        [1, 28, 28]
    }
}

struct FakeLoader(std::cell::Cell<usize>);

impl ModelLoader for FakeLoader {
    fn load(&self, f: &ModelFiles) -> BResult<Box<dyn Model>> {
        assert_ne!(f.kind, ModelKind::Onnx);
        if f.kind == ModelKind::TorchScript {
            assert_eq!(f.bytes, b"not really torchscript");
        }
        self.0.set(self.0.get() + 1);
        Ok(Box::new(FakeModel))
    }
}

#[test]
fn libtorch_kinds_go_through_the_callers_loader_and_plain_load_refuses_them() {
    let t = tempfile::tempdir().unwrap();
    let pt = t.path().join("m.pt");
    std::fs::write(&pt, b"not really torchscript").unwrap();
    let out = t.path().join("b");
    let mut o = options(&out, None);
    o.model = pt.clone();
    o.kind = ModelKind::TorchScript;
    // without a libtorch loader: one line naming the feature, nothing written
    let e = create(&o).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("{}: a torchscript model needs libtorch, which this build of eood lacks: build it with the `nn` feature (the default features)", pt.display())
    );
    assert!(!out.exists());

    let loader = FakeLoader(0.into());
    let m = create_with(&o, &loader).unwrap();
    assert_eq!(
        (m.model.kind.as_str(), m.model.file.as_str()),
        ("torchscript", "model.pt")
    );
    assert_eq!(loader.0.get(), 1);
    let e = Bundle::load(&out).unwrap_err();
    assert!(
        matches!(
            e,
            BundleError::NeedsLibtorch {
                kind: ModelKind::TorchScript,
                ..
            }
        ),
        "{e}"
    );
    let b = Bundle::load_with(&out, &loader).unwrap();
    assert_eq!(b.model_kind(), ModelKind::TorchScript);
    assert_eq!(b.self_test().unwrap(), (10, 3));
    // white image: mean input (1 - 0.286) / 0.353 = 2.0227 -> logit 20.2 for class 0
    let white = Array3::from_elem((28, 28, 1), 255u8);
    let black = Array3::from_elem((28, 28, 1), 0u8);
    let d = b.decide(&[white.view(), black.view()]).unwrap();
    let e0 = 10.0 * (1.0 - 0.286f64) / 0.353;
    assert!(
        (d[0].score - (e0 + (1.0 + 9.0 * (-e0).exp()).ln())).abs() < 1e-4,
        "{d:?}"
    );
    assert!(d[0].accepted && d[0].class == 0);
    assert!(!d[1].accepted, "{d:?}");
}

#[test]
fn manifests_hold_exactly_the_fields_of_their_model_kind() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    copy_shipped(dir);
    let cases: [(&str, fn(&mut serde_json::Value)); 5] = [
        ("model kind \"pickle\" is not supported (expected one of onnx, checkpoint, state_dict, torchscript)",
            |v| v["model"]["kind"] = "pickle".into()),
        ("model.weights is for kind checkpoint only (this model is onnx)",
            |v| v["model"]["weights"] = serde_json::json!({"file": "w.safetensors", "sha256": "00"})),
        ("a state_dict model needs model.architecture", |v| v["model"]["kind"] = "state_dict".into()),
        ("model.architecture is for kind state_dict only (this model is onnx)",
            |v| v["model"]["architecture"] = serde_json::json!({"depth": 10, "widen_factor": 1, "num_classes": 10})),
        ("file name \"model.onnx\" is used twice in the bundle",
            |v| v["scoring"]["detector"]["file"] = "model.onnx".into()),
    ];
    for (want, edit) in cases {
        edit_manifest(dir, edit);
        let e = Bundle::load(dir).unwrap_err().to_string();
        assert!(e.ends_with(want), "{e}");
        copy_shipped(dir);
    }
}

#[test]
fn a_checkpoint_bundle_keeps_sidecar_and_weights_and_checks_both() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("b");
    let ckpt = root().join("models/fmnist-wrn-10-1.json");
    let mut o = options(&out, None);
    o.model = ckpt.clone();
    o.kind = ModelKind::Checkpoint;
    let loader = FakeLoader(0.into());
    let m = create_with(&o, &loader).unwrap();
    let w = m.model.weights.clone().unwrap();
    assert_eq!(w.file, "fmnist-wrn-10-1.e0010-s4300.safetensors");
    assert_eq!(
        w.sha256,
        "d3f1881cf7b35d5861385e36acea2cad6897375c937505416395c9774816222d"
    );
    // the sidecar is copied unchanged
    assert_eq!(
        std::fs::read(out.join("model.json")).unwrap(),
        std::fs::read(&ckpt).unwrap()
    );
    Bundle::load_with(&out, &loader).unwrap();

    // a flipped weight byte
    let wp = out.join(&w.file);
    let mut bytes = std::fs::read(&wp).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&wp, &bytes).unwrap();
    let e = Bundle::load_with(&out, &loader).unwrap_err().to_string();
    assert!(
        e.contains("fmnist-wrn-10-1.e0010-s4300.safetensors: SHA-256 is"),
        "{e}"
    );
    bytes[5000] ^= 1;
    std::fs::write(&wp, &bytes).unwrap();

    // a sidecar (with a matching digest in the manifest) that points outside the folder
    let mut side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    side["weights"] = "../../elsewhere.safetensors".into();
    let side = serde_json::to_vec(&side).unwrap();
    std::fs::write(out.join("model.json"), &side).unwrap();
    let digest = ood_bundle::manifest::sha256_hex(&side);
    edit_manifest(&out, |v| v["model"]["sha256"] = digest.into());
    let e = Bundle::load_with(&out, &loader).unwrap_err().to_string();
    assert!(
        e.ends_with("the sidecar names weights \"../../elsewhere.safetensors\", the manifest \"fmnist-wrn-10-1.e0010-s4300.safetensors\""),
        "{e}"
    );
}
