//! Errors of bundle reading, writing and inference. Each names the file or the shape it concerns.

use std::path::PathBuf;

/// The source of an inference-engine failure (tract reports `anyhow` errors).
pub type EngineError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Io(#[from] ood_core::io::IoError),
    #[error(transparent)]
    Output(#[from] ood_core::io::guard::OutputError),
    #[error(transparent)]
    Limit(#[from] ood_core::limits::LimitError),
    #[error("{}: {size} bytes is over the {cap}-byte limit for {what}", path.display())]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        size: u64,
        cap: u64,
    },
    #[error("{}: not a valid bundle manifest", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {what}", path.display())]
    Manifest { path: PathBuf, what: String },
    #[error("{field}: file name {name:?} is not a plain file name inside the bundle folder")]
    UnsafeName { field: &'static str, name: String },
    #[error("{}: SHA-256 is {actual}, the manifest says {expected}", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: the ONNX model could not be loaded", path.display())]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: EngineError,
    },
    #[error("{}: a {kind} model needs libtorch, which this build of eood lacks: build it with the `nn` feature (the default features)", path.display())]
    NeedsLibtorch {
        path: PathBuf,
        kind: crate::manifest::ModelKind,
    },
    #[error("{}: the {kind} model could not be loaded", path.display())]
    Backend {
        path: PathBuf,
        kind: crate::manifest::ModelKind,
        #[source]
        source: EngineError,
    },
    #[error("{}: the model has no output named {name:?}", path.display())]
    MissingOutput { path: PathBuf, name: String },
    #[error("inference failed on a batch of shape {shape:?}")]
    Inference {
        shape: Vec<usize>,
        #[source]
        source: EngineError,
    },
    #[error("model output {name:?} has shape {shape:?}, expected {expected}")]
    OutputShape {
        name: &'static str,
        shape: Vec<usize>,
        expected: String,
    },
    #[error("input {index}: {what}")]
    BadInput { index: usize, what: String },
    #[error("the model has {model} classes but the bundle names {labels}")]
    ClassCount { model: usize, labels: usize },
    #[error(transparent)]
    Detector(#[from] ood_core::detector::DetectorError),
    #[error(transparent)]
    Fitted(#[from] ood_core::detectors::DetectorError),
    #[error(transparent)]
    Score(#[from] ood_core::scores::ScoreError),
    #[error(transparent)]
    Data(#[from] ood_data::Error),
}

pub type Result<T, E = BundleError> = std::result::Result<T, E>;
