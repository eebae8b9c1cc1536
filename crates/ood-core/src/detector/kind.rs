//! The two kinds of `"format": "eood-detector"` file, and the one check both readers make.
//!
//! A *calibrated* detector (`eood calibrate`, [`crate::Detector`]) holds a threshold tau; a
//! *fitted* zoo detector (`eood fit`, [`crate::detectors::Fitted`]) holds a method's learned
//! parameters. Version 1 files of both kinds carried no field saying which they were (a fitted
//! file had a `detector` object, a calibrated one a `tau`); version 2 files name it in
//! `"kind": "calibrated" | "fitted"`. Readers accept both versions and, given the wrong kind,
//! say which kind the file is and which command it belongs to.

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// The `format` of both kinds of file.
pub const FORMAT: &str = "eood-detector";
/// The version written: 2 added `kind`. Version 1 is still read.
pub const FORMAT_VERSION: u32 = 2;

/// Which of the two detector files this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// A threshold detector of `eood calibrate`, applied by `eood detect --detector`.
    Calibrated,
    /// A fitted zoo detector of `eood fit`, applied by `eood score --fitted`.
    Fitted,
}

impl DetectorKind {
    fn describe(self) -> &'static str {
        match self {
            DetectorKind::Calibrated => {
                "a calibrated detector (of `eood calibrate`, for `eood detect --detector`)"
            }
            DetectorKind::Fitted => {
                "a fitted zoo detector (of `eood fit`, for `eood score --fitted`)"
            }
        }
    }

    fn noun(self) -> &'static str {
        match self {
            DetectorKind::Calibrated => "a calibrated detector",
            DetectorKind::Fitted => "a fitted zoo detector",
        }
    }
}

impl std::fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DetectorKind::Calibrated => "calibrated",
            DetectorKind::Fitted => "fitted",
        })
    }
}

/// A detector file that is of the other kind, or of a version this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum KindError {
    #[error("{}: this is {}, not {}", path.display(), found.describe(), wanted.noun())]
    WrongKind {
        path: PathBuf,
        found: DetectorKind,
        wanted: DetectorKind,
    },
    #[error("{}: eood-detector version {version} is not supported (this build reads 1 and {FORMAT_VERSION})", path.display())]
    Version { path: PathBuf, version: u32 },
    #[error("{}: eood-detector version {version} file without a \"kind\"", path.display())]
    NoKind { path: PathBuf, version: u32 },
}

/// The fields that tell the kind, every other one skipped unparsed.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u32>,
    kind: Option<DetectorKind>,
    detector: Option<IgnoredAny>,
    tau: Option<IgnoredAny>,
}

/// Checks that the JSON text of an `eood-detector` file is of a readable version and of the
/// `wanted` kind. Text that is no `eood-detector` JSON at all passes: the caller's own parse
/// reports it, with its own message.
pub fn check_kind(json: &[u8], path: &Path, wanted: DetectorKind) -> Result<(), KindError> {
    let Ok(h) = serde_json::from_slice::<Header>(json) else {
        return Ok(());
    };
    if h.format.as_deref() != Some(FORMAT) {
        return Ok(());
    }
    let version = h.version.unwrap_or(0);
    let found = match (version, h.kind) {
        (1, Some(k)) => Some(k),
        (1, None) if h.detector.is_some() => Some(DetectorKind::Fitted),
        (1, None) if h.tau.is_some() => Some(DetectorKind::Calibrated),
        (1, None) => None,
        (FORMAT_VERSION, Some(k)) => Some(k),
        (FORMAT_VERSION, None) => {
            return Err(KindError::NoKind {
                path: path.into(),
                version,
            })
        }
        _ => {
            return Err(KindError::Version {
                path: path.into(),
                version,
            })
        }
    };
    match found {
        Some(found) if found != wanted => Err(KindError::WrongKind {
            path: path.into(),
            found,
            wanted,
        }),
        _ => Ok(()),
    }
}

