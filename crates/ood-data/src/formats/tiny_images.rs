//! The 80 Million Tiny Images binary (`tiny_images.bin`; Torralba, Fergus, Freeman, 2008), the
//! auxiliary outlier set of the paper's fine-tuning, read by positioned reads for random access.
//!
//! Not memory-mapped: a mapped file that shrinks while open (another process truncating it)
//! kills the reader with SIGBUS. A positioned read of a record past the new end fails instead,
//! with the file and byte offset ([`TinyImages::try_image`]).
//!
//! The file is a plain sequence of 32 x 32 RGB images, 3072 bytes each, stored column-major as
//! MATLAB wrote them: for each channel, for each column, the 32 rows (i.e. `C x W x H` in
//! row-major terms; the paper's code reads a record with `reshape(32, 32, 3, order="F")`).
//! The full file holds 79,302,017 images (243.6 GB); any whole number of records is accepted.
//!
//! CIFAR overlap exclusion: `80mn_cifar_idxs.txt` lists, one per line, the **1-based** indices of
//! Tiny Images that appear in CIFAR-10/100 test sets. The paper's code, on drawing an excluded
//! index, redraws a random one; here [`TinyImages`] with an exclusion list instead *renumbers*
//! the kept images `0..len()` (skipping the excluded ones exactly, via binary search), so a
//! uniform draw over `0..len()` is a uniform draw over kept images and sequential reads are
//! deterministic.

use std::fs::File;
use std::path::{Path, PathBuf};

use ndarray::Array3;

use super::bytes::{column_major_to_hwc, open_regular, read_file};
use crate::{Error, Result};

/// Bytes per image.
pub const RECORD: usize = 3072;
/// Images in the full `tiny_images.bin`.
pub const FULL_COUNT: u64 = 79_302_017;

/// Parses an exclusion list (one 1-based index per line; blank lines ignored) into sorted,
/// deduplicated 0-based indices, each checked against `n_images`.
pub fn parse_exclusion_list(text: &[u8], n_images: u64, path: &Path) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    for (lineno, line) in text.split(|&b| b == b'\n').enumerate() {
        let start = offset;
        offset += line.len() + 1;
        let s = std::str::from_utf8(line).unwrap_or("").trim();
        if s.is_empty() {
            if !line.iter().all(|b| b.is_ascii_whitespace()) {
                return Err(Error::format(
                    path,
                    start as u64,
                    format!("line {}: not an index", lineno + 1),
                ));
            }
            continue;
        }
        let v: u64 = s.parse().map_err(|_| {
            Error::format(
                path,
                start as u64,
                format!(
                    "line {}: {} is not an index",
                    lineno + 1,
                    super::bytes::shown(&s)
                ),
            )
        })?;
        if v == 0 || v > n_images {
            return Err(Error::format(
                path,
                start as u64,
                format!(
                    "line {}: index {v} outside 1..={n_images} (indices are 1-based)",
                    lineno + 1
                ),
            ));
        }
        out.push(v - 1);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Tiny Images, optionally without the CIFAR overlaps.
pub struct TinyImages {
    path: PathBuf,
    file: File,
    total: u64,
    /// Sorted 0-based indices of excluded images.
    excluded: Vec<u64>,
}

impl std::fmt::Debug for TinyImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TinyImages")
            .field("path", &self.path)
            .field("total", &self.total)
            .field("excluded", &self.excluded.len())
            .finish()
    }
}

impl TinyImages {
    /// Opens the binary (a regular file); its size must be a positive multiple of 3072.
    pub fn open(path: &Path) -> Result<Self> {
        let (file, len) = open_regular(path)?;
        if len == 0 || len % RECORD as u64 != 0 {
            return Err(Error::format(
                path,
                len - len % RECORD as u64,
                format!(
                    "file size {len} is not a positive multiple of {RECORD} (one 32x32x3 image)"
                ),
            ));
        }
        Ok(TinyImages {
            path: path.to_owned(),
            file,
            total: len / RECORD as u64,
            excluded: Vec::new(),
        })
    }

    /// Excludes the images listed (1-based) in `80mn_cifar_idxs.txt`.
    pub fn with_exclusion_file(self, list: &Path) -> Result<Self> {
        let text = read_file(list)?;
        let excluded = parse_exclusion_list(&text, self.total, list)?;
        Ok(self.with_excluded(excluded))
    }

    /// Excludes the given 0-based indices (sorted and deduplicated here; out-of-range ones dropped).
    pub fn with_excluded(mut self, mut excluded: Vec<u64>) -> Self {
        excluded.sort_unstable();
        excluded.dedup();
        excluded.retain(|&i| i < self.total);
        self.excluded = excluded;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Images in the file, excluded ones included.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Kept images.
    pub fn len(&self) -> usize {
        (self.total - self.excluded.len() as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the file's image `raw` (0-based) is excluded.
    pub fn is_excluded(&self, raw: u64) -> bool {
        self.excluded.binary_search(&raw).is_ok()
    }

    /// File index (0-based) of the `k`-th kept image: `k + m`, where `m` counts the excluded
    /// indices `e_i` with `e_i - i <= k` (`e_i - i` is the number of kept images before `e_i`).
    pub fn raw_index(&self, k: usize) -> u64 {
        let k = k as u64;
        let (mut lo, mut hi) = (0usize, self.excluded.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.excluded[mid] - mid as u64 <= k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        k + lo as u64
    }

    /// The raw 3072 bytes of file image `raw` (column-major); an error if the file no longer
    /// holds them (it shrank after opening) or `raw >= total()`.
    pub fn record(&self, raw: u64) -> Result<[u8; RECORD]> {
        let start = raw.saturating_mul(RECORD as u64);
        let mut buf = [0u8; RECORD];
        if raw >= self.total {
            return Err(Error::format(
                &self.path,
                start,
                format!("image {raw} past the {} images of the file", self.total),
            ));
        }
        ood_core::io::read_exact_at(&self.file, start, &mut buf).map_err(|e| {
            Error::format(
                &self.path,
                start,
                format!("reading image {raw} failed (did the file shrink?): {e}"),
            )
        })?;
        Ok(buf)
    }

    /// Kept image `k` as `32 x 32 x 3`, or why it cannot be read.
    pub fn try_image(&self, k: usize) -> Result<Array3<u8>> {
        let rec = self.record(self.raw_index(k))?;
        let mut out = Array3::zeros((32, 32, 3));
        column_major_to_hwc(
            &rec,
            32,
            32,
            3,
            out.as_slice_mut().expect("standard layout"),
        );
        Ok(out)
    }
}

impl crate::batch::ImageSource for TinyImages {
    fn len(&self) -> usize {
        TinyImages::len(self)
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        (32, 32, 3)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<()> {
        if index >= TinyImages::len(self) || out.len() != RECORD {
            return Err(Error::format(
                &self.path,
                0,
                format!(
                    "image {index} of {} asked into {} bytes",
                    TinyImages::len(self),
                    out.len()
                ),
            ));
        }
        let rec = self.record(self.raw_index(index))?;
        column_major_to_hwc(&rec, 32, 32, 3, out);
        Ok(())
    }
}
