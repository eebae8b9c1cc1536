//! The shipped bundle (models/fmnist-bundle), bundle creation, hostile bundles, and decisions.

use std::path::{Path, PathBuf};

use ndarray::{array, Array3};
use ood_bundle::create::{contract_from_checkpoint, create, CreateOptions};
use ood_bundle::{Bundle, BundleError};
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
    let views: Vec<_> = (0..imgs.len()).map(|i| imgs.image(i)).collect();
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
    let gray: Vec<_> = (0..3).map(|i| imgs.image(i)).collect();
    let rgb: Vec<Array3<u8>> = gray
        .iter()
        .map(|g| Array3::from_shape_fn((28, 28, 3), |(y, x, _)| g[[y, x, 0]]))
        .collect();
    let rgb_views: Vec<_> = rgb.iter().map(|a| a.view()).collect();
    // equal channels have luma equal to the channel: identical decisions
    assert_eq!(b.decide(&gray).unwrap(), b.decide(&rgb_views).unwrap());
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
        onnx: root().join("models/fmnist-wrn-10-1.onnx"),
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
