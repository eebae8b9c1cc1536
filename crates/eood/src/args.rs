//! The argument structs every subcommand shares, flattened into its `Args` (clap), so that one
//! flag means one thing everywhere (docs/cli.md lists which command takes which):
//! [`ModelArgs`] (the model, given one way), [`ArchArgs`] (a WideResNet), [`DeviceArgs`],
//! [`RuntimeArgs`] (threads, workers, quiet), [`OptimizerArgs`] and [`CheckpointOutArgs`].
//! Sizes and rates are validated here with `ood_core::limits` before anything is allocated
//! from them; a bad value is one line and exit status 2 (not a clap usage error).
use std::path::{Path, PathBuf};

use anyhow::bail;
use ood_core::limits::{check_range, LimitError};

/// Temperatures accepted by `score` and `calibrate` (the paper uses 1, ODIN up to 1000). Outside
/// this range `T * logsumexp(logits / T)` overflows or loses all precision for real logits.
pub const TEMPERATURE_RANGE: (f64, f64) = (1e-3, 1e6);

/// The one check of a score temperature, shared by `score` and `calibrate`: NaN, zero and
/// negative values get the scorer's own error, then the range applies.
pub fn check_temperature(t: f64) -> anyhow::Result<f64> {
    if !(t.is_finite() && t > 0.0) {
        return Err(ood_core::scores::ScoreError::Temperature(t).into());
    }
    Ok(check_range(
        "--temperature",
        t,
        TEMPERATURE_RANGE.0,
        TEMPERATURE_RANGE.1,
    )?)
}

/// The score a set of scores came from, as `calibrate` records it and `detect` checks it:
/// every detector key of `eood score` (`ood_core::detectors::Method`: energy, msp, maxlogit,
/// react, ash_p, ..., gradnorm) and the input-space methods of `eood extract --method`
/// (`odin`, `mahalanobis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoreMethod {
    Zoo(ood_core::detectors::Method),
    Mahalanobis,
    Odin,
}

impl std::str::FromStr for ScoreMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        use ood_core::detectors::Method;
        match s {
            "mahalanobis" => Ok(ScoreMethod::Mahalanobis),
            "odin" => Ok(ScoreMethod::Odin),
            s => Method::from_key(s).map(ScoreMethod::Zoo).map_err(|_| {
                let keys: Vec<&str> = Method::ALL.iter().map(|m| m.key()).collect();
                format!("expected {}, odin or mahalanobis", keys.join(", "))
            }),
        }
    }
}

impl ScoreMethod {
    /// The name written into detector files (the detector key).
    pub fn name(self) -> &'static str {
        match self {
            ScoreMethod::Zoo(m) => m.key(),
            ScoreMethod::Mahalanobis => "mahalanobis",
            ScoreMethod::Odin => "odin",
        }
    }

    /// Whether the score has a temperature (default 1 when not given).
    pub fn has_temperature(self) -> bool {
        use ood_core::detectors::Method;
        matches!(
            self,
            ScoreMethod::Zoo(Method::Energy | Method::Msp | Method::Gradnorm) | ScoreMethod::Odin
        )
    }
}

/// Default `--workers`: threads preparing batches ahead of the model, for every command.
pub const DEFAULT_WORKERS: usize = 2;

/// Most libtorch threads taken by default (see docs/cli.md for the measurement): on a shared
/// machine libtorch's own default (one thread per core) collapses when other processes compete.
pub const DEFAULT_MAX_THREADS: usize = 4;

/// `--threads`, `--workers`, `--quiet`.
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// libtorch intra-op threads (default: half the cores, at most 4; see docs/cli.md).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Threads preparing batches ahead of the model (0: on the main thread).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// No progress bars or per-epoch lines (the result line is still printed).
    #[arg(long)]
    pub quiet: bool,
}

impl RuntimeArgs {
    /// The thread count to use: `--threads`, validated, or the default.
    pub fn threads(&self) -> Result<usize, LimitError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.threads {
            Some(n) => check_range("--threads", n, 1, 1024),
            None => Ok((cores / 2).clamp(1, DEFAULT_MAX_THREADS)),
        }
    }

    pub fn check(&self) -> anyhow::Result<()> {
        self.threads()?;
        check_range("--workers", self.workers, 0, 256)?;
        Ok(())
    }

    /// Validates and sets libtorch's thread count.
    #[cfg(feature = "nn")]
    pub fn apply(&self) -> anyhow::Result<()> {
        self.check()?;
        ood_nn::tch::set_num_threads(self.threads()? as i32);
        Ok(())
    }

    pub fn progress(&self) -> bool {
        !self.quiet
    }
}

