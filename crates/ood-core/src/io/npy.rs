//! NumPy `.npy` files: the exchange format between `eood` and any framework, and the one owner
//! of the format in this workspace (ood-data's memory-free image reader and ood-nn's extract
//! use it for their headers; nothing else parses or writes one).
//!
//! Reading accepts format versions 1.0, 2.0 and 3.0, C order only, and the dtypes a model
//! export produces: `float32`/`float64` for logits, scores and features; `int8`/`int32`/`int64`/
//! `uint8` for class labels and images (either byte order). Every read opens the file with
//! [`open_regular`](super::guard::open_regular) (no device node or FIFO is ever read), reads a
//! header of at most [`MAX_HEADER_LEN`] bytes, checks the payload it declares against the file
//! length before anything is allocated, and then reads exactly that. Everything else is refused
//! with an [`NpyError`] that names the file and the problem, quoting at most 64 bytes of it.
//!
//! Writing produces little-endian C-order files through [`AtomicFile`](super::AtomicFile), so a
//! failed or interrupted write never replaces an existing file; [`NpyWriter`] streams row
//! blocks of an array whose shape is known up front.

mod header;
mod writer;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array4};

pub use header::{
    header_bytes, parse_header, parse_prefix, raw_v1, Header, MAX_DIMS, MAX_HEADER_LEN,
};
pub use writer::{
    write_array, write_f32_vector, write_f64_matrix, write_f64_vector, write_i64_vector,
    write_u8_vector, Element, NpyWriter,
};

use super::guard::open_regular;
use super::IoError;
use crate::limits::{check_alloc, LimitError};
use header::fmt_shape;

/// A `.npy` problem, always tied to the file it concerns. The message already contains the
/// kind, so `kind` is a field rather than an error `source` (a source chain would print it twice).
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct NpyError {
    pub path: PathBuf,
    pub kind: NpyErrorKind,
}

/// What went wrong with a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyErrorKind {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a .npy file (missing \\x93NUMPY magic)")]
    BadMagic,
    #[error("unsupported .npy format version {0}.{1}")]
    BadVersion(u8, u8),
    #[error("malformed .npy header: {0}")]
    BadHeader(String),
    #[error("unsupported dtype '{found}' (expected {expected})")]
    Dtype {
        found: String,
        expected: &'static str,
    },
    #[error("Fortran-order arrays are not supported (save with np.ascontiguousarray)")]
    FortranOrder,
    #[error("expected a {expected}-D array, found shape {}", fmt_shape(found))]
    Ndim { expected: usize, found: Vec<usize> },
    #[error("truncated: header announces {expected} data bytes, file holds {found}")]
    Truncated { expected: u64, found: u64 },
    #[error("{extra} unexpected bytes after the data (header announces {expected} data bytes)")]
    TrailingBytes { expected: u64, extra: u64 },
    #[error("array is empty (shape {})", fmt_shape(.0))]
    Empty(Vec<usize>),
    #[error("shape {} overflows", fmt_shape(.0))]
    Overflow(Vec<usize>),
    #[error("file changed while being read (it is now shorter than its header declares)")]
    Shrunk,
    /// Boxed: its strings would make every `NpyError` large.
    #[error(transparent)]
    Limit(Box<LimitError>),
    #[error("read of bytes {start}..{end} past the end of the {size}-byte array")]
    OutOfRange { start: u64, end: u64, size: u64 },
    #[error("{written} of the {declared} declared elements written")]
    Incomplete { declared: u64, written: u64 },
    #[error("more than the {declared} declared elements written")]
    Overfull { declared: u64 },
}

impl From<LimitError> for NpyErrorKind {
    fn from(e: LimitError) -> Self {
        NpyErrorKind::Limit(Box::new(e))
    }
}

impl NpyError {
    pub fn new(path: &Path, kind: NpyErrorKind) -> Self {
        Self {
            path: path.to_path_buf(),
            kind,
        }
    }
}

impl From<IoError> for NpyError {
    fn from(e: IoError) -> Self {
        Self {
            path: e.path,
            kind: NpyErrorKind::Io(e.source),
        }
    }
}

