//! The calibrated detector, the deployable `G(x)` of Liu et al. 2020 (eq. 6):
//! `G(x; tau, f) = 1 (in-distribution) if -E(x; f) > tau, else 0 (OOD)`, with tau chosen on
//! in-distribution validation data so that a high fraction of it (paper: 95%) is accepted.
//! It works for any score where higher means more in-distribution.
//!
//! Choosing tau: sort the n validation scores ascending, accept the top `k = ceil(target * n)`.
//! tau is the midpoint between the largest rejected and the smallest accepted score, so the
//! strict rule `score > tau` accepts exactly those k, except when ties straddle the cut: then
//! every score tied with the smallest accepted one is accepted too (the accepted fraction can
//! only exceed the target, never fall short). The fraction actually accepted on the
//! validation scores is saved with tau.
//!
//! The artifact is a small JSON file (method, temperature, tau, target, accepted fraction, score
//! statistics, versions), written atomically.
//!
//! Applying a detector to scores of another method (an energy threshold to MSP scores) would
//! give plausible-looking nonsense, so [`Detector::check_scores`] refuses, before any flag is
//! written: scores declared as another method than the detector's; scores outside the method's
//! domain (MSP lies in [0, 1]); and, when the method is not declared, scores that all lie in
//! [0, 1] (as MSP scores do) while the calibration scores lay entirely outside it. The
//! calibration range is the one already saved in `score_stats`, so old detector files work.
//!
//! Fitted zoo detectors share the `eood-detector` format; `"kind": "calibrated"` (version 2,
//! [`kind`]) tells this file from theirs, and a fitted file given here is named as such.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::io::{write_atomic, IoError};

pub mod kind;
pub use kind::{check_kind, DetectorKind, KindError, FORMAT, FORMAT_VERSION};

/// Summary statistics of the calibration scores (for sanity checks at deployment).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreStats {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl ScoreStats {
    /// Population statistics of finite, non-empty scores.
    pub fn of(scores: &[f64]) -> Self {
        let n = scores.len() as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            count: scores.len(),
            mean,
            std: var.sqrt(),
            min,
            max,
        }
    }
}

/// Largest detector file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// A calibrated threshold detector, as saved on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// Always `eood-detector`.
    pub format: String,
    /// Artifact format version: [`FORMAT_VERSION`] once loaded (version 1 files are read too).
    pub version: u32,
    /// Always [`DetectorKind::Calibrated`] (absent from version 1 files).
    #[serde(default = "kind::calibrated")]
    pub kind: DetectorKind,
    /// Version of the software that wrote it.
    pub software_version: String,
    /// Score the threshold applies to (`energy`, `msp`, `maxlogit`, `mahalanobis`, ...).
    pub method: String,
    /// Temperature of the score, when it has one.
    pub temperature: Option<f64>,
    /// Accept iff `score > tau`.
    pub tau: f64,
    /// Target fraction of in-distribution scores accepted (paper: 0.95).
    pub target_tpr: f64,
    /// Fraction of the calibration scores accepted by `score > tau`.
    pub accepted_fraction: f64,
    /// Human-readable rule.
    pub rule: String,
    pub score_stats: ScoreStats,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("target TPR must be in (0, 1), got {0}")]
    Tpr(f64),
    #[error("no calibration scores")]
    Empty,
    #[error("calibration score at index {index} is {value} (non-finite scores are refused)")]
    NonFinite { index: usize, value: f64 },
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("{}: not a valid detector file: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Kind(#[from] KindError),
    #[error("the detector was calibrated on {detector} scores, these are declared {given}")]
    MethodMismatch { detector: String, given: String },
    #[error("{method} scores lie in [{min}, {max}], but score {index} is {value}")]
    OutOfDomain {
        method: String,
        index: usize,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("every score lies in [0, 1], as MSP scores do, but this {method} detector was calibrated on scores in [{cal_min}, {cal_max}]; pass --method {method} if they really are {method} scores")]
    LooksLikeMsp {
        method: String,
        cal_min: f64,
        cal_max: f64,
    },
}

/// The range every score of `method` lies in, when it has one (MSP is a probability).
pub fn score_domain(method: &str) -> Option<(f64, f64)> {
    (method == "msp").then_some((0.0, 1.0))
}

fn check_domain(method: &str, scores: &[f64]) -> Result<(), DetectorError> {
    let Some((min, max)) = score_domain(method) else {
        return Ok(());
    };
    match scores.iter().position(|s| !(*s >= min && *s <= max)) {
        Some(index) => Err(DetectorError::OutOfDomain {
            method: method.into(),
            index,
            value: scores[index],
            min,
            max,
        }),
        None => Ok(()),
    }
}

