//! Guards every reader and writer goes through: inputs must be regular files (a device node or a
//! FIFO is never read whole), and an output must never replace a device node, a directory or one
//! of the command's own inputs. One place, so that every command refuses the same things with the
//! same words.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

#[cfg(unix)]
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::IoError;

/// Why an output path was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: refusing to write over a {kind}, not a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{out}: refusing to overwrite an input of this command ({input})")]
    SameAsInput { out: PathBuf, input: PathBuf },
    #[error("{path}: already exists (pass --force to replace it)")]
    Exists { path: PathBuf },
    #[error(transparent)]
    Io(#[from] IoError),
}

impl OutputError {
    /// As an [`IoError`] on the refused path (for writers whose error type only knows I/O
    /// errors, such as [`write_atomic`](super::write_atomic)'s callers); same words.
    pub fn into_io_error(self) -> IoError {
        match self {
            OutputError::Io(e) => e,
            OutputError::NotRegular { path, kind } => IoError::new(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refusing to write over a {kind}, not a regular file"),
                ),
            ),
            OutputError::SameAsInput { out, input } => IoError::new(
                out,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "refusing to overwrite an input of this command ({})",
                        input.display()
                    ),
                ),
            ),
            OutputError::Exists { path } => IoError::new(
                path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "already exists (pass --force to replace it)",
                ),
            ),
        }
    }
}

/// A human name for a file type that is not a regular file.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "directory";
    }
    #[cfg(unix)]
    {
        if ft.is_char_device() {
            return "character device";
        }
        if ft.is_block_device() {
            return "block device";
        }
        if ft.is_fifo() {
            return "FIFO";
        }
        if ft.is_socket() {
            return "socket";
        }
    }
    if ft.is_symlink() {
        return "symbolic link";
    }
    "special file"
}

/// Open `path` for reading if it is a regular file (symbolic links are followed); refuse
/// directories, device nodes (`/dev/zero`), FIFOs and sockets before a single byte is read.
/// Returns the file and its length, which readers check declared sizes against.
pub fn open_regular(path: &Path) -> Result<(File, u64), IoError> {
    // Look before opening: opening a FIFO for reading blocks until a writer comes.
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(not_regular(path, &meta));
        }
    }
    // And open without blocking, in case the path was swapped for a FIFO in between
    // (O_NONBLOCK changes nothing for a regular file).
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(flag) = O_NONBLOCK {
            options.custom_flags(flag);
        }
    }
    let file = options.open(path).map_err(|e| IoError::new(path, e))?;
    // fstat on the opened file, not stat on the path: no window for a swap in between.
    let meta = file.metadata().map_err(|e| IoError::new(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok((file, meta.len()))
}

/// `O_NONBLOCK` where its value is known without a libc binding.
#[cfg(unix)]
const O_NONBLOCK: Option<i32> = if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd"
)) {
    Some(0x0004)
} else if cfg!(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64"
    )
)) {
    Some(0o4000)
} else {
    None
};

fn not_regular(path: &Path, meta: &fs::Metadata) -> IoError {
    IoError::new(
        path,
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (a {})", kind_of(meta)),
        ),
    )
}

/// Check that writing `out` (atomically: temp file + rename) destroys nothing it should not:
/// `out` must not be an existing non-regular file (a device node such as `/dev/null`, a
/// directory, a FIFO) and must not be the same file as any of `inputs` (same path after
/// resolving links, or the same inode through a hard link).
pub fn check_output(out: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    if let Ok(meta) = fs::metadata(out) {
        if !meta.is_file() {
            return Err(OutputError::NotRegular {
                path: out.to_path_buf(),
                kind: kind_of(&meta),
            });
        }
    }
    for input in inputs {
        if same_file(out, input) {
            return Err(OutputError::SameAsInput {
                out: out.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Like [`check_output`], and also refuse an existing `out` unless `force` is set (for outputs
/// such as checkpoints whose loss cannot be undone).
pub fn check_new_output(out: &Path, inputs: &[&Path], force: bool) -> Result<(), OutputError> {
    check_output(out, inputs)?;
    if !force && fs::symlink_metadata(out).is_ok() {
        return Err(OutputError::Exists {
            path: out.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether `a` and `b` name the same file: the same inode when both exist, else the same
/// absolute path once the parent directory is resolved.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        return ma.dev() == mb.dev() && ma.ino() == mb.ino();
    }
    match (resolved(a), resolved(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `path` with its parent directory canonicalized (the file itself may not exist yet).
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = fs::canonicalize(path) {
        return Some(p);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_device_nodes_and_directories_as_inputs() {
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(
            e.to_string()
                .contains("not a regular file (a character device)"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path()).unwrap_err();
        assert!(e.to_string().contains("(a directory)"), "{e}");
        let f = dir.path().join("a.npy");
        fs::write(&f, b"abc").unwrap();
        assert_eq!(open_regular(&f).unwrap().1, 3);
    }

    #[test]
    fn refuses_outputs_over_devices_and_inputs() {
        let e = check_output(Path::new("/dev/null"), &[]).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.npy");
        fs::write(&input, b"x").unwrap();
        // The same file by another spelling, and through a hard link.
        let other = dir.path().join(".").join("in.npy");
        assert!(matches!(
            check_output(&other, &[&input]),
            Err(OutputError::SameAsInput { .. })
        ));
        let link = dir.path().join("hard.npy");
        fs::hard_link(&input, &link).unwrap();
        assert!(check_output(&link, &[&input]).is_err());
        let fresh = dir.path().join("out.npy");
        check_output(&fresh, &[&input]).unwrap();
        assert!(matches!(
            check_new_output(&input, &[], false),
            Err(OutputError::Exists { .. })
        ));
        check_new_output(&input, &[], true).unwrap();
    }
}
