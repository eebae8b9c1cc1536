//! NumPy `.npy` image arrays (`N x H x W x C` or `N x H x W`, `uint8`, C order), read image by
//! image without loading the file: e.g. the 300K random images outlier file of Hendrycks et
//! al. (`300K_random_images.npy`, `300000 x 32 x 32 x 3`, 0.9 GB).
//!
//! The header is parsed by the workspace's one `.npy` module, `ood_core::io::npy`; this file
//! only checks that it describes images. Images are copied out with positioned reads rather
//! than through a memory map, so a file that is truncated while open gives an error naming it
//! instead of a SIGBUS.

use std::path::Path;

use ndarray::Array3;
use ood_core::io::npy::{self, Dtype, NpyError, NpyErrorKind, NpyFile};
use ood_core::limits::check_alloc;

use crate::{Error, ImageSet, Result};

/// A parsed `.npy` header of a `uint8` image array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// `(N, H, W, C)`; a 3-d array is read as `C = 1`.
    pub shape: (usize, usize, usize, usize),
    pub data_offset: usize,
}

/// Byte offset of the header text in a version 1 file (errors about the dict point there).
const TEXT_AT: u64 = 8;

/// A core `.npy` error as a data-layer error with the byte offset it concerns.
fn from_npy(e: NpyError, data_offset: u64) -> Error {
    let offset = match e.kind {
        NpyErrorKind::Io(source) => return Error::io(e.path, source),
        NpyErrorKind::BadMagic => 0,
        NpyErrorKind::BadVersion(..) => 6,
        NpyErrorKind::Truncated { .. }
        | NpyErrorKind::TrailingBytes { .. }
        | NpyErrorKind::Shrunk
        | NpyErrorKind::OutOfRange { .. } => data_offset,
        _ => TEXT_AT,
    };
    Error::format(e.path, offset, e.kind.to_string())
}

/// Check that a parsed header describes `uint8` images.
fn image_shape(h: &npy::Header, path: &Path) -> Result<(usize, usize, usize, usize)> {
    let fail = |m: String| Error::format(path, TEXT_AT, m);
    if h.dtype != Dtype::U8 {
        return Err(fail(format!("dtype {:?} is not uint8", h.descr())));
    }
    if h.fortran_order {
        return Err(fail("Fortran-order arrays are not supported".into()));
    }
    match *h.shape.as_slice() {
        [n, hh, w] => Ok((n, hh, w, 1)),
        [n, hh, w, c] if (1..=4).contains(&c) => Ok((n, hh, w, c)),
        ref s => Err(fail(format!("shape {s:?} is not N x H x W (x C, C <= 4)"))),
    }
}

/// Parses and validates the header of a `.npy` file whose first bytes are `bytes` and whose
/// length is `file_len` (the whole file in `bytes` when `file_len == bytes.len()`).
pub fn parse_header(bytes: &[u8], file_len: u64, path: &Path) -> Result<NpyHeader> {
    let (h, data_offset) =
        npy::parse_prefix(bytes).map_err(|k| from_npy(NpyError::new(path, k), 0))?;
    let shape = image_shape(&h, path)?;
    let declared = h
        .data_bytes()
        .ok_or_else(|| Error::format(path, TEXT_AT, "shape overflows"))?;
    let actual = file_len.saturating_sub(data_offset as u64);
    if declared != actual {
        return Err(Error::format(
            path,
            data_offset as u64,
            format!(
                "header declares shape {:?} = {declared} bytes but {actual} follow the header",
                h.shape
            ),
        ));
    }
    Ok(NpyHeader { shape, data_offset })
}

/// A `uint8` image array on disk.
pub struct NpyImages {
    file: NpyFile,
    header: NpyHeader,
}

impl std::fmt::Debug for NpyImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyImages")
            .field("path", &self.file.path())
            .field("shape", &self.header.shape)
            .finish()
    }
}

