//! Helpers of the `nn` CLI tests (train, finetune, extract): synthetic labelled image sets, the
//! one-line-error check, a snapshot of a folder's files, and the golden models' outputs.
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use ndarray::{Array1, Array4};
use ndarray_npy::write_npy;

#[path = "../../../ood-nn/tests/common/golden.rs"]
mod golden;
#[allow(unused_imports)] // each test binary uses its own subset
pub use golden::{golden, max_rel_err, npy};

/// `eood` with one OpenMP thread (the tests run in parallel on few cores).
pub fn eood() -> Command {
    let mut c = Command::cargo_bin("eood").unwrap();
    c.env("OMP_NUM_THREADS", "1");
    c
}

/// `n` images of `side x side x c`; class k = i % 3 brightens the k-th horizontal band.
pub fn write_set(
    dir: &Path,
    name: &str,
    n: usize,
    side: usize,
    c: usize,
    labelled: bool,
) -> (PathBuf, PathBuf) {
    let mut x = Array4::<u8>::zeros((n, side, side, c));
    let mut y = Array1::<i64>::zeros(n);
    for i in 0..n {
        y[i] = (i % 3) as i64;
        for r in 0..side {
            for col in 0..side {
                for ch in 0..c {
                    let band = if labelled && r * 3 / side == i % 3 {
                        160
                    } else {
                        0
                    };
                    x[[i, r, col, ch]] = band + ((i * 31 + r * 7 + col * 13 + ch) % 61) as u8;
                }
            }
        }
    }
    let (xp, yp) = (
        dir.join(format!("{name}_x.npy")),
        dir.join(format!("{name}_y.npy")),
    );
    write_npy(&xp, &x).unwrap();
    write_npy(&yp, &y).unwrap();
    (xp, yp)
}

/// Exit 2 and one stderr line that contains `needle`.
pub fn fails(cmd: &mut Command, needle: &str) {
    super::fails_with(cmd, &[needle]);
}

/// Every file of `dir` with its bytes (to show that a refused run changed nothing).
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}
