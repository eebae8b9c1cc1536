//! `eood bench`'s model flags ([`BenchModelArgs`], [`PresetArchArgs`]) and `--mean/--std`
//! ([`NormalizeArgs`]); only with the `nn` feature.
use std::path::PathBuf;

use anyhow::bail;

use super::ModelRef;

/// `eood bench`'s models in the [`ModelArgs`] grammar: the pre-trained model is `--checkpoint`
/// or `--state-dict` (or `--shipped`); each fine-tuned model the same two ways under its prefix,
/// `--oe-checkpoint | --oe-state-dict` and `--energy-ft-checkpoint | --energy-ft-state-dict`.
/// A model not given is trained by the run. `--torchscript`/`--onnx` are not taken: ODIN,
/// Mahalanobis and fine-tuning need the WideResNet itself.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BenchModelArgs {
    /// Start from the shipped pre-trained Fashion-MNIST model (models/fmnist-wrn-10-1.json).
    #[arg(long, conflicts_with_all = ["checkpoint", "state_dict"])]
    pub shipped: bool,
    /// The pre-trained model: our checkpoint, its JSON sidecar (`--from-checkpoint` of earlier
    /// versions is a hidden alias).
    #[arg(
        long,
        value_name = "JSON",
        alias = "from-checkpoint",
        conflicts_with = "state_dict"
    )]
    pub checkpoint: Option<PathBuf>,
    /// The pre-trained model: a PyTorch state_dict of the code of record's WideResNet
    /// (--depth/--widen-factor; channels and classes from the data; inputs: --mean/--std).
    #[arg(long, value_name = "PT")]
    pub state_dict: Option<PathBuf>,
    /// Evaluate this OE-fine-tuned checkpoint instead of fine-tuning.
    #[arg(long, value_name = "JSON", conflicts_with = "oe_state_dict")]
    pub oe_checkpoint: Option<PathBuf>,
    /// Evaluate this OE-fine-tuned PyTorch state_dict instead of fine-tuning.
    #[arg(long, value_name = "PT")]
    pub oe_state_dict: Option<PathBuf>,
    /// Evaluate this energy-fine-tuned checkpoint instead of fine-tuning.
    #[arg(long, value_name = "JSON", conflicts_with = "energy_ft_state_dict")]
    pub energy_ft_checkpoint: Option<PathBuf>,
    /// Evaluate this energy-fine-tuned PyTorch state_dict instead of fine-tuning.
    #[arg(long, value_name = "PT")]
    pub energy_ft_state_dict: Option<PathBuf>,
}

impl BenchModelArgs {
    fn pick<'a>(ckpt: &'a Option<PathBuf>, sd: &'a Option<PathBuf>) -> Option<ModelRef<'a>> {
        match (ckpt, sd) {
            (Some(p), _) => Some(ModelRef::Checkpoint(p)),
            (None, Some(p)) => Some(ModelRef::StateDict(p)),
            (None, None) => None,
        }
    }

    /// The pre-trained model given as a file (`--shipped` is the caller's to resolve).
    pub fn pretrained(&self) -> Option<ModelRef<'_>> {
        Self::pick(&self.checkpoint, &self.state_dict)
    }

    pub fn oe(&self) -> Option<ModelRef<'_>> {
        Self::pick(&self.oe_checkpoint, &self.oe_state_dict)
    }

    pub fn energy_ft(&self) -> Option<ModelRef<'_>> {
        Self::pick(&self.energy_ft_checkpoint, &self.energy_ft_state_dict)
    }
}

/// `eood bench`'s WideResNet (of `--state-dict` files and of pretraining): [`ArchArgs`]' flags,
/// each defaulting to the benchmark's preset (`Plan`) instead of WRN-40-2.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PresetArchArgs {
    /// WideResNet depth, 6n+4 from 10 to 1000 (default: the preset's: fmnist-ood 10, CIFAR 40,
    /// SVHN 16).
    #[arg(long)]
    pub depth: Option<i64>,
    /// Width multiplier k, 1 to 64 (default: fmnist-ood 1, CIFAR 2, SVHN 4).
    #[arg(long)]
    pub widen_factor: Option<i64>,
    /// Dropout in [0, 1) (default: fmnist-ood 0, CIFAR 0.3, SVHN 0.4).
    #[arg(long)]
    pub dropout: Option<f64>,
}

impl PresetArchArgs {
    /// `preset` with the given values, validated as `ArchArgs::config` does.
    pub fn apply(&self, preset: &ood_nn::WrnConfig) -> anyhow::Result<ood_nn::WrnConfig> {
        use anyhow::Context;
        let config = ood_nn::WrnConfig {
            depth: self.depth.unwrap_or(preset.depth),
            widen_factor: self.widen_factor.unwrap_or(preset.widen_factor),
            dropout: self.dropout.unwrap_or(preset.dropout),
            ..preset.clone()
        };
        config
            .validate()
            .context("--depth/--widen-factor/--dropout")?;
        Ok(config)
    }
}

/// `--mean/--std`: the per-channel normalisation of [0, 1] pixels a model was trained with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NormalizeArgs {
    /// Per-channel mean of [0, 1] pixels fed to models that record none (a --state-dict, and
    /// the model the run pretrains), comma-separated: one value for every channel, or one per
    /// channel (default: the benchmark's: none for SVHN, CIFAR's constants for CIFAR).
    #[arg(
        long,
        value_name = "M[,M,..]",
        requires = "std",
        allow_hyphen_values = true
    )]
    pub mean: Option<String>,
    /// Per-channel standard deviation, each positive and finite (with --mean).
    #[arg(
        long,
        value_name = "S[,S,..]",
        requires = "mean",
        allow_hyphen_values = true
    )]
    pub std: Option<String>,
}

impl NormalizeArgs {
    /// The normalisation for `channels`-channel images: 1 value is used for every channel;
    /// otherwise exactly `channels` values; means finite, stds finite and positive.
    pub fn normalize(
        &self,
        channels: usize,
    ) -> anyhow::Result<Option<ood_data::transforms::Normalize>> {
        let (Some(mean), Some(std)) = (&self.mean, &self.std) else {
            return Ok(None);
        };
        let values = |flag: &str, s: &str| -> anyhow::Result<Vec<f32>> {
            let v = s
                .split(',')
                .map(|x| {
                    x.trim().parse::<f32>().map_err(|_| {
                        anyhow::anyhow!("{flag}: {:?} is not a number", shown(x.trim()))
                    })
                })
                .collect::<anyhow::Result<Vec<f32>>>()?;
            match v.len() {
                1 => Ok(vec![v[0]; channels]),
                n if n == channels => Ok(v),
                n if channels == 1 => bail!("{flag}: {n} values for 1-channel images (give 1)"),
                n => {
                    bail!("{flag}: {n} values for {channels}-channel images (give 1 or {channels})")
                }
            }
        };
        let (mean, std) = (values("--mean", mean)?, values("--std", std)?);
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            bail!("--mean must be finite, got {m}");
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("--std must be positive and finite, got {s}");
        }
        Ok(Some(ood_data::transforms::Normalize { mean, std }))
    }
}

/// At most 20 characters of a user's value, for error messages.
fn shown(s: &str) -> String {
    s.chars().take(20).collect()
}
