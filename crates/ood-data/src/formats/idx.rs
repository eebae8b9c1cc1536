//! IDX files (MNIST, Fashion-MNIST, notMNIST, KMNIST), raw or gzip-compressed.
//!
//! Layout (big-endian): two zero bytes, a type code (`0x08` = unsigned byte, the only type these
//! datasets use), the number of dimensions `d`, `d` dimension sizes as `u32`, then the data in
//! row-major order. Image files have `d = 3` (`N x H x W`), label files `d = 1`.
//! Gzip input is recognised by its magic number; offsets in errors then refer to the
//! decompressed stream.

use std::io::Read;
use std::path::Path;

use ndarray::{Array1, Array4};

use super::bytes::{is_gzip, read_file, shown, Cursor, MAX_DEFLATE_RATIO};
use crate::{Error, ImageSet, Result};

const TYPE_U8: u8 = 0x08;

/// A parsed IDX header: dimension sizes and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    pub dims: Vec<usize>,
    pub data_offset: usize,
}

/// IDX bytes read in order from a buffer or a gzip decoder, with the offset for errors. Gzip
/// input is never inflated whole: the header is read and checked first, then exactly the
/// declared data, then at most one byte to refuse trailing garbage.
struct Stream<'a, R> {
    r: R,
    pos: u64,
    path: &'a Path,
    /// "decompressed stream: " for gzip input.
    note: &'static str,
}

impl<R: Read> Stream<'_, R> {
    fn err(&self, at: u64, msg: impl std::fmt::Display) -> Error {
        Error::format(self.path, at, format!("{}{msg}", self.note))
    }

    fn io_err(&self, e: std::io::Error, what: &str) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            self.err(self.pos, format!("truncated {what}"))
        } else {
            Error::format(self.path, 0, format!("corrupt gzip stream: {e}"))
        }
    }

    fn read<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|e| self.io_err(e, what))?;
        self.pos += N as u64;
        Ok(b)
    }

    /// Magic, type code and dimension sizes.
    fn header(&mut self) -> Result<Vec<usize>> {
        let [m0, m1, type_code, ndim] = self.read::<4>("IDX magic, type and dimension count")?;
        if [m0, m1] != [0, 0] {
            return Err(self.err(
                0,
                format!(
                    "not an IDX file: magic starts {:02x?}, expected [00, 00]",
                    [m0, m1]
                ),
            ));
        }
        if type_code != TYPE_U8 {
            return Err(self.err(
                2,
                format!("IDX type code {type_code:#04x} is not 0x08 (unsigned byte)"),
            ));
        }
        if ndim == 0 {
            return Err(self.err(3, "IDX dimension count is 0"));
        }
        let mut dims = Vec::with_capacity(ndim as usize);
        for i in 0..ndim {
            let d = self.read::<4>(&format!("IDX size of dimension {i}"))?;
            dims.push(u32::from_be_bytes(d) as usize);
        }
        Ok(dims)
    }

    /// Exactly the `declared` data bytes (at most `max` of them, checked before allocating),
    /// then the end of the input.
    fn data(&mut self, dims: &[usize], max: u64) -> Result<Vec<u8>> {
        let declared = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| self.err(4, format!("IDX dimensions {} overflow", shown(&dims))))?;
        if declared > max {
            return Err(self.err(
                self.pos,
                format!(
                    "IDX header declares {} = {declared} data bytes but {} follow the header",
                    shown(&dims),
                    if self.note.is_empty() {
                        format!("{max}")
                    } else {
                        format!("a gzip stream can hold at most {max}")
                    }
                ),
            ));
        }
        ood_core::limits::check_alloc("IDX data", declared as u128, 1)
            .map_err(|e| self.err(4, e))?;
        // A gzip stream may end early: reserve at most 64 MiB ahead of the data inflated.
        let mut data = Vec::with_capacity(declared.min(64 << 20) as usize);
        (&mut self.r)
            .take(declared)
            .read_to_end(&mut data)
            .map_err(|e| self.io_err(e, "IDX data"))?;
        if data.len() as u64 != declared {
            return Err(self.err(
                self.pos,
                format!(
                    "IDX header declares {} = {declared} data bytes but {} follow the header",
                    shown(&dims),
                    data.len()
                ),
            ));
        }
        self.pos += declared;
        let mut extra = [0u8; 1];
        if self
            .r
            .read(&mut extra)
            .map_err(|e| self.io_err(e, "IDX end"))?
            > 0
        {
            return Err(self.err(
                self.pos,
                format!(
                    "IDX header declares {} = {declared} data bytes but more follow the header",
                    shown(&dims)
                ),
            ));
        }
        Ok(data)
    }
}

