//! NumPy `.npy` files: the exchange format between `eood` and any framework.
//!
//! Reading accepts format versions 1.0, 2.0 and 3.0, C order only, and the dtypes a model
//! export produces: `float32`/`float64` for logits, scores and features; `int32`/`int64`/`uint8`
//! for class labels (either byte order). Everything else is refused with an [`NpyError`] that names
//! the file and the problem (Fortran order, other dtypes, wrong number of dimensions, truncated
//! or oversized payload, a header that is not a NumPy header).
//!
//! Writing always produces little-endian version 1.0 files through [`write_atomic`](super::write_atomic),
//! so a failed write never replaces an existing file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::{write_atomic, IoError};

const MAGIC: &[u8] = b"\x93NUMPY";

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
}

fn fmt_shape(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if parts.len() == 1 {
        format!("({},)", parts[0])
    } else {
        format!("({})", parts.join(", "))
    }
}

impl NpyError {
    fn new(path: &Path, kind: NpyErrorKind) -> Self {
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

/// Element types this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    I32,
    I64,
    U8,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::U8 => 1,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::U8 => "uint8",
        })
    }
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `descr` string as written, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

/// A raw array: header plus payload bytes (exactly `len * itemsize` of them).
struct Raw {
    header: Header,
    dtype: Dtype,
    big_endian: bool,
    data: Vec<u8>,
}

const FLOAT_DTYPES: &str = "float32 or float64 ('<f4', '<f8')";
const LABEL_DTYPES: &str = "int32, int64 or uint8 ('<i4', '<i8', '|u1')";

/// Parse the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
pub fn parse_header(text: &str) -> Result<Header, String> {
    let text = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("header is not a dict: {text:?}"))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) =
            take_quoted(rest).ok_or_else(|| format!("expected a quoted key at {rest:?}"))?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or("expected ':' after key")?
            .trim_start();
        let after = match key {
            "descr" => {
                let (v, a) = take_quoted(after).ok_or("descr is not a string")?;
                descr = Some(v.to_string());
                a
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("False") {
                    fortran = Some(false);
                    a
                } else if let Some(a) = after.strip_prefix("True") {
                    fortran = Some(true);
                    a
                } else {
                    return Err("fortran_order is not True/False".into());
                }
            }
            "shape" => {
                let body = after.strip_prefix('(').ok_or("shape is not a tuple")?;
                let end = body.find(')').ok_or("unterminated shape tuple")?;
                let dims = body[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        d.trim_end_matches('L')
                            .parse::<usize>()
                            .map_err(|_| format!("bad dimension {d:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                shape = Some(dims);
                &body[end + 1..]
            }
            other => return Err(format!("unexpected key {other:?}")),
        };
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(Header {
        descr: descr.ok_or("missing 'descr'")?,
        fortran_order: fortran.ok_or("missing 'fortran_order'")?,
        shape: shape.ok_or("missing 'shape'")?,
    })
}

/// Split a leading `'...'` or `"..."` string off `s`.
fn take_quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(q)?;
    Some((&body[..end], &body[end + 1..]))
}

/// Map a descr to a dtype and byte order. `None` for anything unsupported.
fn classify(descr: &str) -> Option<(Dtype, bool)> {
    // split on a char boundary: the descr comes from the file and may hold any UTF-8
    let mut chars = descr.chars();
    let order = chars.next()?;
    let code = chars.as_str();
    let big = match order {
        '<' | '=' | '|' => false,
        '>' => true,
        _ => return None,
    };
    let dtype = match code {
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        "i4" => Dtype::I32,
        "i8" => Dtype::I64,
        "u1" => Dtype::U8,
        _ => return None,
    };
    // '|' (no byte order) only makes sense for single bytes.
    if order == '|' && dtype != Dtype::U8 {
        return None;
    }
    Some((dtype, big))
}

/// Read header and payload, checking the payload size against the shape.
fn read_raw(path: &Path) -> Result<Raw, NpyError> {
    let err = |k| NpyError::new(path, k);
    let bytes = std::fs::read(path).map_err(|e| err(NpyErrorKind::Io(e)))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err(NpyErrorKind::BadMagic));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err(NpyErrorKind::BadHeader(
                    "file ends inside the header".into(),
                )));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(err(NpyErrorKind::BadVersion(major, minor))),
    };
    let data_start = start + header_len;
    if bytes.len() < data_start {
        return Err(err(NpyErrorKind::BadHeader(format!(
            "file ends inside the header ({} of {} header bytes)",
            bytes.len().saturating_sub(start),
            header_len
        ))));
    }
    let text = std::str::from_utf8(&bytes[start..data_start])
        .map_err(|_| err(NpyErrorKind::BadHeader("header is not text".into())))?;
    let header = parse_header(text).map_err(|m| err(NpyErrorKind::BadHeader(m)))?;
    let (dtype, big_endian) = classify(&header.descr).ok_or_else(|| {
        err(NpyErrorKind::Dtype {
            found: header.descr.clone(),
            expected: "float32, float64, int32, int64 or uint8",
        })
    })?;
    if header.fortran_order {
        return Err(err(NpyErrorKind::FortranOrder));
    }
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(NpyErrorKind::BadHeader("shape overflows".into())))?;
    let expected = (count as u64)
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| err(NpyErrorKind::BadHeader("shape overflows".into())))?;
    let found = (bytes.len() - data_start) as u64;
    if found < expected {
        return Err(err(NpyErrorKind::Truncated { expected, found }));
    }
    if found > expected {
        return Err(err(NpyErrorKind::TrailingBytes {
            expected,
            extra: found - expected,
        }));
    }
    let mut data = bytes;
    data.drain(..data_start);
    Ok(Raw {
        header,
        dtype,
        big_endian,
        data,
    })
}

