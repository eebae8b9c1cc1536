//! A bounds-checked cursor over a file's bytes: every read checks the remaining length first and
//! every error names the file and the byte offset where parsing stopped.

use std::path::Path;

use crate::{Error, Result};

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// Added to `pos` in error messages (for a stream that starts inside a file).
    base: u64,
    path: &'a Path,
    /// Prefix of every message, e.g. "decompressed stream: " for gzip input.
    note: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], path: &'a Path) -> Self {
        Cursor {
            data,
            pos: 0,
            base: 0,
            path,
            note: "",
        }
    }

    pub fn with_base(data: &'a [u8], path: &'a Path, base: u64) -> Self {
        Cursor {
            data,
            pos: 0,
            base,
            path,
            note: "",
        }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// A format error at the current position.
    pub fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.pos, message)
    }

    pub fn error_at(&self, pos: usize, message: impl Into<String>) -> Error {
        Error::format(
            self.path,
            self.base + pos as u64,
            format!("{}{}", self.note, message.into()),
        )
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "truncated {what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &str) -> Result<()> {
        self.take(n, what).map(|_| ())
    }

    pub fn u32_be(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u32_le(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Opens an input through [`ood_core::io::guard::open_regular`]: directories, device nodes
/// (`/dev/zero`) and FIFOs are refused before a byte is read. Returns the file and its length.
pub(crate) fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    ood_core::io::guard::open_regular(path).map_err(|e| Error::io(path, e.source))
}

/// Reads a whole regular file (see [`open_regular`]), at most the length it had when opened,
/// naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (f, len) = open_regular(path)?;
    ood_core::limits::check_alloc("input file", len as u128, 1)
        .map_err(|e| Error::format(path, 0, e.to_string()))?;
    let mut out = Vec::with_capacity(len as usize);
    f.take(len)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// Largest decompressed/compressed size ratio of DEFLATE (RFC 1951 caps it near 1032:1); a
/// stream that inflates further is hostile and is cut off without allocating more.
pub(crate) const MAX_DEFLATE_RATIO: usize = 1032;

/// Whether `bytes` starts with the gzip magic number.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// `Debug` of a value from the input (dimensions, a name), cut to
/// [`super::pickle::MAX_QUOTE`] bytes: messages never echo kilobytes of a hostile file.
pub(crate) fn shown(v: &impl std::fmt::Debug) -> String {
    super::pickle::quote(&format!("{v:?}")).into_owned()
}

/// `a * b * ...` or `None` on overflow.
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Converts one image stored column-major as MATLAB writes it (`C x W x H` in row-major terms:
/// row index fastest, then column, then channel) into row-major `H x W x C`.
/// Used by the SVHN `.mat` files and the 80M Tiny Images binary.
pub(crate) fn column_major_to_hwc(src: &[u8], h: usize, w: usize, c: usize, dst: &mut [u8]) {
    debug_assert_eq!(src.len(), h * w * c);
    debug_assert_eq!(dst.len(), h * w * c);
    for ch in 0..c {
        for x in 0..w {
            let col = &src[ch * w * h + x * h..ch * w * h + (x + 1) * h];
            for (y, &v) in col.iter().enumerate() {
                dst[(y * w + x) * c + ch] = v;
            }
        }
    }
}

/// Converts one image stored channel-planar (`C x H x W`, as CIFAR stores it) into `H x W x C`.
pub(crate) fn planar_to_hwc(src: &[u8], h: usize, w: usize, c: usize, dst: &mut [u8]) {
    debug_assert_eq!(src.len(), h * w * c);
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for (p, &v) in plane.iter().enumerate() {
            dst[p * c + ch] = v;
        }
    }
}
