//! Errors of the data layer. Each names the file (and, for format errors, the byte offset).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure with the file it concerns (the one type of it, ood-core's).
    #[error(transparent)]
    Io(#[from] ood_core::io::IoError),
    /// The file is not in the expected format (bad magic, truncated, inconsistent header...).
    #[error("{path}: at byte {offset}: {message}")]
    Format {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    /// A file's SHA-256 differs from every recorded digest (the file was not kept).
    #[error("{path}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// An HTTP request failed (`status` is set when the server answered with an error code).
    #[error("{url}: {message}")]
    Http {
        url: String,
        status: Option<u16>,
        message: String,
    },
    #[error("unknown dataset `{name}` (known: {known})")]
    UnknownDataset { name: String, known: String },
    /// A dataset or source is not present in any local place.
    #[error("{name} is missing (looked in {}); to get it: {how}", tried.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingSource {
        name: String,
        tried: Vec<(PathBuf, crate::registry::Place)>,
        how: String,
    },
    /// A folder holds no image file.
    #[error("{}: no image files (png, jpg, jpeg, bmp, tga, gif)", path.display())]
    NoImages { path: PathBuf },
    /// Images of one set differ in size (`first` sets the size).
    #[error("{}: image is {found:?} but {} is {expected:?}; choose a resizing preprocess", path.display(), first.display())]
    ImageSize {
        path: PathBuf,
        found: (usize, usize, usize),
        first: PathBuf,
        expected: (usize, usize, usize),
    },
    /// A parameter given by the caller is unusable; names the parameter.
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// Images of another shape than where they are used needs.
    #[error("{what}: expected {expected} images, found {found}")]
    Shape {
        what: String,
        expected: &'static str,
        found: String,
    },
    /// Encoding an output file (PNG, .npy, JSON) failed.
    #[error("{path}: writing {format}: {source}")]
    Encode {
        path: PathBuf,
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An external program (apt-get, dpkg-deb) could not run or failed.
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    /// Every URL of a file failed.
    #[error("{file}: every source failed ({}); copy the file into {} by hand and run `eood data verify {dataset}`", failures.join("; "), dir.display())]
    AllSourcesFailed {
        file: String,
        dataset: String,
        dir: PathBuf,
        failures: Vec<String>,
    },
    /// A build needs sources that are not present (one line each, with how to get it).
    #[error("cannot build {what}: {} missing source(s):\n  {}", lines.len(), lines.join("\n  "))]
    MissingSources { what: String, lines: Vec<String> },
    /// A size from the input or the caller is beyond what can be allocated.
    #[error(transparent)]
    Limit(#[from] ood_core::limits::LimitError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io(ood_core::io::IoError::new(path, source))
    }
    pub fn format(path: impl Into<PathBuf>, offset: u64, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            offset,
            message: message.into(),
        }
    }
}
