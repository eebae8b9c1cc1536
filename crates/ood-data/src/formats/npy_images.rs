//! NumPy `.npy` image arrays (`N x H x W x C` or `N x H x W`, `uint8`, C order), memory-mapped:
//! e.g. the 300K random images outlier file of Hendrycks et al. (`300K_random_images.npy`,
//! `300000 x 32 x 32 x 3`, 0.9 GB), read without loading it.
//!
//! The header (magic `\x93NUMPY`, version 1/2/3, a Python dict literal with `descr`,
//! `fortran_order` and `shape`) is parsed here and the declared data size must equal the bytes
//! after the header.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{ArrayView3, ArrayView4};

use super::bytes::{checked_product, Cursor};
use crate::{Error, ImageSet, Result};

/// A parsed `.npy` header of a `uint8` image array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// `(N, H, W, C)`; a 3-d array is read as `C = 1`.
    pub shape: (usize, usize, usize, usize),
    pub data_offset: usize,
}

/// Parses and validates the header of a `.npy` file whose total size is `bytes.len()` (or, with
/// `file_len`, the header bytes alone and the file's length).
pub fn parse_header(bytes: &[u8], file_len: u64, path: &Path) -> Result<NpyHeader> {
    let mut cur = Cursor::new(bytes, path);
    let magic = cur.take(6, "npy magic")?;
    if magic != b"\x93NUMPY" {
        return Err(cur.error_at(0, "not a .npy file (magic)"));
    }
    let major = cur.u8("npy major version")?;
    let _minor = cur.u8("npy minor version")?;
    let header_len = match major {
        1 => cur.u16_le("npy header length")? as usize,
        2 | 3 => cur.u32_le("npy header length")? as usize,
        v => return Err(cur.error_at(6, format!("unsupported .npy version {v}"))),
    };
    let text_at = cur.pos();
    if header_len > 1 << 20 {
        return Err(cur.error_at(8, format!("npy header length {header_len} is implausible")));
    }
    let text = cur.take(header_len, "npy header")?;
    let text = std::str::from_utf8(text)
        .map_err(|e| cur.error_at(text_at + e.valid_up_to(), "npy header is not UTF-8"))?;
    let dict = HeaderDict::parse(text).map_err(|(at, m)| cur.error_at(text_at + at, m))?;
    if !matches!(dict.descr.as_str(), "|u1" | "<u1" | ">u1" | "u1" | "=u1") {
        return Err(cur.error_at(text_at, format!("dtype {:?} is not uint8", dict.descr)));
    }
    if dict.fortran_order {
        return Err(cur.error_at(text_at, "Fortran-order arrays are not supported"));
    }
    let shape = match dict.shape.as_slice() {
        &[n, h, w] => (n, h, w, 1),
        &[n, h, w, c] if (1..=4).contains(&c) => (n, h, w, c),
        s => {
            return Err(cur.error_at(
                text_at,
                format!("shape {s:?} is not N x H x W (x C, C <= 4)"),
            ))
        }
    };
    let data_offset = cur.pos();
    let declared = checked_product(&dict.shape)
        .ok_or_else(|| cur.error_at(text_at, "shape overflows"))? as u64;
    let actual = file_len.saturating_sub(data_offset as u64);
    if declared != actual {
        return Err(cur.error_at(
            data_offset,
            format!(
                "header declares shape {:?} = {declared} bytes but {actual} follow the header",
                dict.shape
            ),
        ));
    }
    Ok(NpyHeader { shape, data_offset })
}

struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl HeaderDict {
    /// Parses `{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }` (any key order,
    /// either quote). Errors carry the byte position in the text.
    fn parse(t: &str) -> std::result::Result<Self, (usize, String)> {
        let b = t.as_bytes();
        let mut i = 0;
        let ws = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_whitespace() {
                *i += 1
            }
        };
        let expect = |i: &mut usize, c: u8| -> std::result::Result<(), (usize, String)> {
            ws(i);
            if *i < b.len() && b[*i] == c {
                *i += 1;
                Ok(())
            } else {
                Err((*i, format!("expected `{}` in npy header", c as char)))
            }
        };
        let string = |i: &mut usize| -> std::result::Result<String, (usize, String)> {
            ws(i);
            let q = *b
                .get(*i)
                .ok_or((*i, "unexpected end of npy header".to_string()))?;
            if q != b'\'' && q != b'"' {
                return Err((*i, "expected a quoted string in npy header".into()));
            }
            let start = *i + 1;
            let end = b[start..]
                .iter()
                .position(|&c| c == q)
                .ok_or((*i, "unterminated string".to_string()))?
                + start;
            *i = end + 1;
            Ok(t[start..end].to_string())
        };
        expect(&mut i, b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            ws(&mut i);
            if b.get(i) == Some(&b'}') {
                break;
            }
            let key_at = i;
            let key = string(&mut i)?;
            expect(&mut i, b':')?;
            ws(&mut i);
            match key.as_str() {
                "descr" => descr = Some(string(&mut i)?),
                "fortran_order" => {
                    if t[i..].starts_with("True") {
                        fortran = Some(true);
                        i += 4;
                    } else if t[i..].starts_with("False") {
                        fortran = Some(false);
                        i += 5;
                    } else {
                        return Err((i, "fortran_order is not True/False".into()));
                    }
                }
                "shape" => {
                    expect(&mut i, b'(')?;
                    let mut dims = Vec::new();
                    loop {
                        ws(&mut i);
                        if b.get(i) == Some(&b')') {
                            i += 1;
                            break;
                        }
                        let start = i;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                        let d: usize = t[start..i]
                            .parse()
                            .map_err(|_| (start, "bad shape dimension".to_string()))?;
                        dims.push(d);
                        ws(&mut i);
                        if b.get(i) == Some(&b',') {
                            i += 1;
                        }
                        if dims.len() > 32 {
                            return Err((start, "more than 32 dimensions".into()));
                        }
                    }
                    shape = Some(dims);
                }
                _ => return Err((key_at, format!("unexpected key {key:?} in npy header"))),
            }
            ws(&mut i);
            if b.get(i) == Some(&b',') {
                i += 1;
            }
        }
        match (descr, fortran, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(HeaderDict {
                descr,
                fortran_order,
                shape,
            }),
            _ => Err((0, "npy header lacks descr, fortran_order or shape".into())),
        }
    }
}

/// A memory-mapped `uint8` image array.
pub struct NpyImages {
    path: PathBuf,
    mmap: Mmap,
    header: NpyHeader,
}

impl std::fmt::Debug for NpyImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyImages")
            .field("path", &self.path)
            .field("shape", &self.header.shape)
            .finish()
    }
}

impl NpyImages {
    /// Maps the file and validates its header against its size. The file must not be modified
    /// while mapped (as with any memory map).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: read-only map of a data file the caller does not modify while it is open.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let header = parse_header(&mmap, mmap.len() as u64, path)?;
        Ok(NpyImages {
            path: path.to_owned(),
            mmap,
            header,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.header.shape.0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(H, W, C)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        let (_, h, w, c) = self.header.shape;
        (h, w, c)
    }

    /// All images as one `N x H x W x C` view into the map.
    pub fn view(&self) -> ArrayView4<'_, u8> {
        ArrayView4::from_shape(self.header.shape, &self.mmap[self.header.data_offset..])
            .expect("size validated at open")
    }

    /// Image `i` as an `H x W x C` view. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> ArrayView3<'_, u8> {
        let (h, w, c) = self.image_shape();
        let per = h * w * c;
        let start = self.header.data_offset + i * per;
        ArrayView3::from_shape((h, w, c), &self.mmap[start..start + per])
            .expect("size validated at open")
    }

    /// Copies everything into memory.
    pub fn to_image_set(&self) -> ImageSet {
        ImageSet {
            images: self.view().to_owned(),
            labels: None,
        }
    }
}

impl crate::batch::ImageSource for NpyImages {
    fn len(&self) -> usize {
        NpyImages::len(self)
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        NpyImages::image_shape(self)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) {
        out.copy_from_slice(self.image(index).as_slice().expect("contiguous"));
    }
}
