//! The post-hoc detector zoo on plain arrays (features, logits, the last layer), one file per
//! method with its formula and citation. Every method follows one API:
//!
//! [`Params`] (hyper-parameters, validated in one place, each method's paper grid from
//! [`Params::paper_grid`]) -> [`Params::fit`] on [`FitData`] (training features / logits /
//! labels and the head W, b; never test data) -> [`Fitted`], whose [`Fitted::score`] maps
//! [`Inputs`] to one score per row (higher = in-distribution) and which saves to / loads from a
//! JSON file ([`Fitted::save`], [`Fitted::load`]). Keys ([`Method::key`]) are the report keys.
//! docs/detectors.md lists the methods, their references and where they differ from
//! pytorch-ood.

pub mod ash;
pub mod baseline;
pub mod data;
pub mod dice;
pub mod entropy;
mod error;
pub mod file;
pub mod gen;
pub mod gradnorm;
pub mod klm;
pub mod knn;
mod knn_search;
pub mod linalg;
pub mod mahalanobis;
pub mod react;
pub mod rmds;
pub mod scale;
pub mod she;
pub mod vim;

pub use ash::{Ash, AshParams, AshVariant};
pub use baseline::{Logit, LogitParams};
pub use data::{FitData, Head, Inputs};
pub use dice::{Dice, DiceParams};
pub use entropy::{Entropy, EntropyParams};
pub use error::DetectorError;
pub(crate) use file::is_fitted_safetensors;
pub use gen::{Gen, GenParams};
pub use gradnorm::{Gradnorm, GradnormParams};
pub use klm::{Klm, KlmParams};
pub use knn::{Knn, KnnParams};
pub use mahalanobis::MahalanobisFeatures;
pub use react::{React, ReactParams};
pub use rmds::Rmds;
pub use scale::{Scale, ScaleParams};
pub use she::{She, SheParams};
pub use vim::{Vim, VimParams};

use crate::scores::{MahalanobisParams, Method as LogitMethod};
use serde::{Deserialize, Serialize};

/// Every detector, by its report key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Energy,
    Msp,
    #[serde(rename = "maxlogit")]
    MaxLogit,
    React,
    AshP,
    AshB,
    AshS,
    Scale,
    Dice,
    Gen,
    Entropy,
    Klm,
    Knn,
    Vim,
    MahalanobisFeatures,
    Rmds,
    She,
    Gradnorm,
}

impl Method {
    pub const ALL: [Method; 18] = [
        Method::Energy,
        Method::Msp,
        Method::MaxLogit,
        Method::React,
        Method::AshP,
        Method::AshB,
        Method::AshS,
        Method::Scale,
        Method::Dice,
        Method::Gen,
        Method::Entropy,
        Method::Klm,
        Method::Knn,
        Method::Vim,
        Method::MahalanobisFeatures,
        Method::Rmds,
        Method::She,
        Method::Gradnorm,
    ];

    /// The report key (`energy`, `msp`, `maxlogit` as today; `react`, `ash_p`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Method::Energy => "energy",
            Method::Msp => "msp",
            Method::MaxLogit => "maxlogit",
            Method::React => "react",
            Method::AshP => "ash_p",
            Method::AshB => "ash_b",
            Method::AshS => "ash_s",
            Method::Scale => "scale",
            Method::Dice => "dice",
            Method::Gen => "gen",
            Method::Entropy => "entropy",
            Method::Klm => "klm",
            Method::Knn => "knn",
            Method::Vim => "vim",
            Method::MahalanobisFeatures => "mahalanobis_features",
            Method::Rmds => "rmds",
            Method::She => "she",
            Method::Gradnorm => "gradnorm",
        }
    }

    pub fn from_key(key: &str) -> Result<Method, DetectorError> {
        Method::ALL
            .into_iter()
            .find(|m| m.key() == key)
            .ok_or_else(|| DetectorError::UnknownMethod(key.into()))
    }
}

/// Hyper-parameters of one method (the paper's defaults from [`Params::default_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Params {
    Energy(LogitParams),
    Msp(LogitParams),
    #[serde(rename = "maxlogit")]
    MaxLogit,
    React(ReactParams),
    Ash(AshParams),
    Scale(ScaleParams),
    Dice(DiceParams),
    Gen(GenParams),
    Entropy,
    Klm,
    Knn(KnnParams),
    Vim(VimParams),
    MahalanobisFeatures(MahalanobisParams),
    Rmds(MahalanobisParams),
    She,
    Gradnorm(GradnormParams),
}

