//! A seeded, recorded subset of the images of a release tar (`eood data build places365`):
//! the code of record evaluates on a sample of Places365's test images (10,000 of 328,500); this
//! makes that sample from `test_256.tar` and writes, in `out_dir`, `images/<file name>` for each
//! chosen member and `manifest.json` (archive path, size and SHA-256, seed, the number of
//! candidates, the chosen members in order).
//!
//! Three streamed passes over the archive, nothing of it held in memory: its SHA-256, the list of
//! image members (names only; [`super::tar::TarStream`] refuses hostile members), then the
//! extraction of the chosen ones (each capped at [`MAX_IMAGE_BYTES`], written atomically). The
//! choice is `rand::seq::index::sample` from ChaCha8 seeded with `seed` over the candidates
//! sorted by name, so it depends on the seed and the archive's member names alone.

use std::collections::HashSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::image_file::is_image_name;
use super::tar::{MemberKind, TarStream};
use crate::{Error, Result};

/// Largest image member extracted (a Places365 256x256 JPEG is ~20-40 kB).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// Most image members listed.
pub const MAX_MEMBERS: usize = 10_000_000;

/// What [`build_image_subset`] wrote, as `manifest.json` records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubsetManifest {
    pub source: PathBuf,
    pub source_bytes: u64,
    pub source_sha256: String,
    pub seed: u64,
    /// Image members in the archive.
    pub candidates: usize,
    /// Chosen members (archive paths), in archive order; `images/<file name>` each.
    pub members: Vec<String>,
}

fn stream(archive: &Path) -> Result<(TarStream<BufReader<std::fs::File>>, u64)> {
    let (file, len) = ood_core::io::open_regular(archive)?;
    Ok((
        TarStream::new(BufReader::with_capacity(1 << 16, file), archive),
        len,
    ))
}

fn file_name(member: &str) -> &str {
    member.rsplit('/').next().unwrap_or(member)
}

/// Writes `images` images of `archive` chosen by `seed` into `out_dir` (which must not exist or
/// be empty) and returns the manifest (also written there).
pub fn build_image_subset(
    archive: &Path,
    out_dir: &Path,
    images: usize,
    seed: u64,
) -> Result<SubsetManifest> {
    if std::fs::read_dir(out_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Invalid {
            what: "--out-dir",
            reason: format!(
                "{} is not empty; remove it or choose another folder",
                out_dir.display()
            ),
        });
    }
    let (file, len) = ood_core::io::open_regular(archive)?;
    let sha256 = crate::download::sha256_reader(BufReader::with_capacity(1 << 16, file))
        .map_err(|e| Error::io(archive, e))?;
    // Pass 2: the image members.
    let (mut tar, _) = stream(archive)?;
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    while let Some(m) = tar.next_member()? {
        if m.kind != MemberKind::File || !is_image_name(&m.name) {
            continue;
        }
        if !seen.insert(file_name(&m.name).to_string()) {
            return Err(Error::format(
                archive,
                m.header_offset,
                format!("{}: a second member of this file name", m.name),
            ));
        }
        if names.len() == MAX_MEMBERS {
            return Err(Error::format(
                archive,
                m.header_offset,
                format!("over {MAX_MEMBERS} image members"),
            ));
        }
        names.push(m.name);
    }
    if images == 0 || images > names.len() {
        return Err(Error::Invalid {
            what: "--images",
            reason: format!("{images} asked, the archive holds {} images", names.len()),
        });
    }
    let candidates = names.len();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let chosen: HashSet<String> = rand::seq::index::sample(&mut rng, candidates, images)
        .into_iter()
        .map(|i| std::mem::take(&mut names[i]))
        .collect();
    // Pass 3: extract the chosen members.
    let dir = out_dir.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (mut tar, len_now) = stream(archive)?;
    if len_now != len {
        return Err(Error::format(
            archive,
            0,
            "the archive changed size while being read",
        ));
    }
    let mut members = Vec::with_capacity(images);
    while let Some(m) = tar.next_member()? {
        if m.kind != MemberKind::File || !chosen.contains(&m.name) {
            continue;
        }
        let data = tar.read_data(&m, MAX_IMAGE_BYTES)?;
        let path = dir.join(file_name(&m.name));
        ood_core::io::write_atomic::<Error>(&path, |f| {
            use std::io::Write;
            f.write_all(&data).map_err(|e| Error::io(&path, e))
        })?;
        members.push(m.name);
    }
    if members.len() != images {
        return Err(Error::format(
            archive,
            0,
            format!(
                "the archive changed while being read: {} of {images} chosen members found",
                members.len()
            ),
        ));
    }
    let manifest = SubsetManifest {
        source: archive.to_path_buf(),
        source_bytes: len,
        source_sha256: sha256,
        seed,
        candidates,
        members,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let mpath = out_dir.join("manifest.json");
    ood_core::io::write_atomic::<Error>(&mpath, |f| {
        use std::io::Write;
        f.write_all(&json).map_err(|e| Error::io(&mpath, e))
    })?;
    Ok(manifest)
}
