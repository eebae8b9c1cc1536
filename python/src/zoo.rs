//! Fitted detectors of the core, one small pyclass each: `fit` (a static constructor),
//! `score`, and `to_json`/`from_json` (the core's own file format, which pickling and
//! `save`/`load` use). The Python classes in `energy_ood/detectors.py` wrap these; adding a
//! method of the detector zoo is one more pyclass here and one small class there.

use std::path::Path;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use ood_core::scores::mahalanobis::MahalanobisFile;
use ood_core::scores::{Mahalanobis, MahalanobisParams};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::{value_error, view2};

/// Mahalanobis on features (Lee et al. 2018): class means, one tied covariance.
#[pyclass(module = "energy_ood._core", name = "Mahalanobis", frozen)]
pub struct PyMahalanobis {
    inner: Mahalanobis,
}

#[pymethods]
impl PyMahalanobis {
    #[staticmethod]
    #[pyo3(signature = (features, labels, shrinkage = 0.0))]
    fn fit(
        py: Python<'_>,
        features: PyReadonlyArray2<'_, f64>,
        labels: PyReadonlyArray1<'_, i64>,
        shrinkage: f64,
    ) -> PyResult<Self> {
        let view = view2(&features, "features")?;
        let labels = labels
            .as_slice()
            .map_err(|_| PyTypeError::new_err("labels must be a contiguous 1-D array"))?;
        let inner = py
            .detach(|| MahalanobisParams { shrinkage }.fit(view, labels))
            .map_err(value_error)?;
        Ok(Self { inner })
    }

    fn score<'py>(
        &self,
        py: Python<'py>,
        features: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let view = view2(&features, "features")?;
        let out = py
            .detach(|| crate::par::par_rows(view, |part| self.inner.score(part)))
            .map_err(value_error)?;
        Ok(out.into_pyarray(py))
    }

    #[getter]
    fn dims(&self) -> usize {
        self.inner.dims()
    }

    /// The JSON file of `eood mahalanobis fit` (format `eood-mahalanobis`).
    fn to_json(&self) -> String {
        serde_json::to_string(&self.inner.to_file()).expect("fitted detector serializes")
    }

    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        let file: MahalanobisFile = serde_json::from_str(text).map_err(|e| {
            value_error(ood_core::io::IoError::new(
                Path::new("<mahalanobis json>"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            ))
        })?;
        let inner = Mahalanobis::from_file(file).map_err(value_error)?;
        Ok(Self { inner })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMahalanobis>()
}
