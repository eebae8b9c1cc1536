//! The detector zoo of the core (`ood_core::detectors`: ReAct, ASH, SCALE, DICE, GEN, entropy,
//! KL-matching, KNN, ViM, Mahalanobis on features, RMDS, SHE, GradNorm) behind one pyclass.
//!
//! Hyper-parameters cross the boundary as the core's own serde form of `Params` (JSON such as
//! `{"method": "react", "percentile": 90.0}`), so the core is the one place they are parsed and
//! validated; the fitted model is the core's `Fitted`, saved and loaded only by the core's
//! `Fitted::save` / `Fitted::load` (its `eood-detector` JSON, or safetensors for KNN), so a
//! file written here loads in Rust and back. Fitting and scoring run with the GIL released.

use std::path::{Path, PathBuf};

use ndarray::ArrayView2;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use ood_core::detectors::mahalanobis::Stored;
use ood_core::detectors::{FitData, Fitted, Head, Inputs, MahalanobisFeatures, Params};
use ood_core::scores::mahalanobis::MahalanobisFile;
use ood_core::scores::Mahalanobis;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{value_error, view2};

/// Parse and validate the core's `Params` JSON; serde's message names the bad field.
fn parse_params(params: &str) -> PyResult<Params> {
    let p: Params = serde_json::from_str(params)
        .map_err(|e| PyValueError::new_err(format!("detector parameters {params}: {e}")))?;
    p.validate().map_err(value_error)?;
    Ok(p)
}

/// Check hyper-parameters without fitting (the Python constructors call this).
#[pyfunction]
fn validate_params(params: &str) -> PyResult<()> {
    parse_params(params).map(|_| ())
}

fn opt_view<'a>(
    a: &'a Option<PyReadonlyArray2<'_, f64>>,
    name: &str,
) -> PyResult<Option<ArrayView2<'a, f64>>> {
    a.as_ref().map(|a| view2(a, name)).transpose()
}

/// W (K x D) and b (K) as the core's `Head`; both or neither.
fn head(
    weight: &Option<PyReadonlyArray2<'_, f64>>,
    bias: &Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<Option<Head>> {
    match (weight, bias) {
        (None, None) => Ok(None),
        (Some(w), Some(b)) => {
            let w = view2(w, "weight")?.to_owned();
            Head::new(w, b.as_array().to_owned())
                .map(Some)
                .map_err(value_error)
        }
        _ => Err(PyValueError::new_err(
            "weight and bias (the last layer W, b) must be given together",
        )),
    }
}

/// A fitted detector of the core's zoo.
#[pyclass(module = "energy_ood._core", name = "ZooModel", frozen)]
pub struct PyZooModel {
    inner: Fitted,
}

#[pymethods]
impl PyZooModel {
    #[staticmethod]
    #[pyo3(signature = (params, features=None, logits=None, labels=None, weight=None, bias=None))]
    fn fit(
        py: Python<'_>,
        params: &str,
        features: Option<PyReadonlyArray2<'_, f64>>,
        logits: Option<PyReadonlyArray2<'_, f64>>,
        labels: Option<PyReadonlyArray1<'_, i64>>,
        weight: Option<PyReadonlyArray2<'_, f64>>,
        bias: Option<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<Self> {
        let params = parse_params(params)?;
        let head = head(&weight, &bias)?;
        let labels = labels
            .as_ref()
            .map(|l| {
                l.as_slice()
                    .map_err(|_| PyTypeError::new_err("labels must be a contiguous 1-D array"))
            })
            .transpose()?;
        let data = FitData {
            features: opt_view(&features, "features")?,
            logits: opt_view(&logits, "logits")?,
            labels,
            head: head.as_ref(),
        };
        let inner = py.detach(|| params.fit(&data)).map_err(value_error)?;
        Ok(Self { inner })
    }

    #[pyo3(signature = (features=None, logits=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        features: Option<PyReadonlyArray2<'py, f64>>,
        logits: Option<PyReadonlyArray2<'py, f64>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let x = Inputs {
            features: opt_view(&features, "features")?,
            logits: opt_view(&logits, "logits")?,
        };
        let out = py.detach(|| self.inner.score(&x)).map_err(value_error)?;
        Ok(out.into_pyarray(py))
    }

    /// The report key (`react`, `ash_s`, `knn`, ...).
    #[getter]
    fn method(&self) -> &'static str {
        self.inner.method().key()
    }

    /// The hyper-parameters it was fitted with, as the core's `Params` JSON.
    #[getter]
    fn params_json(&self) -> String {
        serde_json::to_string(&self.inner.params()).expect("parameters serialize")
    }

    /// The bytes of the core's file (what `save` writes; pickles hold these).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py
            .detach(|| self.inner.to_bytes(Path::new("<bytes>")))
            .map_err(value_error)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Parse the bytes of a core file (every array checked, as `load` does).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        let inner = py
            .detach(|| Fitted::from_bytes(data, Path::new("<bytes>")))
            .map_err(value_error)?;
        Ok(Self { inner })
    }

    /// A `mahalanobis_features` model from the `eood-mahalanobis` JSON of
    /// `eood mahalanobis fit` of earlier versions (the same fit: class means and the tied covariance).
    #[staticmethod]
    fn from_mahalanobis_json(text: &str) -> PyResult<Self> {
        let file: MahalanobisFile = serde_json::from_str(text).map_err(|e| {
            value_error(ood_core::io::IoError::new(
                Path::new("<mahalanobis json>"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            ))
        })?;
        let model = Mahalanobis::from_file(file).map_err(value_error)?;
        Ok(Self {
            inner: Fitted::MahalanobisFeatures(MahalanobisFeatures {
                model: Stored(model),
            }),
        })
    }

    /// Write the core's file (atomically; device nodes and directories are refused).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.inner.save(&path)).map_err(value_error)
    }

    /// Read a file of `save` or of the core (`Fitted::save`, `eood` fit commands).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let inner = py.detach(|| Fitted::load(&path)).map_err(value_error)?;
        Ok(Self { inner })
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate_params, m)?)?;
    m.add_class::<PyZooModel>()
}