fn decode_f64(raw: &Raw) -> Vec<f64> {
    let be = raw.big_endian;
    match raw.dtype {
        Dtype::F32 => raw
            .data
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                f64::from(if be {
                    f32::from_be_bytes(b)
                } else {
                    f32::from_le_bytes(b)
                })
            })
            .collect(),
        Dtype::F64 => raw
            .data
            .chunks_exact(8)
            .map(|c| {
                let b: [u8; 8] = c.try_into().expect("chunks_exact(8)");
                if be {
                    f64::from_be_bytes(b)
                } else {
                    f64::from_le_bytes(b)
                }
            })
            .collect(),
        _ => unreachable!("decode_f64 called on an integer dtype"),
    }
}

fn decode_i64(raw: &Raw) -> Vec<i64> {
    let be = raw.big_endian;
    match raw.dtype {
        Dtype::U8 => raw.data.iter().map(|&b| i64::from(b)).collect(),
        Dtype::I32 => raw
            .data
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                i64::from(if be {
                    i32::from_be_bytes(b)
                } else {
                    i32::from_le_bytes(b)
                })
            })
            .collect(),
        Dtype::I64 => raw
            .data
            .chunks_exact(8)
            .map(|c| {
                let b: [u8; 8] = c.try_into().expect("chunks_exact(8)");
                if be {
                    i64::from_be_bytes(b)
                } else {
                    i64::from_le_bytes(b)
                }
            })
            .collect(),
        _ => unreachable!("decode_i64 called on a float dtype"),
    }
}

fn read_checked(path: &Path, ndim: usize, float: bool) -> Result<Raw, NpyError> {
    let raw = read_raw(path)?;
    let err = |k| NpyError::new(path, k);
    let is_float = matches!(raw.dtype, Dtype::F32 | Dtype::F64);
    if is_float != float {
        return Err(err(NpyErrorKind::Dtype {
            found: format!("{} ({})", raw.header.descr, raw.dtype),
            expected: if float { FLOAT_DTYPES } else { LABEL_DTYPES },
        }));
    }
    if raw.header.shape.len() != ndim {
        return Err(err(NpyErrorKind::Ndim {
            expected: ndim,
            found: raw.header.shape.clone(),
        }));
    }
    if raw.header.shape.contains(&0) {
        return Err(err(NpyErrorKind::Empty(raw.header.shape.clone())));
    }
    Ok(raw)
}

/// Read a non-empty 1-D float32/float64 array (scores) as f64.
pub fn read_f64_vector(path: &Path) -> Result<Vec<f64>, NpyError> {
    let raw = read_checked(path, 1, true)?;
    Ok(decode_f64(&raw))
}

/// Read a non-empty 2-D float32/float64 C-order array (logits N x K, features N x D) as f64.
pub fn read_f64_matrix(path: &Path) -> Result<Array2<f64>, NpyError> {
    let raw = read_checked(path, 2, true)?;
    let (r, c) = (raw.header.shape[0], raw.header.shape[1]);
    Ok(Array2::from_shape_vec((r, c), decode_f64(&raw))
        .expect("payload length checked against shape"))
}

/// Read a non-empty 1-D int32/int64/uint8 array (class labels) as i64.
pub fn read_labels(path: &Path) -> Result<Vec<i64>, NpyError> {
    let raw = read_checked(path, 1, false)?;
    Ok(decode_i64(&raw))
}

