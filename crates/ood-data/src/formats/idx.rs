//! IDX files (MNIST, Fashion-MNIST, notMNIST, KMNIST), raw or gzip-compressed.
//!
//! Layout (big-endian): two zero bytes, a type code (`0x08` = unsigned byte, the only type these
//! datasets use), the number of dimensions `d`, `d` dimension sizes as `u32`, then the data in
//! row-major order. Image files have `d = 3` (`N x H x W`), label files `d = 1`.
//! Gzip input is recognised by its magic number; offsets in errors then refer to the
//! decompressed stream.

use std::path::Path;

use ndarray::{Array1, Array4};

use super::bytes::{checked_product, gunzip, is_gzip, read_file, Cursor};
use crate::{Error, ImageSet, Result};

const TYPE_U8: u8 = 0x08;

/// A parsed IDX header: dimension sizes and where the data starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    pub dims: Vec<usize>,
    pub data_offset: usize,
}

/// Parses and validates the header of an (uncompressed) IDX buffer: magic, `u8` type, and that
/// the declared data size equals the bytes that follow the header.
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<IdxHeader> {
    parse_header_with(Cursor::new(bytes, path))
}

fn parse_header_with(mut cur: Cursor<'_>) -> Result<IdxHeader> {
    let magic = cur.take(2, "IDX magic")?;
    if magic != [0, 0] {
        return Err(cur.error_at(
            0,
            format!("not an IDX file: magic starts {magic:02x?}, expected [00, 00]"),
        ));
    }
    let type_code = cur.u8("IDX type code")?;
    if type_code != TYPE_U8 {
        return Err(cur.error_at(
            2,
            format!("IDX type code {type_code:#04x} is not 0x08 (unsigned byte)"),
        ));
    }
    let ndim = cur.u8("IDX dimension count")? as usize;
    if ndim == 0 {
        return Err(cur.error_at(3, "IDX dimension count is 0"));
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 0..ndim {
        dims.push(cur.u32_be(&format!("IDX size of dimension {i}"))? as usize);
    }
    let data_offset = cur.pos();
    let declared = checked_product(&dims)
        .ok_or_else(|| cur.error_at(4, format!("IDX dimensions {dims:?} overflow")))?;
    if declared != cur.remaining() {
        return Err(cur.error(format!(
            "IDX header declares {dims:?} = {declared} data bytes but {} follow the header",
            cur.remaining()
        )));
    }
    Ok(IdxHeader { dims, data_offset })
}

fn decompressed<'a>(bytes: &'a [u8], path: &Path) -> Result<(std::borrow::Cow<'a, [u8]>, bool)> {
    if is_gzip(bytes) {
        Ok((gunzip(bytes, path)?.into(), true))
    } else {
        Ok((bytes.into(), false))
    }
}

fn cursor<'a>(data: &'a [u8], path: &'a Path, gz: bool) -> Cursor<'a> {
    let c = Cursor::new(data, path);
    if gz {
        c.with_note("decompressed stream: ")
    } else {
        c
    }
}

/// Parses an IDX image file (raw or gzip) held in memory into `N x H x W x 1`.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Array4<u8>> {
    let (data, gz) = decompressed(bytes, path)?;
    let header = parse_header_with(cursor(&data, path, gz))?;
    if header.dims.len() != 3 {
        return Err(cursor(&data, path, gz).error_at(
            3,
            format!(
                "IDX image file must have 3 dimensions (N x H x W), found {:?}",
                header.dims
            ),
        ));
    }
    let (n, h, w) = (header.dims[0], header.dims[1], header.dims[2]);
    let pixels = match data {
        std::borrow::Cow::Owned(mut v) => {
            v.drain(..header.data_offset);
            v
        }
        std::borrow::Cow::Borrowed(b) => b[header.data_offset..].to_vec(),
    };
    Ok(Array4::from_shape_vec((n, h, w, 1), pixels).expect("size checked against the header"))
}

/// Parses an IDX label file (raw or gzip) held in memory.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Array1<i64>> {
    let (data, gz) = decompressed(bytes, path)?;
    let header = parse_header_with(cursor(&data, path, gz))?;
    if header.dims.len() != 1 {
        return Err(cursor(&data, path, gz).error_at(
            3,
            format!(
                "IDX label file must have 1 dimension, found {:?}",
                header.dims
            ),
        ));
    }
    Ok(data[header.data_offset..]
        .iter()
        .map(|&b| b as i64)
        .collect())
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
