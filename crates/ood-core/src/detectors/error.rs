//! Errors of fitting, scoring, saving and loading detectors: one enum for every method, each
//! variant carrying the shapes, indices or path involved.

use std::path::PathBuf;

use crate::io::{IoError, OutputError};
use crate::limits::LimitError;
use crate::scores::MahalanobisError;

/// Refusal of a detector operation. Printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    #[error("{what} have {found} columns but {against} has {expected}")]
    Dimension {
        what: &'static str,
        found: usize,
        against: &'static str,
        expected: usize,
    },
    #[error("the head has {head} classes (rows of W) but the logits have {logits} columns")]
    Classes { head: usize, logits: usize },
    #[error("{what} have {found} rows but {against} has {expected}")]
    Rows {
        what: &'static str,
        found: usize,
        against: &'static str,
        expected: usize,
    },
    #[error("{what} at row {row}, column {col} is {value} (need finite values)")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
        value: f64,
    },
    #[error("k = {k} is larger than the {n} training features")]
    KTooLarge { k: usize, n: usize },
    #[error("{name} must be {range}, got {value}")]
    Param {
        name: &'static str,
        value: f64,
        range: &'static str,
    },
    #[error("{method} needs {what}")]
    Missing {
        method: &'static str,
        what: &'static str,
    },
    #[error("{what}: {len} values do not fill {rows} x {cols}")]
    Shape {
        what: &'static str,
        rows: usize,
        cols: usize,
        len: usize,
    },
    #[error("{what} is empty (need at least one row and one column)")]
    Empty { what: &'static str },
    #[error("{method}: percentile {percentile} keeps no activation of {dims}")]
    NothingKept {
        method: &'static str,
        percentile: f64,
        dims: usize,
    },
    #[error("{method}: no training sample is {why} for class {class}")]
    EmptyClass {
        method: &'static str,
        class: i64,
        why: &'static str,
    },
    #[error("{method}: score of row {row} is not finite (feature scaling overflowed)")]
    Overflow { method: &'static str, row: usize },
    #[error("{method}: {what}")]
    Degenerate {
        method: &'static str,
        what: &'static str,
    },
    #[error("unknown detector method {0:?}")]
    UnknownMethod(Box<str>),
    #[error(transparent)]
    Mahalanobis(#[from] MahalanobisError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: not a detector file")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a detector safetensors file")]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("{path}: detector file is inconsistent ({what})")]
    Corrupt { path: PathBuf, what: &'static str },
    /// A calibrated detector file (or one of an unreadable version) given as a fitted one.
    #[error(transparent)]
    Kind(#[from] crate::detector::KindError),
}
