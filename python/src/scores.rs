//! Logit scores: energy, MSP, max-logit (ood_core::scores), one row of K logits -> one number;
//! the core splits the rows over its threads.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use ood_core::scores::Method;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{value_error, view2};

/// Score an N x K logit matrix with `method` (`energy`, `msp` or `maxlogit`).
#[pyfunction]
#[pyo3(signature = (logits, method, temperature = 1.0))]
fn score_logits<'py>(
    py: Python<'py>,
    logits: PyReadonlyArray2<'py, f64>,
    method: &str,
    temperature: f64,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let method: Method = method.parse().map_err(PyValueError::new_err)?;
    let view = view2(&logits, "logits")?;
    let out = py
        .detach(|| method.scorer(temperature).score(view))
        .map_err(value_error)?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(score_logits, m)?)
}
