//! A results folder: every file is written to a temporary name and renamed into place, so an
//! interrupted run never leaves a half-written table next to complete ones.
use std::path::{Path, PathBuf};

use ood_core::io::{write_atomic, IoError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes files into one folder (created on first use).
#[derive(Debug, Clone)]
pub struct ResultsDir {
    pub root: PathBuf,
}

impl ResultsDir {
    pub fn create(root: &Path) -> Result<Self, ResultsError> {
        std::fs::create_dir_all(root).map_err(|e| IoError::new(root, e))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Writes `text` to `<root>/<name>` atomically; returns the path.
    pub fn text(&self, name: &str, text: &str) -> Result<PathBuf, ResultsError> {
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| IoError::new(dir, e))?;
        }
        write_atomic::<ResultsError>(&path, |w| {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .map_err(|e| IoError::new(&path, e).into())
        })?;
        Ok(path)
    }

    /// Pretty JSON of `value`, with a final newline.
    pub fn json<T: Serialize>(&self, name: &str, value: &T) -> Result<PathBuf, ResultsError> {
        let mut s = serde_json::to_string_pretty(value).map_err(|source| ResultsError::Json {
            path: self.path(name),
            source,
        })?;
        s.push('\n');
        self.text(name, &s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_text_and_json_into_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let r = ResultsDir::create(&dir.path().join("run")).unwrap();
        let p = r.text("a/table.md", "| x |\n").unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "| x |\n");
        let p = r
            .json("config.json", &serde_json::json!({"seed": 3}))
            .unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), "{\n  \"seed\": 3\n}\n");
    }
}
