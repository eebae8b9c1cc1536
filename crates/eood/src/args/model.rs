//! The model, given exactly one way ([`ModelArgs`]), and the WideResNet of a state_dict or of a
//! new model ([`ArchArgs`]).
use std::path::{Path, PathBuf};

#[cfg(feature = "nn")]
use anyhow::bail;
#[cfg(feature = "nn")]
use ood_core::limits::check_range;

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