impl Params {
    pub fn default_for(m: Method) -> Params {
        match m {
            Method::Energy => Params::Energy(LogitParams::default()),
            Method::Msp => Params::Msp(LogitParams::default()),
            Method::MaxLogit => Params::MaxLogit,
            Method::React => Params::React(ReactParams::default()),
            Method::AshP => Params::Ash(AshParams::new(AshVariant::P)),
            Method::AshB => Params::Ash(AshParams::new(AshVariant::B)),
            Method::AshS => Params::Ash(AshParams::new(AshVariant::S)),
            Method::Scale => Params::Scale(ScaleParams::default()),
            Method::Dice => Params::Dice(DiceParams::default()),
            Method::Gen => Params::Gen(GenParams::default()),
            Method::Entropy => Params::Entropy,
            Method::Klm => Params::Klm,
            Method::Knn => Params::Knn(KnnParams::default()),
            Method::Vim => Params::Vim(VimParams::default()),
            Method::MahalanobisFeatures => {
                Params::MahalanobisFeatures(MahalanobisParams::default())
            }
            Method::Rmds => Params::Rmds(MahalanobisParams::default()),
            Method::She => Params::She,
            Method::Gradnorm => Params::Gradnorm(GradnormParams::default()),
        }
    }

    pub fn method(&self) -> Method {
        match self {
            Params::Energy(_) => Method::Energy,
            Params::Msp(_) => Method::Msp,
            Params::MaxLogit => Method::MaxLogit,
            Params::React(_) => Method::React,
            Params::Ash(a) => match a.variant {
                AshVariant::P => Method::AshP,
                AshVariant::B => Method::AshB,
                AshVariant::S => Method::AshS,
            },
            Params::Scale(_) => Method::Scale,
            Params::Dice(_) => Method::Dice,
            Params::Gen(_) => Method::Gen,
            Params::Entropy => Method::Entropy,
            Params::Klm => Method::Klm,
            Params::Knn(_) => Method::Knn,
            Params::Vim(_) => Method::Vim,
            Params::MahalanobisFeatures(_) => Method::MahalanobisFeatures,
            Params::Rmds(_) => Method::Rmds,
            Params::She => Method::She,
            Params::Gradnorm(_) => Method::Gradnorm,
        }
    }

    /// The hyper-parameter grid of the method's paper, for the selection module to choose from
    /// on validation OOD sets; a single default where the method has nothing to tune.
    /// `dims` is the feature dimension D (ViM's grid stays below it).
    pub fn paper_grid(m: Method, dims: usize) -> Vec<Params> {
        match m {
            Method::React => ReactParams::paper_grid()
                .into_iter()
                .map(Params::React)
                .collect(),
            Method::AshP | Method::AshB | Method::AshS => {
                let Params::Ash(a) = Params::default_for(m) else {
                    unreachable!()
                };
                AshParams::paper_grid(a.variant)
                    .into_iter()
                    .map(Params::Ash)
                    .collect()
            }
            Method::Scale => ScaleParams::paper_grid()
                .into_iter()
                .map(Params::Scale)
                .collect(),
            Method::Dice => DiceParams::paper_grid()
                .into_iter()
                .map(Params::Dice)
                .collect(),
            Method::Gen => GenParams::paper_grid()
                .into_iter()
                .map(Params::Gen)
                .collect(),
            Method::Knn => KnnParams::paper_grid()
                .into_iter()
                .map(Params::Knn)
                .collect(),
            Method::Vim => VimParams::paper_grid(dims)
                .into_iter()
                .map(Params::Vim)
                .collect(),
            _ => vec![Params::default_for(m)],
        }
    }

    /// Check the hyper-parameters (fit checks them again, so an invalid one never fits).
    pub fn validate(&self) -> Result<(), DetectorError> {
        match self {
            Params::Energy(p) | Params::Msp(p) => p.validate(),
            Params::React(p) => p.validate(),
            Params::Ash(p) => p.validate(),
            Params::Scale(p) => p.validate(),
            Params::Dice(p) => p.validate(),
            Params::Gen(p) => p.validate(),
            Params::Knn(p) => p.validate(),
            Params::Vim(p) => p.validate(),
            Params::MahalanobisFeatures(p) | Params::Rmds(p) => {
                if (0.0..=1.0).contains(&p.shrinkage) {
                    Ok(())
                } else {
                    Err(DetectorError::Param {
                        name: "shrinkage",
                        value: p.shrinkage,
                        range: "between 0 and 1",
                    })
                }
            }
            Params::Gradnorm(p) => p.validate(),
            Params::MaxLogit | Params::Entropy | Params::Klm | Params::She => Ok(()),
        }
    }