impl NpyImages {
    /// Opens the file (a regular file only) and validates its header against its size.
    pub fn open(path: &Path) -> Result<Self> {
        let file = NpyFile::open(path).map_err(|e| from_npy(e, 0))?;
        let shape = image_shape(file.header(), path)?;
        let header = NpyHeader {
            shape,
            data_offset: file.data_offset() as usize,
        };
        Ok(NpyImages { file, header })
    }

    pub fn path(&self) -> &Path {
        self.file.path()
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

    fn per_image(&self) -> usize {
        let (h, w, c) = self.image_shape();
        h * w * c
    }

    /// Copies image `i` (`H x W x C` bytes) into `out`. Fails if `i >= len()`, if `out` has
    /// another size, or if the file shrank since it was opened.
    pub fn try_read_image(&self, i: usize, out: &mut [u8]) -> Result<()> {
        let per = self.per_image();
        if i >= self.len() || out.len() != per {
            return Err(Error::format(
                self.path(),
                self.header.data_offset as u64,
                format!(
                    "image {i} of {} ({} bytes) asked into {} bytes",
                    self.len(),
                    per,
                    out.len()
                ),
            ));
        }
        let at = (i * per) as u64;
        self.file
            .read_at(at, out)
            .map_err(|e| from_npy(e, self.header.data_offset as u64 + at))
    }

    /// Image `i` as an `H x W x C` array.
    pub fn image(&self, i: usize) -> Result<Array3<u8>> {
        let mut buf = vec![0u8; self.per_image()];
        self.try_read_image(i, &mut buf)?;
        Ok(Array3::from_shape_vec(self.image_shape(), buf).expect("size of one image"))
    }

    /// Copies everything into memory (its size checked against available memory first).
    pub fn to_image_set(&self) -> Result<ImageSet> {
        let total = self.len() as u128 * self.per_image() as u128;
        check_alloc(&self.path().display().to_string(), total, 1)
            .map_err(|e| Error::format(self.path(), 0, e.to_string()))?;
        let mut buf = vec![0u8; total as usize];
        self.file
            .read_at(0, &mut buf)
            .map_err(|e| from_npy(e, self.header.data_offset as u64))?;
        Ok(ImageSet {
            images: ndarray::Array4::from_shape_vec(self.header.shape, buf)
                .expect("size validated at open"),
            labels: None,
        })
    }
}

impl crate::batch::ImageSource for NpyImages {
    fn len(&self) -> usize {
        NpyImages::len(self)
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        NpyImages::image_shape(self)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<()> {
        self.try_read_image(index, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ImageSource;

    #[test]
    fn a_file_truncated_while_open_gives_an_error_not_sigbus() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.npy");
        npy::write_array::<u8>(&p, &[100, 8, 8, 3], &[9u8; 100 * 192]).unwrap();
        let m = NpyImages::open(&p).unwrap();
        let mut buf = vec![0u8; 192];
        m.try_read_image(99, &mut buf).unwrap();
        assert_eq!(buf, vec![9u8; 192]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(m.header.data_offset as u64 + 10 * 192)
            .unwrap();
        // With the old memory map this read raised SIGBUS and killed the process.
        let e = m.try_read_image(99, &mut buf).unwrap_err().to_string();
        assert!(
            e.contains("imgs.npy") && e.contains("file changed while being read"),
            "{e}"
        );
        assert!(m.image(50).is_err() && m.to_image_set().is_err());
        m.try_read_image(9, &mut buf).unwrap();
        // Through the trait too: an error with the file and offset (it used to panic).
        let e = ImageSource::read_image(&m, 99, &mut buf)
            .unwrap_err()
            .to_string();
        let at = m.header.data_offset + 99 * 192;
        assert!(e.contains(&format!("imgs.npy: at byte {at}")), "{e}");
    }

    #[test]
    fn devices_and_fifos_are_refused_at_open() {
        let e = NpyImages::open(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
