//! The methods of Tables 1 and 2, as an enum: results are keyed by [`Method`], never by position.
//! The post-hoc detector zoo ([`ood_core::detectors`]) enters as [`Method::Zoo`], keyed by the
//! zoo's own keys (`react`, `ash_p`, ...).
use ood_core::detectors::Method as Detector;
use serde::{Deserialize, Serialize};

use crate::report::Group;

/// A row of Table 2; `Ord` is table order (the order of [`Method::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Msp,
    Energy,
    Odin,
    Mahalanobis,
    /// Lee et al. 2018's layer ensemble (the single-layer `Mahalanobis` is the code of record's).
    MahalanobisEnsemble,
    /// A post-hoc detector of the zoo on the pre-trained model (one of [`ZOO`]).
    Zoo(Detector),
    OutlierExposure,
    EnergyFinetune,
}

/// The zoo methods the benchmark reports, in table order (energy and MSP are rows of their own;
/// max-logit is not a row of the paper's tables).
pub const ZOO: [Detector; 15] = [
    Detector::React,
    Detector::AshP,
    Detector::AshB,
    Detector::AshS,
    Detector::Scale,
    Detector::Dice,
    Detector::Gen,
    Detector::Entropy,
    Detector::Klm,
    Detector::Knn,
    Detector::Vim,
    Detector::MahalanobisFeatures,
    Detector::Rmds,
    Detector::She,
    Detector::Gradnorm,
];

impl Method {
    pub const ALL: [Method; 22] = [
        Method::Msp,
        Method::Energy,
        Method::Odin,
        Method::Mahalanobis,
        Method::MahalanobisEnsemble,
        Method::Zoo(ZOO[0]),
        Method::Zoo(ZOO[1]),
        Method::Zoo(ZOO[2]),
        Method::Zoo(ZOO[3]),
        Method::Zoo(ZOO[4]),
        Method::Zoo(ZOO[5]),
        Method::Zoo(ZOO[6]),
        Method::Zoo(ZOO[7]),
        Method::Zoo(ZOO[8]),
        Method::Zoo(ZOO[9]),
        Method::Zoo(ZOO[10]),
        Method::Zoo(ZOO[11]),
        Method::Zoo(ZOO[12]),
        Method::Zoo(ZOO[13]),
        Method::Zoo(ZOO[14]),
        Method::OutlierExposure,
        Method::EnergyFinetune,
    ];

    /// Identifier in report.json, results.csv and run.json.
    pub fn key(self) -> &'static str {
        match self {
            Method::Msp => "msp",
            Method::Energy => "energy",
            Method::Odin => "odin",
            Method::Mahalanobis => "mahalanobis",
            Method::MahalanobisEnsemble => "mahalanobis_ensemble",
            Method::Zoo(d) => d.key(),
            Method::OutlierExposure => "oe",
            Method::EnergyFinetune => "energy_ft",
        }
    }

    /// Name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::Msp => "Softmax score",
            Method::Energy => "Energy score",
            Method::Odin => "ODIN",
            Method::Mahalanobis => "Mahalanobis",
            Method::MahalanobisEnsemble => "Mahalanobis layer ensemble (Lee et al. 2018)",
            Method::Zoo(d) => zoo_label(d),
            Method::OutlierExposure => "Outlier Exposure (softmax score)",
            Method::EnergyFinetune => "Energy fine-tuning (energy score)",
        }
    }

    pub fn group(self) -> Group {
        match self {
            Method::OutlierExposure | Method::EnergyFinetune => Group::FineTuned,
            _ => Group::PreTrained,
        }
    }

    /// Position in [`Method::ALL`] (a zoo method outside [`ZOO`] sorts after the zoo).
    fn rank(self) -> usize {
        Method::ALL
            .iter()
            .position(|&m| m == self)
            .unwrap_or(5 + ZOO.len())
    }
}

impl PartialOrd for Method {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Method {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| self.key().cmp(other.key()))
    }
}

/// Table label of a zoo method (the name its paper gives it).
fn zoo_label(d: Detector) -> &'static str {
    match d {
        Detector::Energy => "Energy score",
        Detector::Msp => "Softmax score",
        Detector::MaxLogit => "Max logit",
        Detector::React => "ReAct (energy)",
        Detector::AshP => "ASH-P (energy)",
        Detector::AshB => "ASH-B (energy)",
        Detector::AshS => "ASH-S (energy)",
        Detector::Scale => "SCALE (energy)",
        Detector::Dice => "DICE (energy)",
        Detector::Gen => "GEN",
        Detector::Entropy => "Entropy",
        Detector::Klm => "KL matching",
        Detector::Knn => "KNN",
        Detector::Vim => "ViM",
        Detector::MahalanobisFeatures => "Mahalanobis (features, no input preprocessing)",
        Detector::Rmds => "Relative Mahalanobis (RMDS)",
        Detector::She => "SHE",
        Detector::Gradnorm => "GradNorm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_in_table_order() {
        let keys: Vec<&str> = Method::ALL.iter().map(|m| m.key()).collect();
        let expected = "msp energy odin mahalanobis mahalanobis_ensemble react ash_p ash_b ash_s \
                        scale dice gen entropy klm knn vim mahalanobis_features rmds she gradnorm \
                        oe energy_ft";
        assert_eq!(keys.join(" "), expected);
        let mut sorted = Method::ALL;
        sorted.reverse();
        sorted.sort();
        assert_eq!(sorted, Method::ALL);
        assert_eq!(Method::OutlierExposure.group(), Group::FineTuned);
        assert_eq!(Method::Odin.group(), Group::PreTrained);
        assert_eq!(Method::Zoo(Detector::Knn).group(), Group::PreTrained);
        let labels: std::collections::HashSet<_> = Method::ALL.iter().map(|m| m.label()).collect();
        assert_eq!(labels.len(), Method::ALL.len());
    }
}