    /// Fit on training data.
    pub fn fit(&self, data: &FitData) -> Result<Fitted, DetectorError> {
        self.validate()?;
        Ok(match self {
            Params::Energy(p) => Fitted::Energy(p.fit(data)?),
            Params::Msp(p) => Fitted::Msp(p.fit(data)?),
            Params::MaxLogit => Fitted::MaxLogit(LogitParams::default().fit(data)?),
            Params::React(p) => Fitted::React(p.fit(data)?),
            Params::Ash(p) => Fitted::Ash(p.fit(data)?),
            Params::Scale(p) => Fitted::Scale(p.fit(data)?),
            Params::Dice(p) => Fitted::Dice(p.fit(data)?),
            Params::Gen(p) => Fitted::Gen(p.fit(data)?),
            Params::Entropy => Fitted::Entropy(EntropyParams.fit(data)?),
            Params::Klm => Fitted::Klm(KlmParams.fit(data)?),
            Params::Knn(p) => Fitted::Knn(p.fit(data)?),
            Params::Vim(p) => Fitted::Vim(p.fit(data)?),
            Params::MahalanobisFeatures(p) => {
                Fitted::MahalanobisFeatures(mahalanobis::fit(p, data)?)
            }
            Params::Rmds(p) => Fitted::Rmds(rmds::fit(p, data)?),
            Params::She => Fitted::She(SheParams.fit(data)?),
            Params::Gradnorm(p) => Fitted::Gradnorm(p.fit(data)?),
        })
    }
}

/// A fitted detector of any method. Variants differ in size (a head is inline); a program holds
/// a handful of them, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Fitted {
    Energy(Logit),
    Msp(Logit),
    #[serde(rename = "maxlogit")]
    MaxLogit(Logit),
    React(React),
    Ash(Ash),
    Scale(Scale),
    Dice(Dice),
    Gen(Gen),
    Entropy(Entropy),
    Klm(Klm),
    Knn(Knn),
    Vim(Vim),
    MahalanobisFeatures(MahalanobisFeatures),
    Rmds(Rmds),
    She(She),
    Gradnorm(Gradnorm),
}

impl Fitted {
    pub fn method(&self) -> Method {
        match self {
            Fitted::Energy(_) => Method::Energy,
            Fitted::Msp(_) => Method::Msp,
            Fitted::MaxLogit(_) => Method::MaxLogit,
            Fitted::React(_) => Method::React,
            Fitted::Ash(a) => Params::Ash(a.params).method(),
            Fitted::Scale(_) => Method::Scale,
            Fitted::Dice(_) => Method::Dice,
            Fitted::Gen(_) => Method::Gen,
            Fitted::Entropy(_) => Method::Entropy,
            Fitted::Klm(_) => Method::Klm,
            Fitted::Knn(_) => Method::Knn,
            Fitted::Vim(_) => Method::Vim,
            Fitted::MahalanobisFeatures(_) => Method::MahalanobisFeatures,
            Fitted::Rmds(_) => Method::Rmds,
            Fitted::She(_) => Method::She,
            Fitted::Gradnorm(_) => Method::Gradnorm,
        }
    }

    /// The hyper-parameters it was fitted with.
    pub fn params(&self) -> Params {
        match self {
            Fitted::Energy(d) => Params::Energy(d.params),
            Fitted::Msp(d) => Params::Msp(d.params),
            Fitted::MaxLogit(_) => Params::MaxLogit,
            Fitted::React(d) => Params::React(d.params),
            Fitted::Ash(d) => Params::Ash(d.params),
            Fitted::Scale(d) => Params::Scale(d.params),
            Fitted::Dice(d) => Params::Dice(d.params),
            Fitted::Gen(d) => Params::Gen(d.params),
            Fitted::Entropy(_) => Params::Entropy,
            Fitted::Klm(_) => Params::Klm,
            Fitted::Knn(d) => Params::Knn(d.params),
            Fitted::Vim(d) => Params::Vim(d.params),
            Fitted::MahalanobisFeatures(d) => Params::MahalanobisFeatures(d.model.0.params()),
            Fitted::Rmds(d) => Params::Rmds(d.classes.0.params()),
            Fitted::She(_) => Params::She,
            Fitted::Gradnorm(d) => Params::Gradnorm(d.params),
        }
    }

    /// One score per input row, higher = more in-distribution.
    pub fn score(&self, x: &Inputs) -> Result<Vec<f64>, DetectorError> {
        match self {
            Fitted::Energy(d) => d.score(LogitMethod::Energy, x),
            Fitted::Msp(d) => d.score(LogitMethod::Msp, x),
            Fitted::MaxLogit(d) => d.score(LogitMethod::MaxLogit, x),
            Fitted::React(d) => d.score(x),
            Fitted::Ash(d) => d.score(x),
            Fitted::Scale(d) => d.score(x),
            Fitted::Dice(d) => d.score(x),
            Fitted::Gen(d) => d.score(x),
            Fitted::Entropy(d) => d.score(x),
            Fitted::Klm(d) => d.score(x),
            Fitted::Knn(d) => d.score(x),
            Fitted::Vim(d) => d.score(x),
            Fitted::MahalanobisFeatures(d) => d.score(x),
            Fitted::Rmds(d) => d.score(x),
            Fitted::She(d) => d.score(x),
            Fitted::Gradnorm(d) => d.score(x),
        }
    }
}