/// For serde: the kind of a version 1 calibrated file, which has no `kind` field.
pub(crate) fn calibrated() -> DetectorKind {
    DetectorKind::Calibrated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, wanted: DetectorKind) -> Result<(), String> {
        check_kind(json.as_bytes(), Path::new("d.json"), wanted).map_err(|e| e.to_string())
    }

    #[test]
    fn version_1_kinds_are_told_by_their_fields() {
        let fitted = r#"{"format": "eood-detector", "version": 1, "detector": {"method": "klm"}}"#;
        let calibrated = r#"{"format": "eood-detector", "version": 1, "tau": 0.5}"#;
        assert_eq!(check(fitted, DetectorKind::Fitted), Ok(()));
        assert_eq!(check(calibrated, DetectorKind::Calibrated), Ok(()));
        assert_eq!(
            check(fitted, DetectorKind::Calibrated).unwrap_err(),
            "d.json: this is a fitted zoo detector (of `eood fit`, for `eood score --fitted`), \
             not a calibrated detector"
        );
        assert_eq!(
            check(calibrated, DetectorKind::Fitted).unwrap_err(),
            "d.json: this is a calibrated detector (of `eood calibrate`, for `eood detect \
             --detector`), not a fitted zoo detector"
        );
        // neither field: left to the caller's parse
        let bare = r#"{"format": "eood-detector", "version": 1}"#;
        assert_eq!(check(bare, DetectorKind::Fitted), Ok(()));
    }

    #[test]
    fn version_2_names_its_kind_and_other_versions_are_refused() {
        let v2 = r#"{"format": "eood-detector", "version": 2, "kind": "fitted", "tau": 1}"#;
        assert_eq!(check(v2, DetectorKind::Fitted), Ok(()));
        assert!(check(v2, DetectorKind::Calibrated)
            .unwrap_err()
            .contains("this is a fitted zoo detector"));
        let e = check(
            r#"{"format": "eood-detector", "version": 2, "tau": 1}"#,
            DetectorKind::Calibrated,
        );
        assert_eq!(
            e.unwrap_err(),
            "d.json: eood-detector version 2 file without a \"kind\""
        );
        let e = check(
            r#"{"format": "eood-detector", "version": 7, "kind": "fitted"}"#,
            DetectorKind::Fitted,
        );
        assert_eq!(
            e.unwrap_err(),
            "d.json: eood-detector version 7 is not supported (this build reads 1 and 2)"
        );
        // not an eood-detector file: the caller reports it
        assert_eq!(check(r#"{"format": "x"}"#, DetectorKind::Fitted), Ok(()));
        assert_eq!(check("[1, 2", DetectorKind::Fitted), Ok(()));
    }

    /// Regression: both kinds were `{"format": "eood-detector", "version": 1}`, and a fitted
    /// file given as a calibrated one (or the other way round) failed with serde's "missing
    /// field" instead of saying what the file is.
    #[test]
    fn each_reader_names_the_other_kind() {
        use crate::detectors::{FitData, KnnParams, Params};
        use crate::Detector;
        let dir = tempfile::tempdir().unwrap();
        let cal = dir.path().join("cal.json");
        let d = Detector::calibrate(&[0.1, 0.7, 0.3, 0.9], 0.5, "energy", Some(1.0)).unwrap();
        d.save(&cal).unwrap();
        let text = std::fs::read_to_string(&cal).unwrap();
        assert!(text.contains("\"version\": 2") && text.contains("\"kind\": \"calibrated\""));
        let e = crate::detectors::Fitted::load(&cal)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("cal.json: this is a calibrated detector (of `eood calibrate`, for `eood detect --detector`), not a fitted zoo detector"), "{e}");

        let features = ndarray::array![[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let data = FitData {
            features: Some(features.view()),
            ..FitData::default()
        };
        let knn = Params::Knn(KnnParams {
            k: 1,
            normalize: true,
        })
        .fit(&data)
        .unwrap();
        let klm_like = Params::default_for(crate::detectors::Method::Energy)
            .fit(&data)
            .unwrap();
        for (model, name) in [(knn, "knn.fit"), (klm_like, "energy.json")] {
            let p = dir.path().join(name);
            model.save(&p).unwrap();
            let e = Detector::load(&p).unwrap_err().to_string();
            assert_eq!(e, format!("{}: this is a fitted zoo detector (of `eood fit`, for `eood score --fitted`), not a calibrated detector", p.display()));
        }
        let fitted = std::fs::read_to_string(dir.path().join("energy.json")).unwrap();
        assert!(
            fitted.starts_with(
                r#"{"format":"eood-detector","version":2,"kind":"fitted","detector":"#
            ),
            "{fitted}"
        );
        // version 1 files of both kinds still load
        let v1 = dir.path().join("v1.json");
        std::fs::write(
            &v1,
            fitted.replace(r#""version":2,"kind":"fitted","#, r#""version":1,"#),
        )
        .unwrap();
        assert_eq!(
            crate::detectors::Fitted::load(&v1).unwrap().method().key(),
            "energy"
        );
        std::fs::write(
            &v1,
            text.replace(
                "\"version\": 2,\n  \"kind\": \"calibrated\",",
                "\"version\": 1,",
            ),
        )
        .unwrap();
        assert!(!std::fs::read_to_string(&v1).unwrap().contains("kind"));
        assert_eq!(Detector::load(&v1).unwrap(), d);
    }
}
