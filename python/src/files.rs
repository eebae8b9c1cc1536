//! File access for the Python layer through the core's guards, so that Python repeats neither
//! the regular-file check nor the atomic write (`ood_core::io`): `read_file` reads a regular
//! file only (never a FIFO, a device or a directory) of bounded size; `write_file` writes
//! atomically and refuses to replace a device node or a directory.

use std::io::{Read, Write};
use std::path::PathBuf;

use ood_core::io::{check_output, open_regular, write_atomic, IoError};
use ood_core::limits::check_alloc;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::value_error;

/// The bytes of a regular file.
#[pyfunction]
fn read_file<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = py
        .detach(
            || -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
                let (file, len) = open_regular(&path)?;
                check_alloc("file", len as u128, 1)?;
                let mut bytes = Vec::with_capacity(len as usize);
                file.take(len)
                    .read_to_end(&mut bytes)
                    .map_err(|e| IoError::new(&path, e))?;
                Ok(bytes)
            },
        )
        .map_err(|e| value_error(&*e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// Write `data` to `path` atomically (temporary file, fsync, rename).
#[pyfunction]
fn write_file(py: Python<'_>, path: PathBuf, data: &[u8]) -> PyResult<()> {
    py.detach(|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        check_output(&path, &[])?;
        write_atomic::<IoError>(&path, |w| {
            w.write_all(data).map_err(|e| IoError::new(&path, e))
        })?;
        Ok(())
    })
    .map_err(|e| value_error(&*e))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_file, m)?)?;
    m.add_function(wrap_pyfunction!(write_file, m)?)
}
