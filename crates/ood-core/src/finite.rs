//! Non-finite values (NaN, +-inf) in scores: metrics refuse them by default, naming the first
//! bad index; callers that opt in may drop them instead and report how many were dropped.

use std::path::{Path, PathBuf};

use crate::io::npy::{read_f64_vector, NpyError};

/// What to do with NaN and infinite scores read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinitePolicy {
    /// Refuse the file, naming the first bad index (default).
    #[default]
    Refuse,
    /// Drop them; the caller reports how many.
    Drop,
}

/// Problems reading a score vector under a [`NonFinitePolicy`].
#[derive(Debug, thiserror::Error)]
pub enum ScoresFileError {
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{}: value at index {index} is {} (non-finite scores are refused)", path.display(), describe(*value))]
    NonFinite {
        path: PathBuf,
        index: usize,
        value: f64,
    },
    #[error("{}: all {count} values are non-finite", path.display())]
    AllNonFinite { path: PathBuf, count: usize },
}

/// Read a 1-D float `.npy` of scores and apply `policy`; returns the scores and how many were dropped.
pub fn read_scores(
    path: &Path,
    policy: NonFinitePolicy,
) -> Result<(Vec<f64>, usize), ScoresFileError> {
    let values = read_f64_vector(path)?;
    match policy {
        NonFinitePolicy::Refuse => match first_nonfinite(&values) {
            Some(index) => Err(ScoresFileError::NonFinite {
                path: path.into(),
                index,
                value: values[index],
            }),
            None => Ok((values, 0)),
        },
        NonFinitePolicy::Drop => {
            let count = values.len();
            let (kept, dropped) = drop_nonfinite(values);
            if kept.is_empty() {
                return Err(ScoresFileError::AllNonFinite {
                    path: path.into(),
                    count,
                });
            }
            Ok((kept, dropped))
        }
    }
}

/// Index of the first NaN or infinite value, if any.
pub fn first_nonfinite(values: &[f64]) -> Option<usize> {
    values.iter().position(|v| !v.is_finite())
}

/// Keep only finite values; returns them and how many were dropped.
pub fn drop_nonfinite(values: Vec<f64>) -> (Vec<f64>, usize) {
    let before = values.len();
    let kept: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// Describe a non-finite value for error messages ("NaN", "inf", "-inf").
pub fn describe(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_drops() {
        let v = vec![1.0, f64::NAN, 2.0, f64::NEG_INFINITY];
        assert_eq!(first_nonfinite(&v), Some(1));
        assert_eq!(describe(v[3]), "-inf");
        assert_eq!(drop_nonfinite(v), (vec![1.0, 2.0], 2));
        assert_eq!(first_nonfinite(&[0.0, -1.0]), None);
    }

    #[test]
    fn read_scores_policies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.npy");
        crate::io::npy::write_f64_vector(&p, &[1.0, f64::INFINITY, 2.0, f64::NAN]).unwrap();
        let e = read_scores(&p, NonFinitePolicy::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("s.npy: value at index 1 is inf (non-finite scores are refused)"),
            "{e}"
        );
        assert_eq!(
            read_scores(&p, NonFinitePolicy::Drop).unwrap(),
            (vec![1.0, 2.0], 2)
        );
        crate::io::npy::write_f64_vector(&p, &[f64::NAN]).unwrap();
        assert!(read_scores(&p, NonFinitePolicy::Drop)
            .unwrap_err()
            .to_string()
            .contains("all 1 values are non-finite"));
    }
}
