//! File I/O shared by every crate: atomic writes (write to a temporary file beside the
//! target, then rename), so that an interrupted or failed write never destroys what was there,
//! and NumPy `.npy` reading/writing (format versions 1-3, C order; see [`npy`]).

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// An I/O failure with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }
}

/// Write `path` atomically: `fill` writes into a temporary file in the same directory, which is
/// flushed, synced and renamed over `path` only if `fill` succeeds. On error the temporary file
/// is removed and any existing `path` is left untouched.
pub fn write_atomic<E>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<IoError>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_string());
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let io = |e| IoError::new(path, e);
    let file = fs::File::create(&tmp).map_err(|e| E::from(IoError::new(&tmp, e)))?;
    let mut writer = BufWriter::new(file);
    let result = fill(&mut writer).and_then(|()| {
        writer.flush().map_err(|e| E::from(io(e)))?;
        writer.get_ref().sync_all().map_err(|e| E::from(io(e)))?;
        fs::rename(&tmp, path).map_err(|e| E::from(io(e)))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub mod guard;
pub mod npy;

pub use guard::{check_new_output, check_output, open_regular, same_file, OutputError};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_keeps_old_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        fs::write(&path, "old").unwrap();
        let r: Result<(), IoError> = write_atomic(&path, |w| {
            w.write_all(b"partial").unwrap();
            Err(IoError::new("x", std::io::Error::other("boom")))
        });
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic::<IoError>(&path, |w| {
            w.write_all(b"new").map_err(|e| IoError::new("w", e))
        })
        .unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    }
}
