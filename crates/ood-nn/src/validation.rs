//! Validation of OOD detection during model selection: the paper's recipe picks fine-tuning
//! hyper-parameters (the energy margins) by the FPR at 95% TPR of the negative free energy on
//! validation OOD sets, never on the test OOD sets.
use ood_core::metrics::{Metrics, MetricsConfig};
use ood_core::selection::{validate, SelectionError};
use ood_data::batch::BatchLoader;
use tch::Device;

use crate::error::{Error, Result};
use crate::losses::energy;
use crate::train::batch_tensors;
use crate::wrn::WideResNet;

/// `-E(x) = logsumexp f(x)` (higher = more in-distribution) for every image of `loader`, in order.
pub fn negative_energies(
    net: &WideResNet,
    loader: &BatchLoader,
    device: Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for batch in loader.epoch(0) {
        let (x, _) = batch_tensors(&batch?, device)?;
        let e = tch::no_grad(|| energy(&net.forward(&x, false)));
        let v: Vec<f64> = Vec::try_from(-e.to_kind(tch::Kind::Double).to_device(Device::Cpu))
            .map_err(|e| Error::torch("reading energies", e))?;
        out.extend(v);
    }
    Ok(out)
}

/// Metrics of `-E` with `id` as in-distribution against each named OOD loader, and the mean FPR
/// ([`ood_core::selection::validate`]).
pub fn energy_validation(
    net: &WideResNet,
    id: &BatchLoader,
    oods: &[(String, BatchLoader)],
    device: Device,
) -> Result<(f64, Vec<(String, Metrics)>)> {
    if oods.is_empty() {
        return Err(SelectionError::NoValidationOod.into());
    }
    let id_scores = negative_energies(net, id, device)?;
    let ood_scores = oods
        .iter()
        .map(|(_, loader)| negative_energies(net, loader, device))
        .collect::<Result<Vec<_>>>()?;
    let v = validate(&id_scores, &ood_scores, &MetricsConfig::default())?;
    let names = oods.iter().map(|(n, _)| n.clone());
    Ok((v.mean_fpr, names.zip(v.per_set).collect()))
}
