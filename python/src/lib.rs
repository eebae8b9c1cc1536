//! `energy_ood._core`: the PyO3 bindings of the framework-free core (ood-core).
//!
//! The Python package (`energy_ood/`) converts user input to C-contiguous float64 arrays by one
//! written rule (see `energy_ood/_arrays.py`), so float64 input reaches Rust without a copy;
//! the bindings still accept any strides. All heavy work runs with the GIL released
//! (`Python::detach`, formerly `allow_threads`), and every core error becomes a `ValueError`
//! carrying the core's message (which names the first bad index, the shapes, ...).

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

mod detector;
mod files;
mod metrics;
mod scores;
mod zoo_model;

/// A core error as a Python `ValueError` with the error's own message and its sources.
pub(crate) fn value_error(e: impl std::error::Error) -> PyErr {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        src = s.source();
    }
    PyValueError::new_err(msg)
}

/// A 1-D array as one contiguous slice (the Python layer makes it so; refuse anything else).
pub(crate) fn slice1<'a>(a: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    a.as_slice().map_err(|_| {
        PyTypeError::new_err(format!("{name} must be an aligned, contiguous 1-D array"))
    })
}

/// A 2-D array as an ndarray view (any strides); unaligned memory is refused, since a view of
/// it would be undefined behaviour (the Python layer copies such arrays first).
pub(crate) fn view2<'a>(
    a: &'a PyReadonlyArray2<'_, f64>,
    name: &str,
) -> PyResult<ndarray::ArrayView2<'a, f64>> {
    if !a.is_aligned() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an aligned array"
        )));
    }
    Ok(a.as_array())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    scores::register(m)?;
    metrics::register(m)?;
    detector::register(m)?;
    files::register(m)?;
    zoo_model::register(m)?;
    Ok(())
}
