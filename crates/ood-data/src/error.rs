//! Errors of the data layer. Each names the file (and, for format errors, the byte offset).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the expected format (bad magic, truncated, inconsistent header...).
    #[error("{path}: at byte {offset}: {message}")]
    Format { path: PathBuf, offset: u64, message: String },
    #[error("{0}")]
    Other(String),
}

impl From<ood_core::io::IoError> for Error {
    fn from(e: ood_core::io::IoError) -> Self {
        Error::Io { path: e.path, source: e.source }
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, offset: u64, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), offset, message: message.into() }
    }
}
