//! Energy, MSP and max-logit in the detector API. Their formulas live in
//! [`crate::scores`] (energy: Liu et al. 2020; MSP: Hendrycks & Gimpel 2017; max-logit:
//! Hendrycks et al. 2022); this adapter only routes logits (given, or from features and a
//! head) to them.

use serde::{Deserialize, Serialize};

use super::data::{check_positive, rows_map};
use super::{DetectorError, FitData, Head, Inputs};
use crate::scores::{contiguous, Method as LogitMethod};

/// Which logit score, with its temperature (ignored by max-logit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogitParams {
    pub temperature: f64,
}

impl Default for LogitParams {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl LogitParams {
    pub fn validate(&self) -> Result<(), DetectorError> {
        check_positive("temperature", self.temperature)
    }
    /// Keeps the head when one is given, so that features alone can be scored.
    pub fn fit(&self, data: &FitData) -> Result<Logit, DetectorError> {
        self.validate()?;
        data.check()?;
        Ok(Logit {
            params: *self,
            head: data.head.cloned(),
        })
    }
}

/// A ready logit score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logit {
    pub params: LogitParams,
    pub head: Option<Head>,
}

impl Logit {
    pub fn score(&self, method: LogitMethod, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        x.check(self.head.as_ref())?;
        let logits = x.logits(method.name(), self.head.as_ref())?;
        let s = method.scorer(self.params.temperature);
        // finite and non-empty: checked above
        Ok(rows_map(logits.view(), |r, buf| {
            s.score_row(contiguous(r, buf))
        }))
    }
}