/// Element types this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    U8,
    I8,
    I32,
    I64,
    F32,
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }

    fn code(self) -> &'static str {
        match self {
            Dtype::U8 => "u1",
            Dtype::I8 => "i1",
            Dtype::I32 => "i4",
            Dtype::I64 => "i8",
            Dtype::F32 => "f4",
            Dtype::F64 => "f8",
        }
    }

    /// The `descr` NumPy writes: `|u1` for single bytes, else `<f4` / `>f4`.
    pub fn descr(self, big_endian: bool) -> String {
        let order = match (self.size(), big_endian) {
            (1, _) => '|',
            (_, true) => '>',
            (_, false) => '<',
        };
        format!("{order}{}", self.code())
    }

    /// A descr to a dtype and byte order (`true` = big-endian); `None` if unsupported.
    pub fn parse_descr(descr: &str) -> Option<(Dtype, bool)> {
        let (order, code) = match descr.chars().next()? {
            c @ ('<' | '>' | '=' | '|') => (Some(c), &descr[1..]),
            _ => (None, descr),
        };
        let dtype = [
            Dtype::U8,
            Dtype::I8,
            Dtype::I32,
            Dtype::I64,
            Dtype::F32,
            Dtype::F64,
        ]
        .into_iter()
        .find(|d| d.code() == code)?;
        // No byte order ('|' or none at all) only makes sense for single bytes.
        if matches!(order, None | Some('|')) && dtype.size() != 1 {
            return None;
        }
        Some((dtype, order == Some('>') && dtype.size() > 1))
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        })
    }
}

/// An open `.npy` file whose header was parsed and whose length matches the payload the header
/// declares. Data are read with positioned reads, so the reader can be shared by threads.
#[derive(Debug)]
pub struct NpyFile {
    path: PathBuf,
    file: File,
    header: Header,
    data_offset: u64,
}

impl NpyFile {
    /// Open `path` (a regular file only), parse its header and check the file length.
    pub fn open(path: &Path) -> Result<Self, NpyError> {
        let err = |k| NpyError::new(path, k);
        let (mut file, len) = open_regular(path)?;
        let (header, data_offset) = read_prefix(&mut file, len).map_err(err)?;
        let expected = header
            .data_bytes()
            .ok_or_else(|| err(NpyErrorKind::Overflow(header.shape.clone())))?;
        let found = len - data_offset;
        if found < expected {
            return Err(err(NpyErrorKind::Truncated { expected, found }));
        }
        if found > expected {
            return Err(err(NpyErrorKind::TrailingBytes {
                expected,
                extra: found - expected,
            }));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            header,
            data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Byte offset of the first element.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Fill `out` with payload bytes starting at payload byte `at`. A file that shrank since
    /// it was opened gives [`NpyErrorKind::Shrunk`].
    pub fn read_at(&self, at: u64, out: &mut [u8]) -> Result<(), NpyError> {
        let size = self.header.data_bytes().unwrap_or(0);
        let end = at.saturating_add(out.len() as u64);
        if end > size {
            return Err(NpyError::new(
                &self.path,
                NpyErrorKind::OutOfRange {
                    start: at,
                    end,
                    size,
                },
            ));
        }
        super::read::read_exact_at(&self.file, self.data_offset + at, out).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                NpyErrorKind::Shrunk
            } else {
                NpyErrorKind::Io(e)
            };
            NpyError::new(&self.path, kind)
        })
    }

    /// The whole payload (its size is checked against available memory first).
    pub fn read_payload(&self) -> Result<Vec<u8>, NpyError> {
        let n = self.header.data_bytes().unwrap_or(u64::MAX);
        check_alloc(&self.path.display().to_string(), n as u128, 1)
            .map_err(|e| NpyError::new(&self.path, e.into()))?;
        let mut data = vec![0u8; n as usize];
        self.read_at(0, &mut data)?;
        Ok(data)
    }

    /// Check the dtype class, the number of dimensions and non-emptiness.
    fn expect(&self, ndim: usize, float: bool) -> Result<(), NpyError> {
        let h = &self.header;
        let err = |k| NpyError::new(&self.path, k);
        if h.dtype.is_float() != float {
            return Err(err(NpyErrorKind::Dtype {
                found: format!("{} ({})", h.descr(), h.dtype),
                expected: if float { FLOAT_DTYPES } else { LABEL_DTYPES },
            }));
        }
        if h.fortran_order {
            return Err(err(NpyErrorKind::FortranOrder));
        }
        if h.shape.len() != ndim {
            return Err(err(NpyErrorKind::Ndim {
                expected: ndim,
                found: h.shape.clone(),
            }));
        }
        if h.shape.contains(&0) {
            return Err(err(NpyErrorKind::Empty(h.shape.clone())));
        }
        Ok(())
    }
}

/// Read and parse the header from the start of `file` (of length `len`): at most
/// [`MAX_HEADER_LEN`] bytes, and never more than the file holds.
fn read_prefix(file: &mut File, len: u64) -> Result<(Header, u64), NpyErrorKind> {
    let mut pre = vec![0u8; 12.min(len as usize)];
    file.read_exact(&mut pre)?;
    let (start, text_len) = header::preamble(&pre)?;
    let end = (start + text_len) as u64;
    if end > len {
        return Err(NpyErrorKind::BadHeader(format!(
            "file ends inside the header ({} of {text_len} header bytes)",
            len.saturating_sub(start as u64)
        )));
    }
    pre.resize(end as usize, 0);
    file.read_exact(&mut pre[12.min(end as usize)..])?;
    let (header, at) = parse_prefix(&pre)?;
    Ok((header, at as u64))
}

