//! The calibrated detector G(x) (ood_core::detector): the same JSON file as `eood calibrate`.

use std::path::{Path, PathBuf};

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use ood_core::io::guard;
use ood_core::Detector;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{slice1, value_error};

/// Calibrated threshold detector: accept (in-distribution) iff `score > tau`.
#[pyclass(module = "energy_ood._core", name = "Detector", frozen)]
pub struct PyDetector {
    inner: Detector,
}

#[pymethods]
impl PyDetector {
    /// Choose tau so that `tpr` of the validation scores are accepted (see `eood calibrate`).
    /// `temperature=None` records the CLI's default: 1.0 for energy and msp, none otherwise.
    #[staticmethod]
    #[pyo3(signature = (val_scores, tpr = 0.95, method = "energy", temperature = None))]
    fn calibrate(
        py: Python<'_>,
        val_scores: PyReadonlyArray1<'_, f64>,
        tpr: f64,
        method: &str,
        temperature: Option<f64>,
    ) -> PyResult<Self> {
        let scores = slice1(&val_scores, "val_scores")?;
        let temperature = temperature.or(match method {
            "energy" | "msp" => Some(1.0),
            _ => None,
        });
        let inner = py
            .detach(|| Detector::calibrate(scores, tpr, method, temperature))
            .map_err(value_error)?;
        Ok(Self { inner })
    }

    #[getter]
    fn tau(&self) -> f64 {
        self.inner.tau
    }
    #[getter]
    fn target_tpr(&self) -> f64 {
        self.inner.target_tpr
    }
    #[getter]
    fn accepted_fraction(&self) -> f64 {
        self.inner.accepted_fraction
    }
    #[getter]
    fn method(&self) -> &str {
        &self.inner.method
    }
    #[getter]
    fn temperature(&self) -> Option<f64> {
        self.inner.temperature
    }
    #[getter]
    fn score_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.score_stats;
        let d = PyDict::new(py);
        d.set_item("count", s.count)?;
        d.set_item("mean", s.mean)?;
        d.set_item("std", s.std)?;
        d.set_item("min", s.min)?;
        d.set_item("max", s.max)?;
        Ok(d)
    }

    /// G(x) for finite scores: True = in-distribution. Scores that cannot be of this
    /// detector's method (declared as another `method`, outside its domain, or MSP-like for a
    /// detector calibrated outside [0, 1]) are refused by the core's `check_scores`, as
    /// `eood detect` refuses them.
    #[pyo3(signature = (scores, method = None))]
    fn accept<'py>(
        &self,
        py: Python<'py>,
        scores: PyReadonlyArray1<'py, f64>,
        method: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray1<bool>>> {
        let s = slice1(&scores, "scores")?;
        self.inner.check_scores(s, method).map_err(value_error)?;
        let flags: Vec<bool> = py.detach(|| s.iter().map(|&x| self.inner.accepts(x)).collect());
        Ok(flags.into_pyarray(py))
    }

    /// Write the detector JSON atomically; refuses to replace a directory or a device node.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        guard::check_output(&path, &[]).map_err(value_error)?;
        self.inner.save(&path).map_err(value_error)
    }

    /// Read a detector JSON written by `save` or by `eood calibrate` (regular files only).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Self> {
        guard::open_regular(&path).map_err(value_error)?;
        let inner = Detector::load(&path).map_err(value_error)?;
        Ok(Self { inner })
    }

    fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.inner).expect("detector serializes")
    }

    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        let inner = Detector::parse(text, Path::new("<json>")).map_err(value_error)?;
        Ok(Self { inner })
    }

    /// Pickles as its JSON text.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let from_json = slf.get_type().getattr("from_json")?;
        Ok((from_json, (slf.get().to_json(),)))
    }

    fn __eq__(&self, other: &Self) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        format!(
            "Detector(method={:?}, temperature={}, tau={:?}, target_tpr={:?}, accepted_fraction={:?})",
            self.inner.method,
            self.inner.temperature.map_or("None".into(), |t| format!("{t:?}")),
            self.inner.tau,
            self.inner.target_tpr,
            self.inner.accepted_fraction
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDetector>()
}
