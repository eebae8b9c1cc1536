//! Hostile file arguments to the framework-free commands: device nodes, FIFOs, outputs equal
//! to inputs, malformed and oversized `.npy` headers, long output names. Each refusal is one
//! line and exit 2, and every input is left byte for byte as it was.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use ndarray::array;
use ood_core::io::npy::{read_f64_vector, write_f64_matrix, write_f64_vector, write_i64_vector};

use common::{fails_with, s};

fn eood() -> Command {
    let mut c = common::eood();
    // A command that blocks (e.g. opening a FIFO) fails the test instead of hanging it.
    c.timeout(Duration::from_secs(60));
    c
}

struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn logits(&self) -> PathBuf {
        let p = self.path("logits.npy");
        write_f64_matrix(&p, &array![[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]).unwrap();
        p
    }
    fn raw(&self, name: &str, header: &str, payload: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, ood_core::io::npy::raw_v1(header, payload)).unwrap();
        p
    }
}

fn score(logits: &Path, out: &Path) -> Command {
    let mut c = eood();
    c.args(["score", "--logits", s(logits), "--out", s(out)]);
    c
}

#[cfg(unix)]
#[test]
fn dev_null_as_out_is_refused_and_stays_a_device() {
    use std::os::unix::fs::FileTypeExt;
    let f = Inputs::new();
    let logits = f.logits();
    let before = std::fs::read(&logits).unwrap();
    fails_with(
        &mut score(&logits, Path::new("/dev/null")),
        &["/dev/null: refusing to write over a character device"],
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(std::fs::read(&logits).unwrap(), before);
}

#[test]
fn out_equal_to_an_input_is_refused_for_every_writer() {
    let f = Inputs::new();
    let logits = f.logits();
    let before = std::fs::read(&logits).unwrap();
    // The same file by another spelling.
    let again = f.dir.path().join(".").join("logits.npy");
    fails_with(
        &mut score(&logits, &again),
        &[
            "refusing to overwrite an input of this command",
            "logits.npy",
        ],
    );
    assert_eq!(std::fs::read(&logits).unwrap(), before);

    let scores = f.path("scores.npy");
    write_f64_vector(&scores, &(0..40).map(f64::from).collect::<Vec<_>>()).unwrap();
    let sbytes = std::fs::read(&scores).unwrap();
    fails_with(
        eood().args(["calibrate", "--id-scores", s(&scores), "--out", s(&scores)]),
        &["refusing to overwrite an input"],
    );
    let det = f.path("det.json");
    eood()
        .args(["calibrate", "--id-scores", s(&scores), "--out", s(&det)])
        .assert()
        .success();
    let dbytes = std::fs::read(&det).unwrap();
    fails_with(
        eood().args([
            "detect",
            "--detector",
            s(&det),
            "--scores",
            s(&scores),
            "--out",
            s(&det),
        ]),
        &["refusing to overwrite an input"],
    );
    let labels = f.path("labels.npy");
    write_i64_vector(&labels, &[0, 1]).unwrap();
    fails_with(
        eood().args([
            "fit",
            "--method",
            "mahalanobis_features",
            "--features",
            s(&logits),
            "--labels",
            s(&labels),
            "--out",
            s(&labels),
        ]),
        &["refusing to overwrite an input"],
    );
    assert_eq!(std::fs::read(&scores).unwrap(), sbytes);
    assert_eq!(std::fs::read(&det).unwrap(), dbytes);
    assert_eq!(read_f64_vector(&scores).unwrap().len(), 40);
}

#[test]
fn dev_zero_as_input_is_refused_at_once() {
    let f = Inputs::new();
    let out = f.path("s.npy");
    fails_with(
        &mut score(Path::new("/dev/zero"), &out),
        &["/dev/zero: not a regular file (a character device)"],
    );
    assert!(!out.exists());
}

#[cfg(unix)]
#[test]
fn fifo_as_input_is_refused_without_blocking() {
    let f = Inputs::new();
    let fifo = f.path("pipe.npy");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails_with(
        &mut score(&fifo, &f.path("s.npy")),
        &["pipe.npy: not a regular file (a FIFO)"],
    );
}

#[test]
fn malformed_shape_tuple_is_refused() {
    let f = Inputs::new();
    let bad = f.raw(
        "comma.npy",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (10,,), }\n",
        &[0; 80],
    );
    let before = std::fs::read(&bad).unwrap();
    fails_with(
        &mut score(&bad, &f.path("s.npy")),
        &["comma.npy: malformed .npy header: bad dimension"],
    );
    assert_eq!(std::fs::read(&bad).unwrap(), before);
}

#[test]
fn a_2kb_hostile_header_gives_a_short_message() {
    let f = Inputs::new();
    let junk = "\u{7}x".repeat(1000);
    let bad = f.raw(
        "junk.npy",
        &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), '{junk}': 1}}\n"),
        &[0; 8],
    );
    let before = std::fs::read(&bad).unwrap();
    let err = fails_with(
        &mut score(&bad, &f.path("s.npy")),
        &["junk.npy", "unexpected key", "(2000 bytes)"],
    );
    assert!(err.len() < 300, "{} bytes: {err}", err.len());
    assert_eq!(std::fs::read(&bad).unwrap(), before);
}

#[test]
fn a_long_valid_output_name_works() {
    let f = Inputs::new();
    let logits = f.logits();
    let out = f.path(&("s".repeat(251) + ".npy"));
    score(&logits, &out).assert().success();
    assert_eq!(read_f64_vector(&out).unwrap().len(), 2);
    // Only the inputs and the output are left: no temporary file.
    assert_eq!(std::fs::read_dir(f.dir.path()).unwrap().count(), 2);
}