const FLOAT_DTYPES: &str = "float32 or float64 ('<f4', '<f8')";
const LABEL_DTYPES: &str = "int32, int64 or uint8 ('<i4', '<i8', '|u1'; also int8)";

/// Decode `bytes` as `$t` elements of `$n` bytes in the given byte order, widened to `$to`.
macro_rules! decode {
    ($bytes:expr, $big:expr, $t:ty, $n:expr, $to:ty) => {
        $bytes
            .chunks_exact($n)
            .map(|c| {
                let b: [u8; $n] = c.try_into().expect("chunk size");
                <$to>::from(if $big {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                })
            })
            .collect()
    };
}

/// Decode `bytes` of a float dtype to f64.
pub fn decode_f64(dtype: Dtype, big_endian: bool, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        Dtype::F32 => decode!(bytes, big_endian, f32, 4, f64),
        Dtype::F64 => decode!(bytes, big_endian, f64, 8, f64),
        _ => unreachable!("decode_f64 on {dtype}"),
    }
}

/// Decode `bytes` of an integer dtype to i64.
pub fn decode_i64(dtype: Dtype, big_endian: bool, bytes: &[u8]) -> Vec<i64> {
    match dtype {
        Dtype::U8 => decode!(bytes, false, u8, 1, i64),
        Dtype::I8 => decode!(bytes, false, i8, 1, i64),
        Dtype::I32 => decode!(bytes, big_endian, i32, 4, i64),
        Dtype::I64 => decode!(bytes, big_endian, i64, 8, i64),
        _ => unreachable!("decode_i64 on {dtype}"),
    }
}

/// Decode `bytes` of `float32` (either byte order) to f32.
pub fn decode_f32(big_endian: bool, bytes: &[u8]) -> Vec<f32> {
    decode!(bytes, big_endian, f32, 4, f32)
}

fn read_floats(path: &Path, ndim: usize) -> Result<(Header, Vec<f64>), NpyError> {
    let f = NpyFile::open(path)?;
    f.expect(ndim, true)?;
    let h = f.header();
    check_alloc(
        &path.display().to_string(),
        h.count().unwrap_or(u64::MAX) as u128,
        8,
    )
    .map_err(|e| NpyError::new(path, e.into()))?;
    let values = decode_f64(h.dtype, h.big_endian, &f.read_payload()?);
    Ok((f.header, values))
}

/// Read a non-empty 1-D float32/float64 array (scores) as f64.
pub fn read_f64_vector(path: &Path) -> Result<Vec<f64>, NpyError> {
    Ok(read_floats(path, 1)?.1)
}

/// Read a non-empty 2-D float32/float64 C-order array (logits N x K, features N x D) as f64.
pub fn read_f64_matrix(path: &Path) -> Result<Array2<f64>, NpyError> {
    let (h, values) = read_floats(path, 2)?;
    Ok(Array2::from_shape_vec((h.shape[0], h.shape[1]), values)
        .expect("payload length checked against shape"))
}

/// Read a non-empty 4-D float32/float64 C-order array (feature maps N x C x H x W) as f64.
pub fn read_f64_array4(path: &Path) -> Result<Array4<f64>, NpyError> {
    let (h, values) = read_floats(path, 4)?;
    let s = &h.shape;
    Ok(Array4::from_shape_vec((s[0], s[1], s[2], s[3]), values)
        .expect("payload length checked against shape"))
}

/// Read a non-empty 1-D integer array (class labels) as i64.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, NpyError> {
    let f = NpyFile::open(path)?;
    f.expect(1, false)?;
    let h = f.header();
    check_alloc(
        &path.display().to_string(),
        h.count().unwrap_or(u64::MAX) as u128,
        8,
    )
    .map_err(|e| NpyError::new(path, e.into()))?;
    Ok(decode_i64(h.dtype, h.big_endian, &f.read_payload()?))
}

/// Read only the header (for tools that report shapes or choose a reader by dtype); the file
/// length is checked against it too.
pub fn read_header(path: &Path) -> Result<Header, NpyError> {
    Ok(NpyFile::open(path)?.header)
}

/// Whether `path` is a valid `.npy` of a float dtype (`Ok(false)` for integer dtypes).
pub fn is_float(path: &Path) -> Result<bool, NpyError> {
    Ok(read_header(path)?.dtype.is_float())
}

#[cfg(test)]
mod tests;
