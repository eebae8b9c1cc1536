//! [`CheckpointLock`]: the exclusive right to write one checkpoint, held as an OS advisory lock
//! (`flock(LOCK_EX | LOCK_NB)`) on `<stem>.lock`.
//!
//! The kernel releases the lock when its holder exits, however it exits, so a crash never leaves
//! a lock behind and a reused pid never blocks a run (a pid-based lock did both). The pid written
//! into the file only names the holder in the error of a refused second writer.
//!
//! The holder removes the file when done. A waiter may have opened that file just before: after
//! taking the lock it checks that the path still names the file it locked, and starts over if not,
//! so two runs never hold locks on two different files of the same name.
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Exclusive right to write the checkpoint `<stem>.json`; released on drop (or by the kernel
/// when the process dies).
#[derive(Debug)]
pub struct CheckpointLock {
    path: PathBuf,
    /// Holds the OS lock for as long as it is open.
    _file: File,
}

impl CheckpointLock {
    /// Takes `<stem>.lock` beside `json`, or fails at once with [`Error::Locked`] naming the
    /// holder's pid (as far as it wrote it).
    pub fn acquire(json: &Path) -> Result<Self> {
        let (dir, stem) = super::stem_of(json)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{stem}.lock"));
        // A few rounds at most: each restart means another run removed the file meanwhile.
        for _ in 0..8 {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            if !os::try_lock(&file).map_err(|e| Error::io(&path, e))? {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(Error::Locked { path, pid });
            }
            if !os::same_file(&file, &path) {
                continue; // the previous holder removed it between our open and lock
            }
            write_pid(&file).map_err(|e| Error::io(&path, e))?;
            return Ok(Self { path, _file: file });
        }
        Err(Error::Locked { path, pid: None })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn write_pid(mut file: &File) -> std::io::Result<()> {
    use std::io::Write;
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())
}

impl Drop for CheckpointLock {
    fn drop(&mut self) {
        // Removed while still locked (the file closes after this), see the module docs.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
mod os {
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    /// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
    pub fn try_lock(file: &File) -> std::io::Result<bool> {
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is passed.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EWOULDBLOCK) => return Ok(false),
                _ => return Err(e),
            }
        }
    }

    /// Whether `path` still names the open `file` (same device and inode).
    pub fn same_file(file: &File, path: &Path) -> bool {
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
}

#[cfg(not(unix))]
mod os {
    use std::fs::File;
    use std::path::Path;

    /// Without `flock` (MSRV 1.85 predates `File::try_lock`) every writer is let through.
    pub fn try_lock(_file: &File) -> std::io::Result<bool> {
        Ok(true)
    }

    pub fn same_file(_file: &File, _path: &Path) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_and_the_lock_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let lock = CheckpointLock::acquire(&json).unwrap();
        let e = CheckpointLock::acquire(&json).unwrap_err().to_string();
        let me = std::process::id();
        assert!(
            e.contains(&format!("m.lock: locked by process {me}")),
            "{e}"
        );
        drop(lock);
        assert!(!dir.path().join("m.lock").exists());
        // A lock file left behind (a crash) holds no OS lock: it does not block, whatever pid
        // it names (with the pid-based lock, a live or reused pid blocked forever).
        std::fs::write(dir.path().join("m.lock"), "1\n").unwrap();
        let lock = CheckpointLock::acquire(&json).unwrap();
        let pid = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(pid.trim(), me.to_string());
    }
}
