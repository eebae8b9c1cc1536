//! SVHN cropped digits (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`; Netzer et al.,
//! 2011): MATLAB level-5 MAT-files holding `X` (`uint8`, `32 x 32 x 3 x N`, column-major) and `y`
//! (`N x 1`, labels 1..=10 where 10 means the digit 0).
//!
//! The MAT v5 reader handles what these files contain: the 128-byte header (little-endian,
//! "IM"), `miMATRIX` elements holding numeric arrays, stored plainly or inside zlib-compressed
//! `miCOMPRESSED` elements, and the "small data element" tag form. MAT v7.3 (HDF5) files and
//! big-endian files are rejected with a clear message. Errors inside a compressed element give the
//! element's file offset and the offset in its decompressed stream.

use std::io::Read;
use std::path::Path;

use ndarray::{Array1, Array4};

use super::bytes::{
    checked_product, column_major_to_hwc, read_file, shown, Cursor, MAX_DEFLATE_RATIO,
};
use crate::{Error, ImageSet, Result};

const HEADER: usize = 128;
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MX_UINT8_CLASS: u8 = 9;

/// A numeric MATLAB array: dimensions (column-major), class, and its real part.
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    pub name: String,
    pub dims: Vec<usize>,
    /// MATLAB class code (`mxDOUBLE_CLASS` = 6, `mxUINT8_CLASS` = 9, ...).
    pub class: u8,
    pub data: MatData,
}

/// The real part as stored (MATLAB may store e.g. a double array as `miUINT8` when it fits).
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    U8(Vec<u8>),
    /// Any other numeric storage type, converted.
    F64(Vec<f64>),
}

impl MatData {
    fn len(&self) -> usize {
        match self {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }
}

/// Reads every numeric variable of a MAT v5 file held in memory.
pub fn parse_mat(bytes: &[u8], path: &Path) -> Result<Vec<MatArray>> {
    let mut cur = Cursor::new(bytes, path);
    let text = cur.take(HEADER, "MAT-file header")?;
    if text.starts_with(b"MATLAB 7.3") {
        return Err(cur.error_at(
            0,
            "MAT v7.3 (HDF5) file; only level-5 MAT-files are supported",
        ));
    }
    if !text.starts_with(b"MATLAB 5.0 MAT-file") {
        return Err(cur.error_at(0, "not a MATLAB level-5 MAT-file (header text)"));
    }
    match &text[126..128] {
        b"IM" => {}
        b"MI" => return Err(cur.error_at(126, "big-endian MAT-file is not supported")),
        other => return Err(cur.error_at(126, format!("bad endian indicator {other:02x?}"))),
    }
    let mut vars = Vec::new();
    while cur.remaining() > 0 {
        let at = cur.pos();
        let (ty, n) = tag(&mut cur)?;
        let body = cur.take(n, "data element")?;
        match ty {
            MI_MATRIX => vars.push(parse_matrix(Cursor::with_base(
                body,
                path,
                (at + 8) as u64,
            ))?),
            MI_COMPRESSED => {
                let inner = inflate(body, path, at)?;
                let v = parse_compressed_matrix(&inner, path).map_err(|e| match e {
                    Error::Format {
                        path,
                        offset,
                        message,
                    } => Error::format(
                        path,
                        at as u64,
                        format!(
                            "in the compressed element (decompressed byte {offset}): {message}"
                        ),
                    ),
                    e => e,
                })?;
                vars.push(v);
            }
            other => {
                return Err(cur.error_at(
                    at,
                    format!(
                    "top-level data element of type {other} (expected miMATRIX or miCOMPRESSED)"
                ),
                ))
            }
        }
        // Plain elements are padded to 8 bytes; compressed ones are not.
        if ty == MI_MATRIX {
            let pad = (8 - n % 8) % 8;
            cur.skip(pad, "padding")?;
        }
    }
    Ok(vars)
}

/// Reads a top-level data element tag: `(type, size)`, from the normal or the small form.
fn tag(cur: &mut Cursor<'_>) -> Result<(u32, usize)> {
    let first = cur.u32_le("element tag")?;
    if first >> 16 != 0 {
        // Small data element: size in the upper half, data in the next 4 bytes.
        Ok((first & 0xffff, (first >> 16) as usize))
    } else {
        Ok((first, cur.u32_le("element size")? as usize))
    }
}

/// Reads one sub-element of a matrix: returns (type, bytes) and skips padding to 8 (small
/// elements occupy exactly 8 bytes including their tag).
fn sub_element<'a>(cur: &mut Cursor<'a>, what: &str) -> Result<(u32, &'a [u8])> {
    let first_at = cur.pos();
    let first = cur.u32_le(what)?;
    if first >> 16 != 0 {
        let n = (first >> 16) as usize;
        if n > 4 {
            return Err(cur.error_at(
                first_at,
                format!("small {what} element of {n} bytes (at most 4)"),
            ));
        }
        let b = cur.take(4, what)?;
        Ok((first & 0xffff, &b[..n]))
    } else {
        let n = cur.u32_le(what)? as usize;
        let b = cur.take(n, what)?;
        let pad = (8 - n % 8) % 8;
        cur.skip(pad, "padding")?;
        Ok((first, b))
    }
}

