//! Images inside a zip archive (Omniglot's `images_background_small*.zip`, OpenArena's `.pk3`).
//!
//! Each image keeps its path inside the archive (`alphabet/character/0001_01.png`), so callers can
//! group images by folder. Entries are returned sorted by that path, so results do not depend on
//! the order in which the archive was written. Non-image entries (by extension) are skipped.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::Array3;
use rayon::prelude::*;

use super::bytes::MAX_DEFLATE_RATIO;
use super::image_file::{decode_image, is_image_name, ColorMode};
use crate::{Error, Result};

/// Largest accepted uncompressed entry.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;

/// One decoded image and its path inside the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipImage {
    /// Path inside the archive, `/`-separated.
    pub name: String,
    /// `H x W x C` pixels.
    pub image: Array3<u8>,
}

impl ZipImage {
    /// The folder part of [`ZipImage::name`] (`""` for a top-level file).
    pub fn folder(&self) -> &str {
        self.name.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }
}

fn open<R: Read + Seek>(reader: R, path: &Path) -> Result<zip::ZipArchive<R>> {
    zip::ZipArchive::new(reader)
        .map_err(|e| Error::format(path, 0, format!("not a readable zip archive: {e}")))
}

fn open_file(path: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    open(f, path)
}

fn sorted_image_names<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Vec<String> {
    let mut names: Vec<String> = archive
        .file_names()
        .filter(|n| !n.ends_with('/') && is_image_name(n))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// Paths of the image entries of an archive, sorted.
pub fn image_names(path: &Path) -> Result<Vec<String>> {
    Ok(sorted_image_names(&open_file(path)?))
}

/// Decodes every image entry, sorted by path.
pub fn read_zip_images(path: &Path, mode: ColorMode) -> Result<Vec<ZipImage>> {
    read_zip_images_where(path, mode, |_| true)
}

/// Decodes the image entries whose path satisfies `keep`, sorted by path. Entries are inflated
/// one at a time (each checked against its declared size and CRC) and decoded in parallel.
pub fn read_zip_images_where(
    path: &Path,
    mode: ColorMode,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<ZipImage>> {
    decode_archive(open_file(path)?, path, mode, keep)
}

/// [`read_zip_images`] on an archive held in memory (`name` is used in errors).
pub fn parse_zip_images(bytes: &[u8], name: &Path, mode: ColorMode) -> Result<Vec<ZipImage>> {
    decode_archive(open(std::io::Cursor::new(bytes), name)?, name, mode, |_| {
        true
    })
}

fn decode_archive<R: Read + Seek>(
    mut archive: zip::ZipArchive<R>,
    path: &Path,
    mode: ColorMode,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<ZipImage>> {
    let names: Vec<String> = sorted_image_names(&archive)
        .into_iter()
        .filter(|n| keep(n))
        .collect();
    let mut raw = Vec::with_capacity(names.len());
    for name in names {
        let bytes = read_entry(&mut archive, path, &name)?;
        raw.push((name, bytes));
    }
    raw.into_par_iter()
        .map(|(name, bytes)| {
            let entry_path = PathBuf::from(format!("{}!/{}", path.display(), name));
            let image = decode_image(&bytes, &entry_path, mode)?;
            Ok(ZipImage { name, image })
        })
        .collect()
}

/// The bytes of one entry, bounded by its declared size (checked before allocating).
fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    path: &Path,
    name: &str,
) -> Result<Vec<u8>> {
    let entry = archive
        .by_name(name)
        .map_err(|e| Error::format(path, 0, format!("zip entry {name}: {e}")))?;
    let offset = entry.header_start();
    let size = entry.size();
    let bound = entry
        .compressed_size()
        .saturating_mul(MAX_DEFLATE_RATIO as u64)
        .saturating_add(1024);
    if size > MAX_ENTRY_BYTES || size > bound {
        return Err(Error::format(
            path,
            offset,
            format!("zip entry {name} declares {size} bytes uncompressed (limit {MAX_ENTRY_BYTES}, ratio bound {bound})"),
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(path, offset, format!("zip entry {name}: {e}")))?;
    if bytes.len() as u64 != size {
        return Err(Error::format(
            path,
            offset,
            format!(
                "zip entry {name} declares {size} bytes but inflates to {}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}
