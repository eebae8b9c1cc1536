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

/// Largest accepted uncompressed image entry.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Most bytes inflated from one image archive, all entries together.
pub const MAX_ARCHIVE_BYTES: u64 = 4 << 30;

/// Most bytes reserved before an entry has inflated them.
const INITIAL_CAPACITY: u64 = 16 << 20;

/// Caps on inflating the entries of one zip archive: each entry's declared size is checked
/// against `max_entry`, DEFLATE's maximal ratio and what is left of `max_total` (and the memory
/// available) before anything is allocated; an entry inflating past its declared size is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZipLimits {
    pub max_entry: u64,
    pub max_total: u64,
}

impl Default for ZipLimits {
    /// The caps for image archives ([`MAX_ENTRY_BYTES`], [`MAX_ARCHIVE_BYTES`]).
    fn default() -> Self {
        ZipLimits {
            max_entry: MAX_ENTRY_BYTES,
            max_total: MAX_ARCHIVE_BYTES,
        }
    }
}

/// What is left of [`ZipLimits::max_total`] while reading one archive.
#[derive(Debug, Clone)]
pub struct ZipBudget {
    limits: ZipLimits,
    used: u64,
}

impl ZipBudget {
    /// A budget with no memory check of its own: [`ZipBudget::for_entries`] is the one to use
    /// for an archive (this one serves callers that checked the total themselves).
    pub fn new(limits: ZipLimits) -> Self {
        ZipBudget { limits, used: 0 }
    }

    /// The budget for reading `names` from `archive`: their declared sizes are summed (at most
    /// `limits.max_total`) and checked once against the memory available (one look at
    /// /proc/meminfo per archive, not one per entry counting earlier entries twice). Each entry
    /// is still checked against `max_entry`, the DEFLATE ratio and what is left of
    /// `max_total` by [`read_entry`].
    pub fn for_entries<'a, R: Read + Seek>(
        archive: &mut zip::ZipArchive<R>,
        path: &Path,
        names: impl IntoIterator<Item = &'a str>,
        limits: ZipLimits,
    ) -> Result<Self> {
        let mut total = 0u64;
        for name in names {
            let entry = archive.by_name(name).map_err(|e| {
                Error::format(
                    path,
                    0,
                    format!("zip entry {}: {e}", super::pickle::quote(name)),
                )
            })?;
            total = total.saturating_add(entry.size());
        }
        // Entries past the per-archive cap are refused by `read_entry` (naming the entry);
        // memory is needed for at most the cap.
        let total = total.min(limits.max_total);
        ood_core::limits::check_alloc("zip entries", total as u128, 1)
            .map_err(|e| Error::format(path, 0, e.to_string()))?;
        Ok(Self::new(limits))
    }

    /// Bytes inflated so far.
    pub fn used(&self) -> u64 {
        self.used
    }
}

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
    let (f, _) = super::bytes::open_regular(path)?;
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
    decode_archive(open_file(path)?, path, mode, keep, ZipLimits::default())
}

/// [`read_zip_images`] on an archive held in memory (`name` is used in errors).
pub fn parse_zip_images(bytes: &[u8], name: &Path, mode: ColorMode) -> Result<Vec<ZipImage>> {
    parse_zip_images_limited(bytes, name, mode, ZipLimits::default())
}

/// [`parse_zip_images`] under other caps (tests use small ones).
pub fn parse_zip_images_limited(
    bytes: &[u8],
    name: &Path,
    mode: ColorMode,
    limits: ZipLimits,
) -> Result<Vec<ZipImage>> {
    let archive = open(std::io::Cursor::new(bytes), name)?;
    decode_archive(archive, name, mode, |_| true, limits)
}

fn decode_archive<R: Read + Seek>(
    mut archive: zip::ZipArchive<R>,
    path: &Path,
    mode: ColorMode,
    keep: impl Fn(&str) -> bool,
    limits: ZipLimits,
) -> Result<Vec<ZipImage>> {
    let names: Vec<String> = sorted_image_names(&archive)
        .into_iter()
        .filter(|n| keep(n))
        .collect();
    let mut budget =
        ZipBudget::for_entries(&mut archive, path, names.iter().map(|n| n.as_str()), limits)?;
    let mut raw = Vec::with_capacity(names.len());
    for name in names {
        let bytes = read_entry(&mut archive, path, &name, &mut budget)?;
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

/// The bytes of one entry, checked against `budget` before allocating (see [`ZipLimits`]; the
/// memory available was checked once for the archive by [`ZipBudget::for_entries`]).
/// The one reader of zip entries (also used for `torch.save` archives by `ood-nn`).
pub fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    path: &Path,
    name: &str,
    budget: &mut ZipBudget,
) -> Result<Vec<u8>> {
    let shown = super::pickle::quote(name);
    let entry = archive
        .by_name(name)
        .map_err(|e| Error::format(path, 0, format!("zip entry {shown}: {e}")))?;
    let offset = entry.header_start();
    let size = entry.size();
    let bound = entry
        .compressed_size()
        .saturating_mul(MAX_DEFLATE_RATIO as u64)
        .saturating_add(1024);
    let left = budget.limits.max_total.saturating_sub(budget.used);
    if size > budget.limits.max_entry || size > bound || size > left {
        return Err(Error::format(
            path,
            offset,
            format!(
                "zip entry {shown} declares {size} bytes uncompressed (limits: {} per entry, \
                 {left} left of {} per archive, ratio bound {bound})",
                budget.limits.max_entry, budget.limits.max_total
            ),
        ));
    }
    // Memory grows with the bytes actually inflated, not with a (possibly lying) header.
    let mut bytes = Vec::with_capacity(size.min(INITIAL_CAPACITY) as usize);
    entry
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::format(path, offset, format!("zip entry {shown}: {e}")))?;
    if bytes.len() as u64 != size {
        return Err(Error::format(
            path,
            offset,
            format!(
                "zip entry {shown} declares {size} bytes but inflates to {}",
                bytes.len()
            ),
        ));
    }
    budget.used += size;
    Ok(bytes)
}
