//! Writing `.npy` files: [`NpyWriter`] streams the elements of an array whose shape is known
//! up front (extract writes logits batch by batch), through an [`AtomicFile`]; the one-shot
//! `write_*` helpers use it too.

use std::io::Write;
use std::path::Path;

use ndarray::Array2;

use super::header::header_bytes;
use super::{Dtype, NpyError, NpyErrorKind};
use crate::io::{AtomicFile, IoError};

/// A Rust type stored as one `.npy` element (little-endian).
pub trait Element: Copy {
    const DTYPE: Dtype;
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: Dtype = $d;
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(u8, Dtype::U8);
element!(i8, Dtype::I8);
element!(i32, Dtype::I32);
element!(i64, Dtype::I64);
element!(f32, Dtype::F32);
element!(f64, Dtype::F64);

/// Writes a C-order array of `T` whose shape is declared at creation, in blocks of any size.
/// [`NpyWriter::finish`] checks that exactly the declared number of elements came and renames
/// the file into place; dropped unfinished, it leaves no file behind and the old one untouched.
#[derive(Debug)]
pub struct NpyWriter<T: Element> {
    file: AtomicFile,
    declared: u64,
    written: u64,
    buf: Vec<u8>,
    _t: std::marker::PhantomData<T>,
}

impl<T: Element> NpyWriter<T> {
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self, NpyError> {
        let declared = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| NpyError::new(path, NpyErrorKind::Overflow(shape.to_vec())))?;
        let mut file = AtomicFile::create(path)?;
        file.writer()
            .write_all(&header_bytes(T::DTYPE, shape))
            .map_err(|e| IoError::new(path, e))?;
        Ok(Self {
            file,
            declared,
            written: 0,
            buf: Vec::new(),
            _t: std::marker::PhantomData,
        })
    }

    /// Elements written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Append `values` (in C order).
    pub fn push(&mut self, values: &[T]) -> Result<(), NpyError> {
        let path = self.file.path();
        if self.written + values.len() as u64 > self.declared {
            return Err(NpyError::new(
                path,
                NpyErrorKind::Overfull {
                    declared: self.declared,
                },
            ));
        }
        self.buf.clear();
        self.buf.reserve(values.len() * T::DTYPE.size());
        for &v in values {
            v.put_le(&mut self.buf);
        }
        let path = path.to_path_buf();
        self.file
            .writer()
            .write_all(&self.buf)
            .map_err(|e| IoError::new(path, e))?;
        self.written += values.len() as u64;
        Ok(())
    }

    /// Check the element count, sync and rename into place.
    pub fn finish(self) -> Result<(), NpyError> {
        if self.written != self.declared {
            return Err(NpyError::new(
                self.file.path(),
                NpyErrorKind::Incomplete {
                    declared: self.declared,
                    written: self.written,
                },
            ));
        }
        Ok(self.file.commit()?)
    }
}

/// Write a whole array of `shape` (`values.len()` must be its element count).
pub fn write_array<T: Element>(path: &Path, shape: &[usize], values: &[T]) -> Result<(), NpyError> {
    let mut w = NpyWriter::<T>::create(path, shape)?;
    w.push(values)?;
    w.finish()
}

/// Write a 1-D float64 array.
pub fn write_f64_vector(path: &Path, values: &[f64]) -> Result<(), NpyError> {
    write_array(path, &[values.len()], values)
}

/// Write a 1-D float32 array (for tests and fixtures that mimic framework exports).
pub fn write_f32_vector(path: &Path, values: &[f32]) -> Result<(), NpyError> {
    write_array(path, &[values.len()], values)
}

/// Write a 2-D float64 C-order array.
pub fn write_f64_matrix(path: &Path, m: &Array2<f64>) -> Result<(), NpyError> {
    let shape = [m.nrows(), m.ncols()];
    match m.as_slice() {
        Some(s) => write_array(path, &shape, s),
        None => write_array(path, &shape, &m.iter().copied().collect::<Vec<_>>()),
    }
}

/// Write a 1-D uint8 array (accept/reject flags).
pub fn write_u8_vector(path: &Path, values: &[u8]) -> Result<(), NpyError> {
    write_array(path, &[values.len()], values)
}

/// Write a 1-D int64 array (class labels).
pub fn write_i64_vector(path: &Path, values: &[i64]) -> Result<(), NpyError> {
    write_array(path, &[values.len()], values)
}