fn inflate(body: &[u8], path: &Path, at: usize) -> Result<Vec<u8>> {
    let fail = |m: String| Error::format(path, at as u64, m);
    let mut dec = flate2::read::ZlibDecoder::new(body);
    // The inner tag declares the size; check it against what the compressed bytes can hold.
    let mut head = [0u8; 8];
    dec.read_exact(&mut head)
        .map_err(|e| fail(format!("compressed element: {e}")))?;
    let declared = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
    let bound = body
        .len()
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1024);
    if declared > bound {
        return Err(fail(format!(
            "compressed element declares {declared} bytes, more than {} compressed bytes can hold",
            body.len()
        )));
    }
    ood_core::limits::check_alloc("compressed element", declared as u128 + 8, 1)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(declared + 8);
    out.extend_from_slice(&head);
    dec.take(declared as u64)
        .read_to_end(&mut out)
        .map_err(|e| fail(format!("corrupt compressed element: {e}")))?;
    if out.len() != declared + 8 {
        return Err(fail(format!(
            "compressed element inflates to {} bytes, its tag declares {declared}",
            out.len() - 8
        )));
    }
    Ok(out)
}

fn parse_compressed_matrix(inner: &[u8], path: &Path) -> Result<MatArray> {
    let mut cur = Cursor::new(inner, path);
    let (ty, n) = tag(&mut cur)?;
    if ty != MI_MATRIX {
        return Err(cur.error_at(
            0,
            format!("compressed element holds type {ty}, not miMATRIX"),
        ));
    }
    let body = cur.take(n, "matrix")?;
    parse_matrix(Cursor::with_base(body, path, 8))
}

fn parse_matrix(mut cur: Cursor<'_>) -> Result<MatArray> {
    let at = cur.pos();
    let (ty, flags) = sub_element(&mut cur, "array flags")?;
    if ty != MI_UINT32 || flags.len() != 8 {
        return Err(cur.error_at(at, "array flags are not 8 bytes of miUINT32"));
    }
    let class = flags[0];
    let complex = flags[1] & 0x08 != 0;
    if !(6..=15).contains(&class) {
        return Err(cur.error_at(
            at + 8,
            format!("MATLAB class {class} is not a numeric array"),
        ));
    }
    if complex {
        return Err(cur.error_at(at + 8, "complex arrays are not supported"));
    }
    let at = cur.pos();
    let (ty, dims_b) = sub_element(&mut cur, "dimensions")?;
    if ty != MI_INT32 || dims_b.len() % 4 != 0 || dims_b.len() < 8 {
        return Err(cur.error_at(at, "dimensions are not at least two miINT32 values"));
    }
    let mut dims = Vec::new();
    for c in dims_b.chunks_exact(4) {
        let d = i32::from_le_bytes(c.try_into().expect("4 bytes"));
        if d < 0 {
            return Err(cur.error_at(at, format!("negative dimension {d}")));
        }
        dims.push(d as usize);
    }
    let at = cur.pos();
    let (ty, name_b) = sub_element(&mut cur, "array name")?;
    if ty != MI_INT8 {
        return Err(cur.error_at(at, "array name is not miINT8"));
    }
    let name = super::pickle::quote(&String::from_utf8_lossy(name_b)).into_owned();
    let count = checked_product(&dims)
        .ok_or_else(|| cur.error_at(at, format!("dimensions {} overflow", shown(&dims))))?;
    let at = cur.pos();
    let (ty, real) = sub_element(&mut cur, "real part")?;
    let size = match ty {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        other => return Err(cur.error_at(at, format!("real part of unsupported type {other}"))),
    };
    if real.len() != count.saturating_mul(size) {
        return Err(cur.error_at(
            at,
            format!(
                "`{name}` has dimensions {} ({count} values) but {} bytes of type {ty}",
                shown(&dims),
                real.len()
            ),
        ));
    }
    let data = if ty == MI_UINT8 {
        MatData::U8(real.to_vec())
    } else {
        let conv = |c: &[u8]| -> f64 {
            match ty {
                MI_INT8 => c[0] as i8 as f64,
                MI_INT16 => i16::from_le_bytes([c[0], c[1]]) as f64,
                MI_UINT16 => u16::from_le_bytes([c[0], c[1]]) as f64,
                MI_INT32 => i32::from_le_bytes(c.try_into().expect("4")) as f64,
                MI_UINT32 => u32::from_le_bytes(c.try_into().expect("4")) as f64,
                MI_SINGLE => f32::from_le_bytes(c.try_into().expect("4")) as f64,
                MI_DOUBLE => f64::from_le_bytes(c.try_into().expect("8")),
                MI_INT64 => i64::from_le_bytes(c.try_into().expect("8")) as f64,
                _ => u64::from_le_bytes(c.try_into().expect("8")) as f64,
            }
        };
        MatData::F64(real.chunks_exact(size).map(conv).collect())
    };
    debug_assert_eq!(data.len(), count);
    Ok(MatArray {
        name,
        dims,
        class,
        data,
    })
}

