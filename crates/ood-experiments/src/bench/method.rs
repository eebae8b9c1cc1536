//! The methods of Tables 1 and 2, as an enum: results are keyed by [`Method`], never by position.
use serde::{Deserialize, Serialize};

use crate::report::Group;

/// A row of Table 2, in table order (the `Ord` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Msp,
    Energy,
    Odin,
    Mahalanobis,
    OutlierExposure,
    EnergyFinetune,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Msp,
        Method::Energy,
        Method::Odin,
        Method::Mahalanobis,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_in_table_order() {
        let keys: Vec<&str> = Method::ALL.iter().map(|m| m.key()).collect();
        assert_eq!(
            keys,
            ["msp", "energy", "odin", "mahalanobis", "oe", "energy_ft"]
        );
        let mut sorted = Method::ALL;
        sorted.sort();
        assert_eq!(sorted, Method::ALL);
        assert_eq!(Method::OutlierExposure.group(), Group::FineTuned);
        assert_eq!(Method::Odin.group(), Group::PreTrained);
    }
}