/// Where the network runs, parsed once from `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA device 0 when libtorch sees one, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(format!("expected auto, cpu, cuda or cuda:N, got {s:?}")),
            },
        }
    }
}

/// `--device`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// auto (CUDA device 0 when libtorch sees one, else CPU), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(DeviceChoice))]
    pub device: DeviceChoice,
}

impl DeviceArgs {
    /// The libtorch device; a CUDA device libtorch does not see is refused.
    #[cfg(feature = "nn")]
    pub fn tch(&self) -> anyhow::Result<ood_nn::tch::Device> {
        use ood_nn::tch::{Cuda, Device};
        let i = match self.device {
            DeviceChoice::Auto => return Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => return Ok(Device::Cpu),
            DeviceChoice::Cuda(i) => i,
        };
        let n = Cuda::device_count();
        if (i as i64) >= n {
            bail!(
                "--device cuda:{i}: libtorch sees {n} CUDA device(s){}",
                if ood_nn::LINKS_TORCH_CUDA {
                    ""
                } else {
                    " (this build is not linked with libtorch_cuda)"
                }
            );
        }
        Ok(Device::Cuda(i))
    }
}

/// The model, given exactly one way.
#[derive(clap::Args, Debug, Clone)]
#[group(id = "model", required = true, multiple = false)]
pub struct ModelArgs {
    /// Our checkpoint: its JSON sidecar (`eood train` / `eood finetune` output).
    #[arg(long, value_name = "JSON")]
    pub checkpoint: Option<PathBuf>,
    /// A PyTorch state_dict (torch.save, zip or legacy) of the code of record's WideResNet;
    /// give its architecture with --depth/--widen-factor/--num-classes.
    #[arg(long, value_name = "PT")]
    pub state_dict: Option<PathBuf>,
    /// Any TorchScript classifier (torch.jit.trace/script + save): forward(x) returns logits,
    /// or (logits, features); a `features(x)` method also gives --features.
    #[arg(long, value_name = "PT")]
    pub torchscript: Option<PathBuf>,
    /// An ONNX model with outputs `logits` and `features` (scripts/export-onnx.py), run through
    /// tract (no libtorch).
    #[arg(long, value_name = "ONNX")]
    pub onnx: Option<PathBuf>,
}