/// Parses an SVHN `*_32x32.mat` file held in memory into `N x 32 x 32 x 3` images and labels
/// 0..=9 (the file's 10 becomes 0).
pub fn parse_svhn(bytes: &[u8], path: &Path) -> Result<ImageSet> {
    let vars = parse_mat(bytes, path)?;
    let fail = |m: String| Error::format(path, HEADER as u64, m);
    let x = vars
        .iter()
        .find(|v| v.name == "X")
        .ok_or_else(|| fail("no variable `X`".into()))?;
    let y = vars
        .iter()
        .find(|v| v.name == "y")
        .ok_or_else(|| fail("no variable `y`".into()))?;
    let MatData::U8(pixels) = &x.data else {
        return Err(fail("`X` is not stored as uint8".into()));
    };
    if x.class != MX_UINT8_CLASS || x.dims.len() != 4 || !matches!(x.dims[2], 1 | 3) {
        return Err(fail(format!(
            "`X` has dimensions {}, class {}; expected uint8 H x W x C x N",
            shown(&x.dims),
            x.class
        )));
    }
    let (h, w, c, n) = (x.dims[0], x.dims[1], x.dims[2], x.dims[3]);
    let ny: usize = y.dims.iter().product();
    if ny != n || y.dims.iter().filter(|&&d| d != 1).count() > 1 {
        return Err(fail(format!(
            "`y` has dimensions {} for {n} images",
            shown(&y.dims)
        )));
    }
    let raw: Vec<f64> = match &y.data {
        MatData::U8(v) => v.iter().map(|&b| b as f64).collect(),
        MatData::F64(v) => v.clone(),
    };
    let mut labels = Vec::with_capacity(n);
    for (i, &l) in raw.iter().enumerate() {
        if l.fract() != 0.0 || !(1.0..=10.0).contains(&l) {
            return Err(fail(format!("y[{i}] = {l} is not a digit label 1..=10")));
        }
        labels.push(if l == 10.0 { 0 } else { l as i64 });
    }
    let per = h * w * c;
    let mut out = vec![0u8; pixels.len()];
    for (src, dst) in pixels.chunks_exact(per).zip(out.chunks_exact_mut(per)) {
        column_major_to_hwc(src, h, w, c, dst);
    }
    Ok(ImageSet {
        images: Array4::from_shape_vec((n, h, w, c), out).expect("n images"),
        labels: Some(Array1::from(labels)),
    })
}

/// Reads an SVHN `*_32x32.mat` file.
pub fn read_svhn(path: &Path) -> Result<ImageSet> {
    parse_svhn(&read_file(path)?, path)
}