/// Read only the header (for tools that report shapes).
pub fn read_header(path: &Path) -> Result<Header, NpyError> {
    Ok(read_raw(path)?.header)
}

/// Header bytes for a little-endian C-order version 1.0 file, padded to a multiple of 64.
fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = fmt_shape(shape);
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(unpadded + pad);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

fn write_npy(
    path: &Path,
    descr: &str,
    shape: &[usize],
    payload: impl FnOnce(&mut Vec<u8>),
) -> Result<(), NpyError> {
    let mut buf = header_bytes(descr, shape);
    payload(&mut buf);
    write_atomic::<NpyError>(path, |w| {
        w.write_all(&buf)
            .map_err(|e| NpyError::new(path, NpyErrorKind::Io(e)))
    })
}

/// Write a 1-D float64 array.
pub fn write_f64_vector(path: &Path, values: &[f64]) -> Result<(), NpyError> {
    write_npy(path, "<f8", &[values.len()], |buf| {
        buf.reserve(values.len() * 8);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

/// Write a 1-D float32 array (for tests and fixtures that mimic framework exports).
pub fn write_f32_vector(path: &Path, values: &[f32]) -> Result<(), NpyError> {
    write_npy(path, "<f4", &[values.len()], |buf| {
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

/// Write a 2-D float64 C-order array.
pub fn write_f64_matrix(path: &Path, m: &Array2<f64>) -> Result<(), NpyError> {
    write_npy(path, "<f8", &[m.nrows(), m.ncols()], |buf| {
        buf.reserve(m.len() * 8);
        for v in m.iter() {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

/// Write a 1-D uint8 array (accept/reject flags).
pub fn write_u8_vector(path: &Path, values: &[u8]) -> Result<(), NpyError> {
    write_npy(path, "|u1", &[values.len()], |buf| {
        buf.extend_from_slice(values)
    })
}

/// Write a 1-D int64 array (class labels).
pub fn write_i64_vector(path: &Path, values: &[i64]) -> Result<(), NpyError> {
    write_npy(path, "<i8", &[values.len()], |buf| {
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_file(dir: &Path, name: &str, header: &str, payload: &[u8]) -> PathBuf {
        let path = dir.join(name);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(payload);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn roundtrip_vector_matrix_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.npy");
        write_f64_vector(&p, &[1.5, -2.0, 3.25]).unwrap();
        assert_eq!(read_f64_vector(&p).unwrap(), vec![1.5, -2.0, 3.25]);
        // header padded so the data starts on a 64-byte boundary, like NumPy
        assert_eq!((std::fs::read(&p).unwrap().len() - 24) % 64, 0);

        let m = Array2::from_shape_vec((2, 3), vec![1., 2., 3., 4., 5., 6.]).unwrap();
        let p = dir.path().join("m.npy");
        write_f64_matrix(&p, &m).unwrap();
        assert_eq!(read_f64_matrix(&p).unwrap(), m);

        let p = dir.path().join("l.npy");
        write_i64_vector(&p, &[0, 7, -1]).unwrap();
        assert_eq!(read_labels(&p).unwrap(), vec![0, 7, -1]);

        let p = dir.path().join("f.npy");
        write_f32_vector(&p, &[0.5, 0.25]).unwrap();
        assert_eq!(read_f64_vector(&p).unwrap(), vec![0.5, 0.25]);
    }

    #[test]
    fn big_endian_and_u8_and_i32() {
        let dir = tempfile::tempdir().unwrap();
        let p = raw_file(
            dir.path(),
            "be.npy",
            "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }\n",
            &2.5f64.to_be_bytes(),
        );
        assert_eq!(read_f64_vector(&p).unwrap(), vec![2.5]);
        let p = raw_file(
            dir.path(),
            "utf.npy",
            "{'descr': 'é4', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 4],
        );
        assert!(read_f64_vector(&p)
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype"));
        let p = raw_file(
            dir.path(),
            "u.npy",
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n",
            &[3, 255],
        );
        assert_eq!(read_labels(&p).unwrap(), vec![3, 255]);
        let mut payload = 5i32.to_le_bytes().to_vec();
        payload.extend_from_slice(&(-2i32).to_le_bytes());
        let p = raw_file(
            dir.path(),
            "i.npy",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }\n",
            &payload,
        );
        assert_eq!(read_labels(&p).unwrap(), vec![5, -2]);
    }

    #[test]
    fn refusals_name_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let msg = |r: Result<Vec<f64>, NpyError>| r.unwrap_err().to_string();

        let p = raw_file(
            d,
            "fort.npy",
            "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 2), }\n",
            &[0; 16],
        );
        let e = read_f64_matrix(&p).unwrap_err().to_string();
        assert!(e.contains("fort.npy") && e.contains("Fortran"), "{e}");

        let p = raw_file(
            d,
            "i2.npy",
            "{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }\n",
            &[0; 4],
        );
        let e = msg(read_f64_vector(&p));
        assert!(
            e.contains("i2.npy") && e.contains("unsupported dtype '<i2'"),
            "{e}"
        );

        let p = raw_file(
            d,
            "int.npy",
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 8],
        );
        let e = msg(read_f64_vector(&p));
        assert!(
            e.contains("int.npy") && e.contains("expected float32 or float64"),
            "{e}"
        );

        let p = raw_file(
            d,
            "two.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }\n",
            &[0; 8],
        );
        let e = msg(read_f64_vector(&p));
        assert!(
            e.contains("two.npy") && e.contains("expected a 1-D array, found shape (1, 1)"),
            "{e}"
        );

        let p = raw_file(
            d,
            "trunc.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }\n",
            &[0; 20],
        );
        let e = msg(read_f64_vector(&p));
        assert!(
            e.contains("trunc.npy")
                && e.contains("truncated: header announces 24 data bytes, file holds 20"),
            "{e}"
        );

        let p = raw_file(
            d,
            "long.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 9],
        );
        assert!(msg(read_f64_vector(&p)).contains("1 unexpected bytes"));

        let p = raw_file(
            d,
            "empty.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (0,), }\n",
            &[],
        );
        let e = msg(read_f64_vector(&p));
        assert!(e.contains("empty.npy: array is empty (shape (0,))"), "{e}");

        let p = d.join("text.npy");
        std::fs::write(&p, "hello world, not numpy").unwrap();
        assert!(msg(read_f64_vector(&p)).contains("not a .npy file"));

        let e = msg(read_f64_vector(&d.join("missing.npy")));
        assert!(
            e.contains("missing.npy") && e.contains("No such file"),
            "{e}"
        );

        // header cut short
        let p = d.join("cut.npy");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0, 100, 0]);
        bytes.extend_from_slice(b"{'descr'");
        std::fs::write(&p, bytes).unwrap();
        assert!(msg(read_f64_vector(&p)).contains("file ends inside the header"));
    }

    #[test]
    fn huge_shapes_are_refused_not_allocated() {
        let dir = tempfile::tempdir().unwrap();
        let p = raw_file(
            dir.path(),
            "huge.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }\n",
            &[],
        );
        assert!(read_f64_vector(&p)
            .unwrap_err()
            .to_string()
            .contains("shape overflows"));
        let p = raw_file(
            dir.path(),
            "big.npy",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000,), }\n",
            &[0; 8],
        );
        assert!(read_f64_vector(&p)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    proptest::proptest! {
        /// Arbitrary bytes after a valid magic, or a mangled valid file: an error, never a panic.
        #[test]
        fn garbage_never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200), cut in 0usize..200, flip in 0usize..200) {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("g.npy");
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            std::fs::write(&p, &bytes).unwrap();
            let _ = read_f64_vector(&p);
            let _ = read_labels(&p);
            let _ = read_f64_matrix(&p);
            // a valid file, truncated at `cut` and with one byte flipped
            let q = dir.path().join("v.npy");
            write_f64_matrix(&q, &Array2::from_shape_vec((2, 3), vec![1.0; 6]).unwrap()).unwrap();
            let mut good = std::fs::read(&q).unwrap();
            let i = flip % good.len();
            good[i] ^= 0x5a;
            good.truncate(good.len().min(cut + 6));
            std::fs::write(&q, &good).unwrap();
            let _ = read_f64_matrix(&q);
            let _ = read_f64_vector(&q);
        }
    }

    #[test]
    fn header_parser_accepts_numpy_spellings() {
        let h = parse_header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n")
            .unwrap();
        assert_eq!(h.shape, vec![3, 4]);
        let h = parse_header("{\"shape\": (5,), \"fortran_order\": False, \"descr\": \"<f8\"}")
            .unwrap();
        assert_eq!(
            h,
            Header {
                descr: "<f8".into(),
                fortran_order: false,
                shape: vec![5]
            }
        );
        assert!(parse_header("{'descr': '<f8', 'shape': (1,)}").is_err());
    }
}
