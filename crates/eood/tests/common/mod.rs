//! Helpers shared by the CLI test binaries: the `eood` command, a fixture folder of generated
//! `.npy` inputs, and the one-line-error assertion.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ndarray::Array2;
use ood_core::io::npy::{write_f64_matrix, write_f64_vector};
use serde_json::Value;

pub mod nn;

pub fn eood() -> Command {
    Command::cargo_bin("eood").unwrap()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn vector(&self, name: &str, v: &[f64]) -> PathBuf {
        let p = self.path(name);
        write_f64_vector(&p, v).unwrap();
        p
    }
    pub fn matrix(&self, name: &str, m: &Array2<f64>) -> PathBuf {
        let p = self.path(name);
        write_f64_matrix(&p, m).unwrap();
        p
    }
    /// A .npy written byte by byte, for headers our writer never produces.
    pub fn raw(&self, name: &str, header: &str, payload: &[u8]) -> PathBuf {
        let p = self.path(name);
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(payload);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    /// ID scores 0..40 (step 0.5, with duplicates) and OOD scores overlapping the low end.
    pub fn id_ood(&self) -> (PathBuf, PathBuf) {
        let id: Vec<f64> = (0..80).map(|i| (i / 2) as f64 * 0.5 + 2.0).collect();
        let ood: Vec<f64> = (0..30).map(|i| (i % 15) as f64 * 0.5).collect();
        (self.vector("id.npy", &id), self.vector("ood.npy", &ood))
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run, expect exit code 2 and exactly one stderr line containing every `needles`; returns it.
pub fn fails_with(cmd: &mut Command, needles: &[&str]) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected, got: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
    err
}

pub fn stdout_json(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}