/// Parses and validates the header of an (uncompressed) IDX buffer: magic, `u8` type, and that
/// the declared data size equals the bytes that follow the header.
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<IdxHeader> {
    let mut s = Stream {
        r: bytes,
        pos: 0,
        path,
        note: "",
    };
    let dims = s.header()?;
    let data_offset = s.pos as usize;
    let follow = bytes.len() - data_offset;
    let cur = Cursor::new(bytes, path);
    let declared = super::bytes::checked_product(&dims)
        .ok_or_else(|| cur.error_at(4, format!("IDX dimensions {} overflow", shown(&dims))))?;
    if declared != follow {
        return Err(cur.error_at(
            data_offset,
            format!(
                "IDX header declares {} = {declared} data bytes but {follow} follow the header",
                shown(&dims)
            ),
        ));
    }
    Ok(IdxHeader { dims, data_offset })
}

/// Dimensions and data of an IDX file held in memory, raw or gzip; `ndim` dimensions required.
fn parse(bytes: &[u8], path: &Path, ndim: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    fn run<R: Read>(
        mut s: Stream<'_, R>,
        max: u64,
        ndim: usize,
        what: &str,
    ) -> Result<(Vec<usize>, Vec<u8>)> {
        let dims = s.header()?;
        if dims.len() != ndim {
            return Err(s.err(
                3,
                format!(
                    "IDX {what} must have {ndim} dimension(s), found {}",
                    shown(&dims)
                ),
            ));
        }
        let data = s.data(&dims, max)?;
        Ok((dims, data))
    }
    if is_gzip(bytes) {
        let max = (bytes.len() as u64)
            .saturating_mul(MAX_DEFLATE_RATIO as u64)
            .saturating_add(1024);
        let s = Stream {
            r: flate2::read::MultiGzDecoder::new(bytes),
            pos: 0,
            path,
            note: "decompressed stream: ",
        };
        run(s, max, ndim, what)
    } else {
        let max = bytes.len().saturating_sub(4 + 4 * ndim) as u64;
        let s = Stream {
            r: bytes,
            pos: 0,
            path,
            note: "",
        };
        run(s, max, ndim, what)
    }
}

/// Parses an IDX image file (raw or gzip) held in memory into `N x H x W x 1`.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Array4<u8>> {
    let (dims, pixels) = parse(bytes, path, 3, "image file (N x H x W)")?;
    Ok(
        Array4::from_shape_vec((dims[0], dims[1], dims[2], 1), pixels)
            .expect("size checked against the header"),
    )
}

/// Parses an IDX label file (raw or gzip) held in memory.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Array1<i64>> {
    let (_, data) = parse(bytes, path, 1, "label file")?;
    Ok(data.iter().map(|&b| b as i64).collect())
}

/// Reads an IDX image file (raw or `.gz`) as `N x H x W x 1`.
pub fn read_images(path: &Path) -> Result<Array4<u8>> {
    parse_images(&read_file(path)?, path)
}

/// Reads an IDX label file (raw or `.gz`).
pub fn read_labels(path: &Path) -> Result<Array1<i64>> {
    parse_labels(&read_file(path)?, path)
}

/// Reads an image file and, optionally, its label file; their counts must agree.
pub fn read_image_set(images: &Path, labels: Option<&Path>) -> Result<ImageSet> {
    let imgs = read_images(images)?;
    let labels = match labels {
        Some(lp) => {
            let l = read_labels(lp)?;
            if l.len() != imgs.shape()[0] {
                return Err(Error::format(
                    lp,
                    4,
                    format!(
                        "{} labels but {} has {} images",
                        l.len(),
                        images.display(),
                        imgs.shape()[0]
                    ),
                ));
            }
            Some(l)
        }
        None => None,
    };
    Ok(ImageSet {
        images: imgs,
        labels,
    })
}
