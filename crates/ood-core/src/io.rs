//! File I/O shared by every crate: atomic writes (write to a temporary file beside the
//! target, then rename), so that an interrupted or failed write never destroys what was there,
//! and NumPy `.npy` reading/writing (format versions 1-3, C order; see [`npy`]).
//!
//! Temporary files are named `.<name>.<pid>-<n>-<rand>.tmp` (the name part cut so the whole
//! stays a valid file name): unique per process and per call, so two runs writing the same
//! target never share one. Those left by a crashed process (whose pid is gone) are removed the
//! first time a process writes the same target (the folder is scanned once per target and
//! process, not on every write). Reading inputs: [`read`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Longest name part kept in a temporary file name: with the dot, pid, counter, random
/// characters and suffix it stays under the 255-byte limit of common file systems.
const TMP_NAME_BYTES: usize = 200;
const TMP_SUFFIX: &str = ".tmp";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written beside its target: [`AtomicFile::commit`] flushes, syncs and renames
/// it over the target, then syncs the directory; dropped uncommitted, it is removed. Errors
/// name the target, never the hidden temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    /// Start writing `path`. Refuses a target that is a device node, directory or FIFO (see
    /// [`guard::check_output`]); removes stale temporary files of dead processes for it.
    pub fn create(path: &Path) -> Result<Self, IoError> {
        guard::check_output(path, &[]).map_err(OutputError::into_io_error)?;
        let dir = parent_dir(path);
        let prefix = tmp_prefix(path);
        remove_stale_temps(&dir, &prefix);
        let tmp = dir.join(tmp_name(&prefix));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| IoError::new(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The target path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, for writers that only take a path (libtorch's safetensors writer):
    /// they write it by name, then [`AtomicFile::commit`] syncs and renames it as usual.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The buffered writer of the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<fs::File> {
        self.writer.as_mut().expect("AtomicFile used after commit")
    }

    /// Flush, fsync, rename over the target, fsync the directory.
    pub fn commit(mut self) -> Result<(), IoError> {
        let io = |e| IoError::new(&self.path, e);
        let writer = self.writer.take().expect("AtomicFile committed twice");
        let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        drop(file);
        if let Err(e) = fs::rename(&self.tmp, &self.path) {
            let _ = fs::remove_file(&self.tmp);
            return Err(io(e));
        }
        sync_dir(&parent_dir(&self.path));
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Make a rename durable. Best effort: some file systems refuse to fsync a directory, and by
/// now the new file is in place, so a failure here is not reported as a failed write.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.<name>.` with the name cut to [`TMP_NAME_BYTES`] bytes.
fn tmp_prefix(path: &Path) -> OsString {
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "out".into());
    let mut out = OsString::from(".");
    #[cfg(unix)]
    {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let b = name.as_bytes();
        out.push(OsString::from_vec(
            b[..b.len().min(TMP_NAME_BYTES)].to_vec(),
        ));
    }
    #[cfg(not(unix))]
    {
        let s = name.to_string_lossy();
        let mut end = s.len().min(TMP_NAME_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        out.push(&s[..end]);
    }
    out.push(".");
    out
}

/// `<prefix><pid>-<n>-<rand>.tmp`: the counter separates calls within a process, the pid
/// processes, and the time-derived characters guard against a reused pid.
fn tmp_name(prefix: &OsString) -> OsString {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(0);
    let mut r = nanos.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n;
    let rand: String = (0..6)
        .map(|_| {
            let c = b"abcdefghijklmnopqrstuvwxyz0123456789"[(r % 36) as usize];
            r /= 36;
            c as char
        })
        .collect();
    let mut out = prefix.clone();
    out.push(format!("{}-{n}-{rand}{TMP_SUFFIX}", std::process::id()));
    out
}

/// The target name and pid of a temporary file name `.<target>.<pid>-<n>-<rand>.tmp` (or the
/// older `.<target>.<pid>.tmp`), if `name` has that shape.
fn tmp_target_pid(name: &str) -> Option<(&str, u32)> {
    let middle = name.strip_prefix('.')?.strip_suffix(TMP_SUFFIX)?;
    let (target, tail) = middle.rsplit_once('.')?;
    let mut parts = tail.split('-');
    let pid = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, None, None) => Some((target, pid)),
        (Some(n), Some(r), None)
            if n.bytes().all(|c| c.is_ascii_digit())
                && r.bytes().all(|c| c.is_ascii_alphanumeric()) =>
        {
            Some((target, pid))
        }
        _ => None,
    }
}

/// Whether process `pid` is alive, where the OS can tell (Linux: `/proc/<pid>`).
fn pid_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self")
        .exists()
        .then(|| proc.join(pid.to_string()).exists())
}

/// `(directory, target)` pairs already cleaned by this process: a process that writes the same
/// file many times (a log, a sidecar per epoch) scans its directory once, not on every write.
static CLEANED: std::sync::OnceLock<std::sync::Mutex<HashSet<(PathBuf, OsString)>>> =
    std::sync::OnceLock::new();

/// Removes the temporary files in `dir` that processes no longer running left for targets
/// whose name `matches` (regular files only; never this process's own). Done once per
/// `(dir, key)` in a process.
fn clean_once(dir: &Path, key: &OsString, matches: impl Fn(&str) -> bool) {
    {
        let mut seen = CLEANED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !seen.insert((dir.to_path_buf(), key.clone())) {
            return;
        }
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((target, pid)) = name.to_str().and_then(tmp_target_pid) else {
            continue;
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if regular && matches(target) && pid != std::process::id() && pid_alive(pid) == Some(false)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Remove temporary files for this target (`prefix` is `.<name>.`) left by dead processes.
fn remove_stale_temps(dir: &Path, prefix: &OsString) {
    let Some(name) = prefix
        .to_str()
        .and_then(|p| p.strip_prefix('.')?.strip_suffix('.'))
    else {
        return;
    };
    clean_once(dir, prefix, |target| target == name);
}

/// Removes temporary files of dead processes for every target in `dir` named `<stem>.*` (a
/// family of files written together, such as a checkpoint's weights and sidecar); once per
/// `(dir, stem)` in a process.
pub fn remove_stale_temps_of(dir: &Path, stem: &str) {
    let dotted = format!("{stem}.");
    let key = OsString::from(format!("{stem}.*"));
    clean_once(dir, &key, |target| target.starts_with(&dotted));
}

/// Write `path` atomically: `fill` writes into a temporary file in the same directory, which is
/// flushed, synced and renamed over `path` only if `fill` succeeds. On error the temporary file
/// is removed and any existing `path` is left untouched. A target that is a device node,
/// directory or FIFO is refused before anything is written.
pub fn write_atomic<E>(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<fs::File>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<IoError>,
{
    let mut file = AtomicFile::create(path)?;
    fill(file.writer())?;
    file.writer().flush().map_err(|e| IoError::new(path, e))?;
    Ok(file.commit()?)
}

pub mod guard;
pub mod npy;
pub mod read;

pub use guard::{check_new_output, check_output, open_regular, same_file, OutputError};
pub use read::{read_exact_at, read_regular, read_text, ReadError};

#[cfg(test)]
mod tests;