impl Detector {
    /// Choose tau on in-distribution validation scores so that `target_tpr` of them pass.
    pub fn calibrate(
        scores: &[f64],
        target_tpr: f64,
        method: &str,
        temperature: Option<f64>,
    ) -> Result<Self, DetectorError> {
        if !(target_tpr > 0.0 && target_tpr < 1.0) {
            return Err(DetectorError::Tpr(target_tpr));
        }
        if scores.is_empty() {
            return Err(DetectorError::Empty);
        }
        if let Some(index) = crate::finite::first_nonfinite(scores) {
            return Err(DetectorError::NonFinite {
                index,
                value: scores[index],
            });
        }
        check_domain(method, scores)?;
        let mut sorted: Vec<f64> = scores.iter().map(|s| s + 0.0).collect();
        sorted.sort_unstable_by(f64::total_cmp);
        let n = sorted.len();
        // the tiny slack keeps e.g. 0.95 * 20 = 19.000000000000004 from asking for 20
        let k = ((target_tpr * n as f64 - 1e-9).ceil() as usize).clamp(1, n);
        let lowest_accepted = sorted[n - k];
        // largest score strictly below the lowest accepted one (ties are accepted together)
        let below = sorted[..n - k]
            .iter()
            .rev()
            .find(|&&s| s < lowest_accepted)
            .copied();
        let tau = match below {
            Some(b) => {
                let mid = b + (lowest_accepted - b) / 2.0;
                if mid < lowest_accepted {
                    mid
                } else {
                    b
                }
            }
            None => next_below(lowest_accepted),
        };
        let accepted = sorted.iter().filter(|&&s| s > tau).count();
        Ok(Self {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            kind: DetectorKind::Calibrated,
            software_version: env!("CARGO_PKG_VERSION").into(),
            method: method.into(),
            temperature,
            tau,
            target_tpr,
            accepted_fraction: accepted as f64 / n as f64,
            rule: "accept (in-distribution) iff score > tau".into(),
            score_stats: ScoreStats::of(&sorted),
        })
    }

    /// `G(x)`: true = in-distribution. NaN is never accepted.
    pub fn accepts(&self, score: f64) -> bool {
        score > self.tau
    }

    /// Refuses scores that cannot be of this detector's method (see the module docs);
    /// `declared` is the method the caller says they are.
    pub fn check_scores(
        &self,
        scores: &[f64],
        declared: Option<&str>,
    ) -> Result<(), DetectorError> {
        if let Some(given) = declared.filter(|&g| g != self.method) {
            return Err(DetectorError::MethodMismatch {
                detector: self.method.clone(),
                given: given.into(),
            });
        }
        check_domain(&self.method, scores)?;
        let (cal_min, cal_max) = (self.score_stats.min, self.score_stats.max);
        let unit = |s: &f64| (0.0..=1.0).contains(s);
        let calibrated_outside = cal_min > 1.0 || cal_max < 0.0;
        if declared.is_none()
            && score_domain(&self.method).is_none()
            && calibrated_outside
            && scores.len() >= 2
            && scores.iter().all(unit)
        {
            return Err(DetectorError::LooksLikeMsp {
                method: self.method.clone(),
                cal_min,
                cal_max,
            });
        }
        Ok(())
    }

    /// Flags for many scores: 1 = accept, 0 = reject.
    pub fn apply(&self, scores: &[f64]) -> Vec<u8> {
        scores.iter().map(|&s| u8::from(self.accepts(s))).collect()
    }

    pub fn save(&self, path: &Path) -> Result<(), DetectorError> {
        let mut text = serde_json::to_string_pretty(self).expect("detector serializes");
        text.push('\n');
        write_atomic::<DetectorError>(path, |w| {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .map_err(|e| IoError::new(path, e).into())
        })
    }

    /// Read a detector file: a regular file only (never a device node or a FIFO), at most
    /// [`MAX_FILE_BYTES`] (a real one is under a kilobyte).
    pub fn load(path: &Path) -> Result<Self, DetectorError> {
        use std::io::Read;
        let (file, len) = crate::io::open_regular(path)?;
        if len > MAX_FILE_BYTES {
            return Err(DetectorError::Format {
                path: path.into(),
                message: format!("{len} bytes, more than a detector file's {MAX_FILE_BYTES}"),
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| IoError::new(path, e))?;
        // KNN's fitted file is safetensors, not JSON
        if crate::detectors::is_fitted_safetensors(&bytes) {
            return Err(KindError::WrongKind {
                path: path.into(),
                found: DetectorKind::Fitted,
                wanted: DetectorKind::Calibrated,
            }
            .into());
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            IoError::new(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        Self::parse(&text, path)
    }

    /// Parse and check the JSON text of a detector file; `path` names its origin in errors
    /// (the Python package unpickles detectors through this).
    pub fn parse(text: &str, path: &Path) -> Result<Self, DetectorError> {
        check_kind(text.as_bytes(), path, DetectorKind::Calibrated)?;
        let mut d: Detector = serde_json::from_str(text).map_err(|source| DetectorError::Json {
            path: path.into(),
            source,
        })?;
        let bad = |message: String| DetectorError::Format {
            path: path.into(),
            message,
        };
        if d.format != FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {FORMAT:?}",
                d.format
            )));
        }
        if d.version != 1 && d.version != FORMAT_VERSION {
            return Err(KindError::Version {
                path: path.into(),
                version: d.version,
            }
            .into());
        }
        if !d.tau.is_finite() {
            return Err(bad(format!("tau is {}", d.tau)));
        }
        // upgraded in memory: saved again, it is a version 2 file
        d.version = FORMAT_VERSION;
        Ok(d)
    }
}

/// The largest f64 strictly below a finite `x`.
fn next_below(x: f64) -> f64 {
    if x == 0.0 {
        return -f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits - 1 } else { bits + 1 })
}

#[cfg(test)]
mod tests;
