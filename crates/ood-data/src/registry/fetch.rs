//! Fetching a dataset into the cache: publisher downloads (verified, resumable) and Debian
//! packages (`apt-get download` + `dpkg-deb -x`).

use std::path::{Path, PathBuf};

use super::{Dataset, Place};
use crate::cache::Locations;
use crate::download;
use crate::{Error, Result};

/// Fetches `ds` into the cache unless it is already present somewhere: publisher files are
/// downloaded (verified, resumable); Debian sources are fetched with `apt-get download` and
/// unpacked with `dpkg-deb -x` into `<cache>/sources/deb/<package>`.
pub fn fetch(ds: &Dataset, loc: &Locations, progress: bool) -> Result<(PathBuf, Place)> {
    if let Some(found) = ds.locate(loc) {
        return Ok(found);
    }
    if ds.files.is_empty() {
        let deb = ds.debian.ok_or_else(|| Error::Invalid {
            what: "fetch",
            reason: format!("{}: nothing to fetch", ds.name),
        })?;
        fetch_debian(deb.package, loc)?;
        return ds.require(loc);
    }
    let dir = loc.cache.downloads(ds.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    for f in ds.files {
        let dest = dir.join(f.name);
        if dest.is_file() {
            continue;
        }
        let mut failures = Vec::new();
        for (k, url) in f.urls.iter().enumerate() {
            if k > 0 {
                // Mirrors may hold differently compressed copies: never resume one from another.
                let _ = std::fs::remove_file(download::part_path(&dest));
            }
            let req = download::Request {
                url,
                dest: &dest,
                digests: f.digests(),
                size: f.size,
                progress,
            };
            match download::download(&req) {
                Ok(_) => break,
                // A file that arrived but is wrong must not be retried from a mirror silently.
                Err(e @ Error::Checksum { .. }) => return Err(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if failures.len() == f.urls.len() {
            return Err(Error::AllSourcesFailed {
                file: f.name.to_string(),
                dataset: ds.name.to_string(),
                dir: dir.clone(),
                failures,
            });
        }
    }
    ds.require(loc)
}

/// `apt-get download PACKAGE` + `dpkg-deb -x` into `<cache>/sources/deb/PACKAGE` (the same layout
/// as `scripts/fetch-sources.sh`, which also runs `apt-get update` on a fresh machine).
pub fn fetch_debian(package: &str, loc: &Locations) -> Result<PathBuf> {
    use std::process::Command;
    let root = loc.cache.deb_root();
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let work = tempfile_dir(&root)?;
    let run = |cmd: &mut Command, what: &str| -> Result<()> {
        let out = cmd.output().map_err(|e| Error::Command {
            command: what.to_string(),
            message: format!("cannot run: {e}"),
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(Error::Command {
                command: what.to_string(),
                message: format!("failed: {}", err.trim()),
            });
        }
        Ok(())
    };
    let result = (|| {
        run(
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(&work),
            "apt-get download",
        )?;
        let deb = std::fs::read_dir(&work)
            .map_err(|e| Error::io(&work, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::Command {
                command: format!("apt-get download {package}"),
                message: "no .deb produced".into(),
            })?;
        let unpacked = work.join("root");
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
            "dpkg-deb -x",
        )?;
        let dest = loc.cache.deb_package(package);
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&unpacked, &dest).map_err(|e| Error::io(&dest, e))?;
        let sha = download::sha256_file(&deb)?;
        let version = Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let marker = root.join(format!("{package}.version"));
        // Same marker as scripts/fetch-sources.sh: written last, it means the unpack is complete.
        std::fs::write(&marker, format!("{version} {sha}\n")).map_err(|e| Error::io(&marker, e))?;
        Ok(dest)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn tempfile_dir(parent: &Path) -> Result<PathBuf> {
    let dir = parent.join(format!(".fetch.{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}
