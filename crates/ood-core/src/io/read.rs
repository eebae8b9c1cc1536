//! Reading inputs: a whole regular file with its size checked first, and positioned reads for
//! random access. The one owner of both (ood-data's readers and ood-nn's checkpoints call them).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{guard, IoError};
use crate::limits::{check_alloc, LimitError};

/// Why [`read_regular`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not a regular file, or the read failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file is larger than may be read into memory.
    #[error("{}: {source}", path.display())]
    TooLarge {
        path: PathBuf,
        #[source]
        source: LimitError,
    },
    /// The file is larger than its format allows (`what`: a sidecar, a detector file).
    #[error("{}: {len} bytes, more than a {what}'s {max}-byte limit", path.display())]
    TooLong {
        path: PathBuf,
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{}: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
}

/// Reads a whole regular file (see [`guard::open_regular`]): its length is checked against
/// [`check_alloc`] first, and at most the length it had when opened is read.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    let (file, len) = guard::open_regular(path)?;
    check_alloc("input file", len as u128, 1).map_err(|source| ReadError::TooLarge {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut out)
        .map_err(|e| IoError::new(path, e))?;
    Ok(out)
}

/// Reads a small text file (a JSON sidecar, a detector file) of at most `max` bytes: a larger
/// one (or a hostile one) is refused from its length, never read whole.
pub fn read_text(path: &Path, what: &'static str, max: u64) -> Result<String, ReadError> {
    let (file, len) = guard::open_regular(path)?;
    if len > max {
        return Err(ReadError::TooLong {
            path: path.to_path_buf(),
            what,
            len,
            max,
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| IoError::new(path, e))?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotText {
        path: path.to_path_buf(),
    })
}

/// Fills `out` from byte `at` of `file` without moving a shared cursor (so threads can share
/// the file). A file that ends before `out` is full (it shrank since it was opened) gives
/// [`std::io::ErrorKind::UnexpectedEof`].
#[cfg(unix)]
pub fn read_exact_at(file: &File, at: u64, out: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, out, at)
}

/// Fills `out` from byte `at` of `file` (see the Unix version).
#[cfg(windows)]
pub fn read_exact_at(file: &File, mut at: u64, mut out: &mut [u8]) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !out.is_empty() {
        match file.seek_read(out, at)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => {
                out = &mut out[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

/// Test helper: `read`, a reader of regular files, refuses `/dev/zero` (before reading it) with
/// an error naming it.
#[cfg(test)]
pub(crate) fn assert_refuses_devices<T: std::fmt::Debug, E: std::fmt::Display>(
    read: impl FnOnce(&Path) -> std::result::Result<T, E>,
) {
    let e = read(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_regular_refuses_devices_and_reads_files() {
        assert_refuses_devices(read_regular);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(read_regular(&p).unwrap(), b"abc");
    }

    #[test]
    fn read_text_refuses_long_files_from_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, "{}").unwrap();
        assert_eq!(read_text(&p, "sidecar", 2).unwrap(), "{}");
        let e = read_text(&p, "sidecar", 1).unwrap_err().to_string();
        assert!(
            e.ends_with("m.json: 2 bytes, more than a sidecar's 1-byte limit"),
            "{e}"
        );
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        let e = read_text(&p, "sidecar", 2).unwrap_err().to_string();
        assert!(e.ends_with("m.json: not UTF-8 text"), "{e}");
    }

    #[test]
    fn read_exact_at_reports_a_short_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"abcdef").unwrap();
        let f = File::open(&p).unwrap();
        let mut buf = [0u8; 3];
        read_exact_at(&f, 2, &mut buf).unwrap();
        assert_eq!(&buf, b"cde");
        let e = read_exact_at(&f, 4, &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
