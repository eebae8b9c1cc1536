//! Hostile arguments to the framework-free commands (issue 8): sizes that used to abort or
//! allocate without end, temperatures that gave all-inf scores, detectors applied to another
//! method's scores. Each is exit 2, one line naming the problem, and leaves what was there.
mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ood_core::io::npy::{write_f64_matrix, write_f64_vector};

fn eood(dir: &Path) -> Command {
    let mut c = common::eood();
    c.current_dir(dir)
        .env("EOOD_SHARED_DATA", "")
        .env("EOOD_CACHE", dir.join("cache"));
    c
}

/// Runs `cmd`: exit 2, one stderr line containing `needle`, `kept` unchanged.
fn refused(cmd: &mut Command, needle: &str, kept: &Path) {
    let before = std::fs::read(kept).unwrap();
    common::fails_with(cmd, &[needle]);
    assert_eq!(
        std::fs::read(kept).unwrap(),
        before,
        "{} changed",
        kept.display()
    );
}

struct F {
    dir: tempfile::TempDir,
}

impl F {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn vector(&self, name: &str, v: &[f64]) -> PathBuf {
        let p = self.p(name);
        write_f64_vector(&p, v).unwrap();
        p
    }
    /// An existing output that a refused run must not touch.
    fn old(&self, name: &str) -> PathBuf {
        let p = self.p(name);
        std::fs::write(&p, b"keep me").unwrap();
        p
    }
    fn cmd(&self) -> Command {
        eood(self.dir.path())
    }
}

#[test]
fn temperatures_are_checked_once_for_score_and_calibrate() {
    let f = F::new();
    let logits = f.p("l.npy");
    write_f64_matrix(&logits, &ndarray::array![[1.0, 2.0], [0.5, -1.0]]).unwrap();
    let out = f.old("s.npy");
    // T = 1e308 made every energy score inf
    refused(
        f.cmd()
            .args(["score", "--logits", "l.npy", "--out", "s.npy"])
            .args(["--temperature", "1e308"]),
        "--temperature must be between 0.001 and 1000000",
        &out,
    );
    let scores = f.vector("v.npy", &[1.0, 2.0, 3.0, 4.0]);
    let det = f.old("det.json");
    for t in ["nan", "-1", "0"] {
        let mut score = f.cmd();
        score
            .args(["score", "--logits", "l.npy", "--out", "s.npy"])
            .args(["--temperature", t]);
        refused(
            &mut score,
            "temperature must be a positive finite number",
            &out,
        );
        let mut cal = f.cmd();
        cal.args(["calibrate", "--id-scores"]).arg(&scores).args([
            "--out",
            "det.json",
            "--temperature",
            t,
        ]);
        refused(
            &mut cal,
            "temperature must be a positive finite number",
            &det,
        );
    }
    refused(
        f.cmd()
            .args(["calibrate", "--id-scores"])
            .arg(&scores)
            .args(["--out", "det.json", "--temperature", "1e9"]),
        "--temperature must be between 0.001 and 1000000, got 1000000000",
        &det,
    );
}

#[test]
fn detect_refuses_scores_of_another_method() {
    let f = F::new();
    let energy: Vec<f64> = (0..40).map(|i| 6.0 + i as f64 * 0.25).collect();
    f.vector("val.npy", &energy);
    f.cmd()
        .args(["calibrate", "--id-scores", "val.npy", "--out", "det.json"])
        .assert()
        .success();
    f.vector("msp.npy", &[0.3, 0.9, 0.99, 0.5]);
    let flags = f.old("flags.npy");
    let detect = |extra: &[&str]| {
        let mut c = f.cmd();
        c.args(["detect", "--detector", "det.json", "--scores", "msp.npy"])
            .args(["--out", "flags.npy"])
            .args(extra);
        c
    };
    refused(
        &mut detect(&[]),
        "msp.npy: every score lies in [0, 1], as MSP scores do, but this energy detector",
        &flags,
    );
    refused(
        &mut detect(&["--method", "msp"]),
        "calibrated on energy scores, these are declared msp",
        &flags,
    );
    // declared as the detector's method, they are taken as they are
    detect(&["--method", "energy"]).assert().success();
    // an MSP detector refuses scores outside [0, 1] already at calibration
    refused(
        f.cmd()
            .args(["calibrate", "--id-scores", "val.npy", "--method", "msp"])
            .args(["--out", "flags.npy"]),
        "msp scores lie in [0, 1], but score 0 is 6",
        &flags,
    );
}

