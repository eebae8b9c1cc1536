//! Verified, resumable downloads.
//!
//! A download streams into `<dest>.part`. An interrupted transfer keeps the `.part` file and the
//! next attempt asks the server for the rest (HTTP `Range: bytes=N-`; a server that answers
//! `200` instead of `206` restarts it from zero). When the transfer is complete the file is
//! checked against its SHA-256 digests *before* it is renamed into place, so `dest` only ever
//! holds a verified file; a checksum mismatch deletes the `.part` file and keeps nothing.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The digests a file may be checked against. Empty = nothing recorded (the file is accepted
/// unchecked and its digest is reported).
#[derive(Debug, Clone, Copy, Default)]
pub struct Digests<'a> {
    /// Accepted SHA-256 digests (lower-case hex) of the whole file.
    pub sha256: &'a [&'a str],
    /// SHA-256 of the gzip-decompressed bytes.
    pub gunzip_sha256: Option<&'a str>,
}

impl Digests<'_> {
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.gunzip_sha256.is_none()
    }
}

/// One file to download.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub url: &'a str,
    pub dest: &'a Path,
    pub digests: Digests<'a>,
    /// Expected size in bytes (progress bar length), when known.
    pub size: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Transfers tried per call before giving up (each resumes where the last one stopped).
pub const ATTEMPTS: usize = 3;

/// Downloads `req.url` to `req.dest` (see the module documentation). Returns how the file was
/// verified.
pub fn download(req: &Request) -> Result<Outcome> {
    let part = part_path(req.dest);
    if let Some(dir) = req.dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        match transfer(req, &part) {
            Ok(()) => {
                last_err = None;
                break;
            }
            // An HTTP status error will not change on retry.
            Err(
                e @ Error::Http {
                    status: Some(_), ..
                },
            ) => return Err(e),
            Err(e) => last_err = Some(e),
        }
    }
    if let Some(e) = last_err {
        return Err(e);
    }
    match verify_file(&part, &req.digests) {
        Ok(outcome) => {
            fs::rename(&part, req.dest).map_err(|e| Error::io(req.dest, e))?;
            Ok(outcome)
        }
        Err(e) => {
            let _ = fs::remove_file(&part);
            Err(e)
        }
    }
}

/// `<dest>.part`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// One HTTP request that continues `part` from its current length.
fn transfer(req: &Request, part: &Path) -> Result<()> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let http = |status: Option<u16>, message: String| Error::Http {
        url: req.url.to_string(),
        status,
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut call = agent.get(req.url).header("Accept-Encoding", "identity");
    if have > 0 {
        call = call.header("Range", format!("bytes={have}-"));
    }
    let response = call.call().map_err(|e| http(None, e.to_string()))?;
    let status = response.status().as_u16();
    let (start, append) = match status {
        206 => (have, true),
        200 => (0, false),
        // Range past the end: the part file is already whole (or longer); let verification decide.
        416 if have > 0 => return Ok(()),
        s => return Err(http(Some(s), format!("server answered HTTP {s}"))),
    };
    let content_length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let total = content_length.map(|n| n + start).or(req.size);
    let mut file = if append {
        OpenOptions::new()
            .append(true)
            .open(part)
            .map_err(|e| Error::io(part, e))?
    } else {
        File::create(part).map_err(|e| Error::io(part, e))?
    };
    let bar = progress_bar(req, total, start);
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(|e| Error::io(part, e))?;
                return Err(http(
                    None,
                    format!("transfer interrupted after {} bytes: {e}", start + received),
                ));
            }
        };
        file.write_all(&buf[..n]).map_err(|e| Error::io(part, e))?;
        received += n as u64;
        if let Some(b) = &bar {
            b.inc(n as u64);
        }
    }
    file.sync_all().map_err(|e| Error::io(part, e))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(expected) = content_length {
        if received < expected {
            return Err(http(
                None,
                format!(
                    "transfer truncated: {} of {} bytes",
                    start + received,
                    start + expected
                ),
            ));
        }
    }
    Ok(())
}

fn progress_bar(req: &Request, total: Option<u64>, start: u64) -> Option<indicatif::ProgressBar> {
    if !req.progress {
        return None;
    }
    let name = req
        .dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bar = match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(name);
    bar.set_position(start);
    Some(bar)
}

/// SHA-256 of a file's bytes, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    sha256_reader(BufReader::with_capacity(1 << 16, file)).map_err(|e| Error::io(path, e))
}

/// SHA-256 of the gzip-decompressed bytes of a file.
pub fn sha256_gunzip(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 16, file));
    sha256_reader(gz).map_err(|e| Error::format(path, 0, format!("gzip: {e}")))
}

/// Hex SHA-256 of everything `r` yields, streamed: the one sha256 helper of the workspace.
pub fn sha256_reader(mut r: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks `path` against `digests`: a recorded whole-file digest, else the decompressed-content
/// digest. A mismatch is [`Error::Checksum`].
pub fn verify_file(path: &Path, digests: &Digests) -> Result<Outcome> {
    let actual = sha256_file(path)?;
    if digests.is_empty() {
        return Ok(Outcome::Unchecked(actual));
    }
    if digests
        .sha256
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&actual))
    {
        return Ok(Outcome::FileDigest(actual));
    }
    if let Some(expected) = digests.gunzip_sha256 {
        // Not gzip at all, or a different payload: both are a checksum failure.
        let content = sha256_gunzip(path).unwrap_or_else(|_| "(not gzip)".to_string());
        if content.eq_ignore_ascii_case(expected) {
            return Ok(Outcome::ContentDigest(content));
        }
        return Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: format!("decompressed sha256 {expected}"),
            actual: format!("{content} (file sha256 {actual})"),
        });
    }
    Err(Error::Checksum {
        path: path.to_path_buf(),
        expected: digests.sha256.join(" or "),
        actual,
    })
}

/// How a file was found to be good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its SHA-256 is a recorded digest.
    FileDigest(String),
    /// The SHA-256 of its decompressed bytes is the recorded content digest.
    ContentDigest(String),
    /// No digest is recorded for it: here is its SHA-256, unchecked.
    Unchecked(String),
    /// A file of a Debian source (present; apt verified the package).
    Present,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::FileDigest(d) => write!(f, "ok (sha256 {d})"),
            Outcome::ContentDigest(d) => write!(f, "ok (decompressed sha256 {d})"),
            Outcome::Unchecked(d) => write!(f, "UNCHECKED, no recorded digest (sha256 {d})"),
            Outcome::Present => f.write_str("present"),
        }
    }
}
