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
    Ok(scan(net, loader, device)?.0)
}

/// `-E` of every image of `loader` and, when it yields labels, the accuracy (one pass).
fn scan(net: &WideResNet, loader: &BatchLoader, device: Device) -> Result<(Vec<f64>, Option<f64>)> {
    let mut out = Vec::new();
    let (mut correct, mut labelled) = (0i64, 0i64);
    for batch in loader.epoch(0) {
        let (x, y) = batch_tensors(&batch?, device)?;
        let logits = tch::no_grad(|| net.forward(&x, false));
        if let Some(y) = y {
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(tch::Kind::Int64)
                .int64_value(&[]);
            labelled += y.size()[0];
        }
        let e = energy(&logits);
        let v: Vec<f64> = Vec::try_from(-e.to_kind(tch::Kind::Double).to_device(Device::Cpu))
            .map_err(|e| Error::torch("reading energies", e))?;
        out.extend(v);
    }
    let accuracy = (labelled > 0).then(|| correct as f64 / labelled as f64);
    Ok((out, accuracy))
}

/// What [`energy_validation`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergyValidation {
    /// Mean FPR (at 95% TPR) of `-E` over the validation OOD sets.
    pub mean_fpr: f64,
    pub per_set: Vec<(String, Metrics)>,
    /// Accuracy on the ID validation images when their loader yields labels.
    pub id_accuracy: Option<f64>,
}

/// Metrics of `-E` with `id` as in-distribution against each named OOD loader, their mean FPR
/// ([`ood_core::selection::validate`]), and the ID accuracy when `id` is labelled.
pub fn energy_validation(
    net: &WideResNet,
    id: &BatchLoader,
    oods: &[(String, BatchLoader)],
    device: Device,
) -> Result<EnergyValidation> {
    if oods.is_empty() {
        return Err(SelectionError::NoValidationOod.into());
    }
    let (id_scores, id_accuracy) = scan(net, id, device)?;
    let ood_scores = oods
        .iter()
        .map(|(_, loader)| negative_energies(net, loader, device))
        .collect::<Result<Vec<_>>>()?;
    let v = validate(&id_scores, &ood_scores, &MetricsConfig::default())?;
    let names = oods.iter().map(|(n, _)| n.clone());
    Ok(EnergyValidation {
        mean_fpr: v.mean_fpr,
        per_set: names.zip(v.per_set).collect(),
        id_accuracy,
    })
}