#[test]
fn sizes_from_flags_are_checked_before_anything_is_allocated() {
    let f = F::new();
    let id = f.vector("id.npy", &[1.0, 2.0, 3.0, 4.0, 5.0]);
    f.vector("ood.npy", &[0.0, 1.5, 2.5]);
    let keep = f.old("keep.txt");
    refused(
        f.cmd().args(["metrics", "--id"]).arg(&id).args([
            "--ood",
            "ood.npy",
            "--draws",
            "1000000000",
        ]),
        "--draws must be between 1 and 100000, got 1000000000",
        &keep,
    );
    let images = f.p("x.npy");
    ndarray_npy::write_npy(&images, &ndarray::Array4::<u8>::zeros((2, 4, 4, 1))).unwrap();
    let png = f.old("m.png");
    for (flag, value, says) in [
        ("--max", "0", "--max must be between 1 and 10000, got 0"),
        (
            "--scale",
            "100000",
            "--scale must be between 1 and 32, got 100000",
        ),
        ("--cols", "0", "--cols must be between 1 and 256, got 0"),
    ] {
        refused(
            f.cmd()
                .args(["data", "show", "x.npy", "--out", "m.png", flag, value]),
            says,
            &png,
        );
    }
    std::fs::create_dir_all(f.p("folder")).unwrap();
    let npy = f.old("o.npy");
    refused(
        f.cmd().args([
            "data", "convert", "folder", "--out", "o.npy", "--size", "100000",
        ]),
        "--size must be between 1 and 4096, got 100000",
        &npy,
    );
}

/// A build without the `nn` feature still knows the neural commands and says what they need.
#[cfg(not(feature = "nn"))]
#[test]
fn neural_commands_say_they_need_the_nn_feature() {
    let f = F::new();
    let keep = f.old("keep.txt");
    for cmd in ["extract", "train", "finetune", "bench"] {
        refused(
            f.cmd()
                .args([cmd, "--checkpoint", "m.json", "--out-dir", "x"]),
            &format!("`eood {cmd}` needs the `nn` feature"),
            &keep,
        );
    }
}

/// A training set whose labels do not fit its images is refused in one line before anything
/// is built (typed `ood_nn::Error` variants; they were `Config(String)`).
#[cfg(feature = "nn")]
#[test]
fn training_labels_that_do_not_fit_the_images_are_refused() {
    use ndarray::{Array1, Array4};
    let f = F::new();
    let keep = f.old("keep.txt");
    let npy = |name: &str, images: usize, labels: &[i64]| {
        ndarray_npy::write_npy(
            f.p(&format!("{name}_x.npy")),
            &Array4::<u8>::zeros((images, 8, 8, 1)),
        )
        .unwrap();
        ndarray_npy::write_npy(
            f.p(&format!("{name}_y.npy")),
            &Array1::from(labels.to_vec()),
        )
        .unwrap();
    };
    npy("short", 3, &[0, 1]);
    npy("negative", 3, &[0, -1, 1]);
    for (name, says) in [
        (
            "short",
            "short_y.npy has 2 labels but short_x.npy has 3 images",
        ),
        ("negative", "negative_y.npy: negative label -1"),
    ] {
        refused(
            f.cmd().args([
                "train",
                "--train-images",
                &format!("{name}_x.npy"),
                "--train-labels",
                &format!("{name}_y.npy"),
                "--out",
                "m.json",
            ]),
            says,
            &keep,
        );
        assert!(!f.p("m.json").exists());
    }
}
