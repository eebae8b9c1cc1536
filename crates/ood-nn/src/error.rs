//! Errors of the neural layer: each carries the path, key, shape or offset it is about.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure with the file it concerns (the one type of it, ood-core's).
    #[error(transparent)]
    Io(#[from] ood_core::io::IoError),
    #[error("{path}: not a readable PyTorch checkpoint: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("{path}: pickle error at byte {offset}: {source}")]
    Pickle {
        path: PathBuf,
        offset: u64,
        #[source]
        source: ood_data::formats::pickle::PickleErrorKind,
    },
    #[error("{path}: zip archive: {source}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("state dict does not match the model: {0}")]
    StateDictMismatch(StateDictMismatch),
    #[error("{context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
    #[error("{path}: {reason}")]
    Sidecar { path: PathBuf, reason: String },
    /// A sidecar that is not the JSON of a checkpoint (or could not be written as JSON).
    #[error("{}: {source}", path.display())]
    SidecarJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A TorchScript forward that returns logits only, and no `features(x)` method.
    #[error("{}: the TorchScript module gives no penultimate features: its forward must return (logits, features) or it must define a `features(x)` method ({torch})", path.display())]
    TorchScriptNoFeatures { path: PathBuf, torch: String },
    #[error("{}: forward returned {returned}; expected logits (N x K) or (logits, features)", path.display())]
    TorchScriptOutput {
        path: PathBuf,
        returned: &'static str,
    },
    #[error("{}: forward returned shape {shape:?}; expected logits N x K", path.display())]
    LogitsShape { path: PathBuf, shape: Vec<i64> },
    #[error("{} has {labels} labels but {} has {images} images", labels_path.display(), images_path.display())]
    LabelCount {
        labels_path: PathBuf,
        labels: usize,
        images_path: PathBuf,
        images: usize,
    },
    #[error("{}: negative label {label}", path.display())]
    NegativeLabelIn { path: PathBuf, label: i64 },
    #[error("{}: no images", path.display())]
    NoImages { path: PathBuf },
    /// A resumed optimizer buffer of another shape than its variable.
    #[error("optimizer state {key} has shape {found:?}, the variable {expected:?}")]
    OptimizerShape {
        key: String,
        found: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error("optimizer state lacks {}", keys.join(", "))]
    OptimizerMissing { keys: Vec<String> },
    /// Serializing a record (configuration, log line) failed.
    #[error("{what}: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: the TorchScript module gives no layer features for the Mahalanobis ensemble: it must define a `feature_list(x)` method returning a list of N x C x H x W (or N x C) tensors", path.display())]
    NoLayerFeatures { path: PathBuf },
    #[error("fine-tuning needs an outlier data set")]
    NoOutliers,
    #[error("{what} data has no labels")]
    NoLabels { what: &'static str },
    #[error("{what} data yields no batch")]
    EmptyData { what: &'static str },
    #[error("batch has an unlabelled or negative label {label}")]
    NegativeLabel { label: i64 },
    #[error("loss became {loss} at epoch {epoch} step {step}")]
    NonFiniteLoss { loss: f64, epoch: u64, step: u64 },
    #[error("architecture: {0}")]
    Arch(#[from] crate::wrn::ArchError),
    #[error("{}: architecture: {source}", path.display())]
    SidecarArch {
        path: PathBuf,
        // boxed: keeps every `Result<_, Error>` small
        #[source]
        source: Box<crate::wrn::ArchError>,
    },
    /// Another open file holds the checkpoint's OS lock (`pid` as its holder wrote it).
    #[error("{}: locked by {} (another run is writing this checkpoint)", path.display(), match pid { Some(p) => format!("process {p}"), None => "another process".into() })]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("{}: --resume with a different configuration ({fields}); pass --force to continue anyway (the change is recorded in the log)", path.display())]
    ResumeMismatch { path: PathBuf, fields: String },
    #[error(transparent)]
    Data(#[from] ood_data::Error),
    #[error(transparent)]
    Npy(#[from] ood_core::io::npy::NpyError),
    #[error(transparent)]
    Read(#[from] ood_core::io::ReadError),
    #[error("validation")]
    Selection(#[from] ood_core::selection::SelectionError),
}

/// How a state dict differs from a model's variables: names and shapes, so the user can tell a
/// wrong architecture (depth, width, classes) from a wrapped or renamed checkpoint.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StateDictMismatch {
    /// In the model but not in the file: (key, model shape).
    pub missing: Vec<(String, Vec<i64>)>,
    /// In the file but not in the model: (key, file shape).
    pub unexpected: Vec<(String, Vec<i64>)>,
    /// In both with different shapes: (key, model shape, file shape).
    pub shape: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl StateDictMismatch {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shape.is_empty()
    }
}

impl std::fmt::Display for StateDictMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line, but complete enough to act on; long lists are cut after a few entries.
        const SHOW: usize = 6;
        let mut parts = Vec::new();
        let list = |items: Vec<String>| {
            let n = items.len();
            let mut s = items.into_iter().take(SHOW).collect::<Vec<_>>().join(", ");
            if n > SHOW {
                s.push_str(&format!(", ... ({} more)", n - SHOW));
            }
            s
        };
        if !self.missing.is_empty() {
            let items = self
                .missing
                .iter()
                .map(|(k, s)| format!("{k} {s:?}"))
                .collect();
            parts.push(format!("{} missing: {}", self.missing.len(), list(items)));
        }
        if !self.unexpected.is_empty() {
            let items = self
                .unexpected
                .iter()
                .map(|(k, s)| format!("{k} {s:?}"))
                .collect();
            parts.push(format!(
                "{} unexpected: {}",
                self.unexpected.len(),
                list(items)
            ));
        }
        if !self.shape.is_empty() {
            let items = self
                .shape
                .iter()
                .map(|(k, m, c)| format!("{k} model {m:?} vs file {c:?}"))
                .collect();
            parts.push(format!(
                "{} shape mismatches: {}",
                self.shape.len(),
                list(items)
            ));
        }
        write!(f, "{}", parts.join("; "))
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(ood_core::io::IoError::new(path, source))
    }
    pub(crate) fn torch(context: impl Into<String>, source: tch::TchError) -> Self {
        Error::Torch {
            context: context.into(),
            source,
        }
    }
}
