//! The score a set of scores came from ([`ScoreMethod`]) and the one check of a score
//! temperature, shared by `score`, `calibrate` and `detect`.
use ood_core::limits::check_range;

/// Temperatures accepted by `score` and `calibrate` (the paper uses 1, ODIN up to 1000). Outside
/// this range `T * logsumexp(logits / T)` overflows or loses all precision for real logits.
pub const TEMPERATURE_RANGE: (f64, f64) = (1e-3, 1e6);

/// The one check of a score temperature, shared by `score` and `calibrate`: NaN, zero and
/// negative values get the scorer's own error, then the range applies.
pub fn check_temperature(t: f64) -> anyhow::Result<f64> {
    if !(t.is_finite() && t > 0.0) {
        return Err(ood_core::scores::ScoreError::Temperature(t).into());
    }
    Ok(check_range(
        "--temperature",
        t,
        TEMPERATURE_RANGE.0,
        TEMPERATURE_RANGE.1,
    )?)
}

/// The score a set of scores came from, as `calibrate` records it and `detect` checks it:
/// every detector key of `eood score` (`ood_core::detectors::Method`: energy, msp, maxlogit,
/// react, ash_p, ..., gradnorm) and the input-space methods of `eood extract --method`
/// (`odin`, `mahalanobis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMethod {
    Zoo(ood_core::detectors::Method),
    Mahalanobis,
    Odin,
}

impl std::str::FromStr for ScoreMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use ood_core::detectors::Method;
        match s {
            "mahalanobis" => Ok(ScoreMethod::Mahalanobis),
            "odin" => Ok(ScoreMethod::Odin),
            s => Method::from_key(s).map(ScoreMethod::Zoo).map_err(|_| {
                let keys: Vec<&str> = Method::ALL.iter().map(|m| m.key()).collect();
                format!("expected {}, odin or mahalanobis", keys.join(", "))
            }),
        }
    }
}

impl ScoreMethod {
    /// The name written into detector files (the detector key).
    pub fn name(self) -> &'static str {
        match self {
            ScoreMethod::Zoo(m) => m.key(),
            ScoreMethod::Mahalanobis => "mahalanobis",
            ScoreMethod::Odin => "odin",
        }
    }

    /// Whether the score has a temperature (default 1 when not given).
    pub fn has_temperature(self) -> bool {
        use ood_core::detectors::Method;
        matches!(
            self,
            ScoreMethod::Zoo(Method::Energy | Method::Msp | Method::Gradnorm) | ScoreMethod::Odin
        )
    }
}
