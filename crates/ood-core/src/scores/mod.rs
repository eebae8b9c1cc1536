//! OOD scores. Every score means "higher = more in-distribution".
//!
//! Logit-based scores ([`Energy`], [`Msp`], [`MaxLogit`]) map one row of K logits to one number
//! and share the [`LogitScore`] trait. [`mahalanobis`] is fitted on features first
//! ([`MahalanobisParams::fit`] gives a [`Mahalanobis`]).

pub mod energy;
pub mod mahalanobis;
pub mod mahalanobis_ensemble;
pub mod max_logit;
pub mod msp;
pub mod par;

pub use energy::Energy;
pub use mahalanobis::{Mahalanobis, MahalanobisError, MahalanobisParams};
pub use mahalanobis_ensemble::{EnsembleError, EnsembleParams, MahalanobisEnsemble};
pub use max_logit::MaxLogit;
pub use msp::Msp;

use ndarray::ArrayView2;

/// Errors of logit-based scoring.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScoreError {
    #[error("temperature must be a positive finite number, got {0}")]
    Temperature(f64),
    #[error("logit at row {row}, column {col} is {value} (scores need finite logits)")]
    NonFinite { row: usize, col: usize, value: f64 },
    #[error("logits have no columns (need at least one class)")]
    NoClasses,
}

/// A score computed from one row of logits.
pub trait LogitScore: Sync {
    /// Short name used in files and artifacts (`energy`, `msp`, `maxlogit`).
    fn name(&self) -> &'static str;
    /// Temperature, if the method has one.
    fn temperature(&self) -> Option<f64>;
    /// Score of one row; the row is finite and non-empty.
    fn score_row(&self, logits: &[f64]) -> f64;

    /// Score every row of an N x K logit matrix, refusing non-finite logits.
    fn score(&self, logits: ArrayView2<f64>) -> Result<Vec<f64>, ScoreError> {
        if let Some(t) = self.temperature() {
            if !(t.is_finite() && t > 0.0) {
                return Err(ScoreError::Temperature(t));
            }
        }
        if logits.ncols() == 0 {
            return Err(ScoreError::NoClasses);
        }
        par::par_rows(logits, |offset, part| {
            let mut buf = Vec::new();
            part.rows()
                .into_iter()
                .enumerate()
                .map(|(r, row)| {
                    let row = contiguous(row, &mut buf);
                    // one fused pass tests the row: `v * 0` is NaN exactly for NaN and +-inf
                    if row.iter().fold(0.0, |a, &v| a + v * 0.0) != 0.0 {
                        let c = row.iter().position(|v| !v.is_finite()).unwrap_or(0);
                        return Err(ScoreError::NonFinite {
                            row: offset + r,
                            col: c,
                            value: row[c],
                        });
                    }
                    Ok(self.score_row(row))
                })
                .collect()
        })
    }
}

/// A row as a slice: itself when contiguous (no copy), else copied into `buf`.
pub fn contiguous<'a>(row: ndarray::ArrayView1<'a, f64>, buf: &'a mut Vec<f64>) -> &'a [f64] {
    match row.to_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter().copied());
            buf
        }
    }
}

/// The logit-based methods by name, for command lines and configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Energy,
    Msp,
    MaxLogit,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Energy, Method::Msp, Method::MaxLogit];

    pub fn name(self) -> &'static str {
        match self {
            Method::Energy => "energy",
            Method::Msp => "msp",
            Method::MaxLogit => "maxlogit",
        }
    }

    /// Build the scorer; `temperature` is ignored by max-logit.
    pub fn scorer(self, temperature: f64) -> Box<dyn LogitScore> {
        match self {
            Method::Energy => Box::new(Energy { temperature }),
            Method::Msp => Box::new(Msp { temperature }),
            Method::MaxLogit => Box::new(MaxLogit),
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method {s:?} (expected energy, msp or maxlogit)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn refuses_bad_temperature_and_nonfinite() {
        let l = array![[1.0, 2.0], [0.0, f64::NAN]];
        assert_eq!(
            Energy { temperature: 0.0 }.score(l.view()),
            Err(ScoreError::Temperature(0.0))
        );
        let e = Energy::default().score(l.view()).unwrap_err();
        assert!(matches!(e, ScoreError::NonFinite { row: 1, col: 1, .. }));
        assert_eq!(
            e.to_string(),
            "logit at row 1, column 1 is NaN (scores need finite logits)"
        );
        // max-logit has no temperature to check
        assert!(MaxLogit.score(array![[1.0]].view()).is_ok());
    }

    #[test]
    fn method_names_roundtrip() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
            assert_eq!(m.scorer(1.0).name(), m.name());
        }
        assert!("odin".parse::<Method>().is_err());
    }
}
