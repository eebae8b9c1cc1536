//! Fine-tuning objectives on a concatenated batch: the first `n_in` rows are in-distribution
//! (with targets), the rest are auxiliary outliers.
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Free energy at temperature 1: `E(x) = -logsumexp_k f_k(x)` (Liu et al., NeurIPS 2020, eq. 3).
pub fn energy(logits: &Tensor) -> Tensor {
    -logits.logsumexp([1i64].as_slice(), false)
}

/// Energy-bounded learning objective (Liu et al. 2020, eq. 8-9):
/// `CE(in) + lambda * (mean(relu(E_in - m_in)^2) + mean(relu(m_out - E_out)^2))`.
/// Code of record: lambda 0.1; margins m_in -23 / m_out -5 (CIFAR-10), -27 / -5 (CIFAR-100).
pub fn energy_bounded_loss(
    logits: &Tensor,
    targets: &Tensor,
    n_in: i64,
    m_in: f64,
    m_out: f64,
    lambda: f64,
) -> Tensor {
    let n = logits.size()[0];
    let (id, ood) = (logits.narrow(0, 0, n_in), logits.narrow(0, n_in, n - n_in));
    let ce = cross_entropy(&id, targets);
    let e_in = energy(&id);
    let e_out = energy(&ood);
    let reg = (e_in - m_in).relu().square().mean(None::<Kind>)
        + (-(e_out - m_out)).relu().square().mean(None::<Kind>);
    ce + reg * lambda
}

/// Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) as the code of record writes it:
/// `CE(in) + lambda * mean_out( logsumexp(f) - mean_k f_k )`, the cross-entropy from the softmax
/// to the uniform distribution up to the constant log K. lambda 0.5.
pub fn outlier_exposure_loss(logits: &Tensor, targets: &Tensor, n_in: i64, lambda: f64) -> Tensor {
    let n = logits.size()[0];
    let (id, ood) = (logits.narrow(0, 0, n_in), logits.narrow(0, n_in, n - n_in));
    let ce = cross_entropy(&id, targets);
    let uniform_ce = ood.logsumexp([1i64].as_slice(), false)
        - ood.mean_dim([1i64].as_slice(), false, None::<Kind>);
    ce + uniform_ce.mean(None::<Kind>) * lambda
}

/// Which fine-tuning objective, with its hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loss", rename_all = "snake_case")]
pub enum FinetuneLoss {
    Energy { m_in: f64, m_out: f64, lambda: f64 },
    OutlierExposure { lambda: f64 },
}

impl FinetuneLoss {
    /// The code of record's CIFAR-10 energy setting: m_in -23, m_out -5, lambda 0.1.
    pub fn energy_cifar10() -> Self {
        FinetuneLoss::Energy {
            m_in: -23.0,
            m_out: -5.0,
            lambda: 0.1,
        }
    }
    pub fn outlier_exposure() -> Self {
        FinetuneLoss::OutlierExposure { lambda: 0.5 }
    }

    pub fn compute(&self, logits: &Tensor, targets: &Tensor, n_in: i64) -> Tensor {
        match *self {
            FinetuneLoss::Energy {
                m_in,
                m_out,
                lambda,
            } => energy_bounded_loss(logits, targets, n_in, m_in, m_out, lambda),
            FinetuneLoss::OutlierExposure { lambda } => {
                outlier_exposure_loss(logits, targets, n_in, lambda)
            }
        }
    }
}

/// Mean cross-entropy (the pretraining loss).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.log_softmax(-1, None::<Kind>).nll_loss(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values computed by PyTorch (tests/golden/make_golden.py -> losses.json).
    #[test]
    fn losses_match_pytorch() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/losses.json");
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rows: Vec<Vec<f64>> = serde_json::from_value(g["logits"].clone()).unwrap();
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let logits = Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64]);
        let target: Vec<i64> = serde_json::from_value(g["target"].clone()).unwrap();
        let target = Tensor::from_slice(&target);
        let n_in = g["n_in"].as_i64().unwrap();
        let close = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want.abs().max(1.0);

        let ce = cross_entropy(&logits.narrow(0, 0, n_in), &target).double_value(&[]);
        assert!(close(ce, g["cross_entropy"].as_f64().unwrap()), "{ce}");
        let oe = FinetuneLoss::outlier_exposure()
            .compute(&logits, &target, n_in)
            .double_value(&[]);
        assert!(close(oe, g["oe"].as_f64().unwrap()), "{oe}");
        let mut distinct = Vec::new();
        for case in g["energy"].as_array().unwrap() {
            let (m_in, m_out) = (
                case["m_in"].as_f64().unwrap(),
                case["m_out"].as_f64().unwrap(),
            );
            let loss = FinetuneLoss::Energy {
                m_in,
                m_out,
                lambda: 0.1,
            }
            .compute(&logits, &target, n_in);
            let (got, want) = (loss.double_value(&[]), case["loss"].as_f64().unwrap());
            assert!(
                close(got, want),
                "m_in {m_in} m_out {m_out}: {got} vs PyTorch {want}"
            );
            distinct.push(want);
        }
        // The cases exercise the margins: the regularizer is not zero everywhere.
        assert!(distinct.iter().any(|&v| (v - ce).abs() > 1e-3));
    }

    #[test]
    fn energy_is_negative_logsumexp() {
        let logits = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 2.0]).view([2, 2]);
        let e = energy(&logits);
        assert!((e.double_value(&[0]) + 2f64.ln()).abs() < 1e-12);
        assert!((e.double_value(&[1]) + (1f64.exp() + 2f64.exp()).ln()).abs() < 1e-12);
    }
}