/// Which of [`ModelArgs`] was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelRef<'a> {
    Checkpoint(&'a Path),
    StateDict(&'a Path),
    TorchScript(&'a Path),
    Onnx(&'a Path),
}

impl ModelArgs {
    pub fn source(&self) -> ModelRef<'_> {
        match (
            &self.checkpoint,
            &self.state_dict,
            &self.torchscript,
            &self.onnx,
        ) {
            (Some(p), ..) => ModelRef::Checkpoint(p),
            (None, Some(p), ..) => ModelRef::StateDict(p),
            (None, None, Some(p), _) => ModelRef::TorchScript(p),
            (None, None, None, Some(p)) => ModelRef::Onnx(p),
            // clap's required group guarantees one; an empty path fails to open, cleanly
            (None, None, None, None) => ModelRef::Checkpoint(Path::new("")),
        }
    }

    /// The file the model comes from.
    pub fn path(&self) -> &Path {
        match self.source() {
            ModelRef::Checkpoint(p)
            | ModelRef::StateDict(p)
            | ModelRef::TorchScript(p)
            | ModelRef::Onnx(p) => p,
        }
    }
}

/// The WideResNet of a `--state-dict` or of a new model (`train`); a checkpoint records its own.
#[derive(clap::Args, Debug, Clone)]
pub struct ArchArgs {
    /// WideResNet depth, 6n+4 from 10 to 1000 (code of record: 40).
    #[arg(long, default_value_t = 40)]
    pub depth: i64,
    /// Width multiplier k, 1 to 64 (code of record: 2).
    #[arg(long, default_value_t = 2)]
    pub widen_factor: i64,
    /// Dropout between the convolutions of a block, in [0, 1) (code of record: 0.3; unused by
    /// inference).
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Number of classes, 1 to 100000 (default: largest training label + 1 when training,
    /// else 10).
    #[arg(long)]
    pub num_classes: Option<i64>,
}

#[cfg(feature = "nn")]
impl ArchArgs {
    /// The validated architecture; `labels_classes` is what the training labels need (None
    /// without labels), `in_channels` the data's.
    pub fn config(
        &self,
        labels_classes: Option<i64>,
        in_channels: usize,
    ) -> anyhow::Result<ood_nn::WrnConfig> {
        use anyhow::Context;
        if let Some(n) = labels_classes {
            check_range(
                "classes of the training labels (largest label + 1)",
                n,
                1,
                ood_nn::wrn::MAX_NUM_CLASSES,
            )?;
        }
        let num_classes = self.num_classes.or(labels_classes).unwrap_or(10);
        if let Some(n) = labels_classes.filter(|&n| n > num_classes) {
            bail!(
                "--num-classes {num_classes} but the training labels go up to {}",
                n - 1
            );
        }
        let config = ood_nn::WrnConfig {
            depth: self.depth,
            widen_factor: self.widen_factor,
            dropout: self.dropout,
            num_classes,
            in_channels: in_channels as i64,
        };
        config
            .validate()
            .context("--depth/--widen-factor/--num-classes/--dropout")?;
        Ok(config)
    }
}

/// SGD settings; unset values take the command's defaults (`RunConfig::pretrain` for train,
/// `RunConfig::finetune` for finetune: the code of record's).
#[derive(clap::Args, Debug, Clone)]
pub struct OptimizerArgs {
    /// Epochs, 1 to 100000 (default: train 100, finetune 10).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// In-distribution images per step, 1 to 65536 (default 128).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Initial learning rate in (0, 10], cosine-annealed per step to --lr-min (default: train
    /// 0.1, finetune 0.001).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine schedule, in [0, --lr] (default 1e-6).
    #[arg(long)]
    pub lr_min: Option<f64>,
    /// Nesterov momentum of SGD, in [0, 1) (default 0.9).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// L2 weight decay, in [0, 1], applied to every parameter as PyTorch's SGD (default 5e-4).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Seeds initialization, dropout, shuffling and augmentation.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[cfg(feature = "nn")]
impl OptimizerArgs {
    /// `base` with the given values, each validated.
    pub fn apply(
        &self,
        base: ood_nn::train::RunConfig,
    ) -> anyhow::Result<ood_nn::train::RunConfig> {
        let lr = check_range("--lr", self.lr.unwrap_or(base.lr), f64::MIN_POSITIVE, 10.0)?;
        let momentum = check_range(
            "--momentum",
            self.momentum.unwrap_or(base.momentum),
            0.0,
            1.0,
        )?;
        if momentum == 1.0 {
            bail!("--momentum must be below 1, got 1");
        }
        Ok(ood_nn::train::RunConfig {
            epochs: check_range("--epochs", self.epochs.unwrap_or(base.epochs), 1, 100_000)?,
            batch_size: check_range(
                "--batch-size",
                self.batch_size.unwrap_or(base.batch_size),
                1,
                65_536,
            )?,
            lr,
            lr_min: check_range("--lr-min", self.lr_min.unwrap_or(base.lr_min), 0.0, lr)?,
            momentum,
            weight_decay: check_range(
                "--weight-decay",
                self.weight_decay.unwrap_or(base.weight_decay),
                0.0,
                1.0,
            )?,
            seed: self.seed,
            ..base
        })
    }
}

/// The checkpoint a training command writes, and how it treats one already there.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckpointOutArgs {
    /// Checkpoint to write, `<name>.json` (weights go beside it as safetensors).
    #[arg(long, value_name = "JSON")]
    pub out: PathBuf,
    /// Continue from --out if it exists (after an interruption); the configuration must be the
    /// one it was trained with.
    #[arg(long)]
    pub resume: bool,
    /// Replace an existing --out (without --resume), or resume with a changed configuration
    /// (the change is recorded in the log).
    #[arg(long)]
    pub force: bool,
    /// Stop after this many epochs in this invocation (continue later with --resume).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
}

impl CheckpointOutArgs {
    /// Refuses an `--out` that would destroy something: not `<name>.json`, a device node or
    /// directory, one of `inputs` (e.g. finetune's pretrained model), or an existing
    /// checkpoint without --resume or --force.
    pub fn check(&self, inputs: &[&Path]) -> anyhow::Result<()> {
        let out = &self.out;
        if out.extension().is_none_or(|e| e != "json") {
            bail!(
                "--out must name the checkpoint's JSON sidecar (<name>.json), got {}",
                out.display()
            );
        }
        if self.resume {
            ood_core::io::check_output(out, inputs)?;
        } else {
            ood_core::io::check_new_output(out, inputs, self.force)?;
        }
        if self.stop_after == Some(0) {
            bail!("--stop-after must be at least 1");
        }
        Ok(())
    }

    /// Where and how `train::run` writes: --out, --resume, --stop-after, and --force (a changed
    /// configuration on resume is recorded, not refused).
    #[cfg(feature = "nn")]
    pub fn run_output(&self, progress: bool) -> ood_nn::train::RunOutput {
        use ood_nn::train::ResumeChanges;
        ood_nn::train::RunOutput {
            checkpoint: self.out.clone(),
            resume: self.resume,
            progress,
            stop_after: self.stop_after,
            changes: if self.force {
                ResumeChanges::Record
            } else {
                ResumeChanges::Refuse
            },
        }
    }
}

/// `eood bench`'s models in the [`ModelArgs`] grammar: the pre-trained model is `--checkpoint`
/// or `--state-dict` (or `--shipped`); each fine-tuned model the same two ways under its prefix,
/// `--oe-checkpoint | --oe-state-dict` and `--energy-ft-checkpoint | --energy-ft-state-dict`.
/// A model not given is trained by the run. `--torchscript`/`--onnx` are not taken: ODIN,
/// Mahalanobis and fine-tuning need the WideResNet itself.
#[cfg(feature = "nn")]
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

#[cfg(feature = "nn")]
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
#[cfg(feature = "nn")]
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

#[cfg(feature = "nn")]
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
#[cfg(feature = "nn")]
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

#[cfg(feature = "nn")]
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
#[cfg(feature = "nn")]
fn shown(s: &str) -> String {
    s.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_once_into_an_enum() {
        assert_eq!("cpu".parse(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert!("gpu".parse::<DeviceChoice>().is_err());
        assert!("cuda:-1".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn temperatures_outside_the_range_are_refused() {
        for t in [f64::NAN, -1.0, 0.0, 1e308, f64::INFINITY, 1e-4] {
            assert!(check_temperature(t).is_err(), "{t}");
        }
        for t in [1.0, 1000.0, 1e-3, 1e6] {
            assert_eq!(check_temperature(t).unwrap(), t);
        }
        assert_eq!(
            check_temperature(-1.0).unwrap_err().to_string(),
            "temperature must be a positive finite number, got -1"
        );
    }

    #[cfg(feature = "nn")]
    #[test]
    fn mean_and_std_are_one_or_c_finite_values() {
        let n = |m: &str, s: &str| NormalizeArgs {
            mean: Some(m.into()),
            std: Some(s.into()),
        };
        let ok = n("0.5", "0.25,0.5,1").normalize(3).unwrap().unwrap();
        assert_eq!((ok.mean, ok.std), (vec![0.5; 3], vec![0.25, 0.5, 1.0]));
        assert_eq!(NormalizeArgs::default().normalize(3).unwrap(), None);
        for (m, s, msg) in [
            (
                "0,0",
                "1",
                "--mean: 2 values for 3-channel images (give 1 or 3)",
            ),
            ("0", "1,1,1,1", "--std: 4 values for 3-channel images"),
            ("nan", "1", "--mean must be finite, got NaN"),
            ("0", "0", "--std must be positive and finite, got 0"),
            ("0", "-1", "--std must be positive and finite, got -1"),
            ("0", "inf", "--std must be positive and finite, got inf"),
            ("zero", "1", "--mean: \"zero\" is not a number"),
        ] {
            let e = n(m, s).normalize(3).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{m} {s}: {e}");
        }
    }

    #[test]
    fn default_threads_stay_few() {
        let r = RuntimeArgs {
            threads: None,
            workers: DEFAULT_WORKERS,
            quiet: false,
        };
        let t = r.threads().unwrap();
        assert!((1..=DEFAULT_MAX_THREADS).contains(&t), "{t}");
        let zero = RuntimeArgs {
            threads: Some(0),
            ..r
        };
        assert!(zero.check().is_err());
    }
}
