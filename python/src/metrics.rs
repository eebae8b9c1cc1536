//! Metrics and the paper's protocol (ood_core::metrics, ood_core::protocol).

use numpy::PyReadonlyArray1;
use ood_core::protocol::{evaluate_table, ProtocolConfig};
use ood_core::{Convention, MetricsConfig};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::{slice1, value_error};

fn config(tpr: f64, convention: &str) -> PyResult<MetricsConfig> {
    let convention: Convention = convention.parse().map_err(PyValueError::new_err)?;
    Ok(MetricsConfig { convention, tpr })
}

/// (fpr, auroc, aupr_in, aupr_out, detection_error) as fractions.
#[pyfunction]
#[pyo3(signature = (id_scores, ood_scores, tpr = 0.95, convention = "paper"))]
fn metrics(
    py: Python<'_>,
    id_scores: PyReadonlyArray1<'_, f64>,
    ood_scores: PyReadonlyArray1<'_, f64>,
    tpr: f64,
    convention: &str,
) -> PyResult<[f64; 5]> {
    let cfg = config(tpr, convention)?;
    let (id, ood) = (
        slice1(&id_scores, "id_scores")?,
        slice1(&ood_scores, "ood_scores")?,
    );
    let m = py
        .detach(|| ood_core::metrics::evaluate(id, ood, &cfg))
        .map_err(value_error)?;
    Ok(m.to_array())
}

/// The protocol over named OOD sets; returns the core's `Table` as JSON (fractions).
#[pyfunction]
#[pyo3(signature = (id_scores, names, ood_sets, draws = 10, samples = None, seed = 1, tpr = 0.95, convention = "paper"))]
#[allow(clippy::too_many_arguments)]
fn evaluate_json(
    py: Python<'_>,
    id_scores: PyReadonlyArray1<'_, f64>,
    names: Vec<String>,
    ood_sets: Vec<PyReadonlyArray1<'_, f64>>,
    draws: usize,
    samples: Option<usize>,
    seed: u64,
    tpr: f64,
    convention: &str,
) -> PyResult<String> {
    if names.len() != ood_sets.len() {
        return Err(PyValueError::new_err(format!(
            "{} names but {} OOD sets",
            names.len(),
            ood_sets.len()
        )));
    }
    let cfg = ProtocolConfig {
        draws,
        samples,
        seed,
        metrics: config(tpr, convention)?,
    };
    let id = slice1(&id_scores, "id_scores")?;
    let sets = names
        .into_iter()
        .zip(&ood_sets)
        .map(|(n, a)| Ok((n, slice1(a, "ood_scores")?.to_vec())))
        .collect::<PyResult<Vec<_>>>()?;
    let table = py
        .detach(|| evaluate_table(id, &sets, &cfg))
        .map_err(value_error)?;
    serde_json::to_string(&table).map_err(value_error)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_json, m)?)
}
