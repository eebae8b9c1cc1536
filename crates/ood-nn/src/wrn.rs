//! Wide Residual Network (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016), laid out
//! exactly as the energy-OOD code of record (`CIFAR/models/wrn.py`): pre-activation basic blocks,
//! dropout between the two convolutions, a 1x1 `convShortcut` when the width changes, a final
//! BatchNorm + ReLU, global average pooling and a linear classifier.
//!
//! Parameter names equal PyTorch's `state_dict` keys (`conv1.weight`,
//! `block1.layer.0.bn1.running_mean`, `block1.layer.0.convShortcut.weight`,
//! `bn1.num_batches_tracked`, `fc.bias`, ...), so the authors' checkpoints load as they are.
//!
//! Pooling: the code of record uses `avg_pool2d(out, 8)` on the 8x8 map of a 32x32 input, which is
//! the global mean; we take the global mean (`mean_dim` over H and W) so 28x28 inputs (7x7 maps)
//! work too. (tch's `avg_pool2d_default` is not an average: it passes `divisor_override = 1`.)
//! Maps of 9 to 15 pixels a side (LSUN-Crop's 36x36 images, which the code of record feeds
//! unresized) are pooled as `avg_pool2d(out, 8)` pools them there: the mean of the top-left 8x8
//! ([`pool`]); the code of record's `view(-1, nChannels)` breaks on larger maps.
use serde::{Deserialize, Serialize};
use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

use crate::error::Result;

/// Architecture of a WideResNet-`depth`-`widen_factor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrnConfig {
    /// Total depth; `(depth - 4) % 6 == 0`. Code of record: 40.
    pub depth: i64,
    /// Width multiplier k: block widths are 16k, 32k, 64k. Code of record: 2.
    pub widen_factor: i64,
    /// Dropout probability between the two convolutions of a block. Code of record: 0.3.
    pub dropout: f64,
    pub num_classes: i64,
    /// Input channels: 3 for CIFAR, 1 for (Fashion-)MNIST.
    pub in_channels: i64,
}

impl Default for WrnConfig {
    /// WRN-40-2, dropout 0.3, 10 classes, RGB: the paper's CIFAR-10 model.
    fn default() -> Self {
        Self {
            depth: 40,
            widen_factor: 2,
            dropout: 0.3,
            num_classes: 10,
            in_channels: 3,
        }
    }
}

/// Why an architecture was refused (from flags or from a checkpoint sidecar).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArchError {
    #[error("WideResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {0}")]
    Depth(i64),
    #[error(transparent)]
    Limit(#[from] ood_core::limits::LimitError),
}

/// Sane ranges of the architecture fields. Far above any published WideResNet (WRN-40-4,
/// WRN-28-10, ImageNet's 1000 classes), far below sizes that make libtorch abort.
pub const MAX_DEPTH: i64 = 1000;
pub const MAX_WIDEN_FACTOR: i64 = 64;
pub const MAX_NUM_CLASSES: i64 = 100_000;
pub const MAX_IN_CHANNELS: i64 = 64;

impl WrnConfig {
    /// Checks every field against its range and the parameter memory (weights, gradients,
    /// momentum and a copy) against the memory available, before libtorch allocates anything.
    pub fn validate(&self) -> Result<(), ArchError> {
        use ood_core::limits::{check_alloc, check_range};
        check_range("WideResNet depth", self.depth, 10, MAX_DEPTH)?;
        if (self.depth - 4) % 6 != 0 {
            return Err(ArchError::Depth(self.depth));
        }
        check_range("widen_factor", self.widen_factor, 1, MAX_WIDEN_FACTOR)?;
        check_range("num_classes", self.num_classes, 1, MAX_NUM_CLASSES)?;
        check_range("in_channels", self.in_channels, 1, MAX_IN_CHANNELS)?;
        // written as a range check so that NaN is refused; 1 itself is excluded below
        check_range("dropout", self.dropout, 0.0, 1.0)?;
        if self.dropout == 1.0 {
            return Err(ood_core::limits::LimitError::OutOfRange {
                what: "dropout".into(),
                value: "1".into(),
                min: "0".into(),
                max: "1 (excluded)".into(),
            }
            .into());
        }
        check_alloc("WideResNet parameters", self.parameter_count(), 4 * 4)?;
        Ok(())
    }

    /// Number of parameters (an upper bound within a few percent: BatchNorm buffers included).
    /// Only called on validated fields, so it cannot overflow u128.
    pub fn parameter_count(&self) -> u128 {
        let n = ((self.depth.max(10) - 4) / 6) as u128;
        let k = self.widen_factor.max(1) as u128;
        let widths = [16, 16 * k, 32 * k, 64 * k];
        let mut count = 9 * self.in_channels.max(1) as u128 * 16;
        for s in 0..3 {
            let (c_in, c_out) = (widths[s], widths[s + 1]);
            // first block: c_in -> c_out plus a 1x1 shortcut, the others c_out -> c_out
            count += 9 * c_in * c_out + 9 * c_out * c_out + c_in * c_out + 5 * (c_in + c_out);
            count += (n - 1) * (18 * c_out * c_out + 10 * c_out);
        }
        count + (widths[3] + 1) * self.num_classes.max(1) as u128 + 5 * widths[3]
    }

    /// Blocks per stage, `(depth - 4) / 6`, after [`WrnConfig::validate`].
    pub fn blocks_per_stage(&self) -> Result<i64> {
        self.validate()?;
        Ok((self.depth - 4) / 6)
    }

    /// Width of the penultimate features (64k).
    pub fn feature_dim(&self) -> i64 {
        64 * self.widen_factor
    }

    /// Short name, e.g. `wrn-40-2`.
    pub fn name(&self) -> String {
        format!("wrn-{}-{}", self.depth, self.widen_factor)
    }
}

/// 2-D convolution without bias, initialised as the code of record: N(0, sqrt(2 / (k*k*out))).
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(p: Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> Self {
        let std = (2.0 / (kernel * kernel * c_out) as f64).sqrt();
        let weight = p.var(
            "weight",
            &[c_out, c_in, kernel, kernel],
            Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        Self {
            weight,
            stride,
            padding,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            None::<Tensor>,
            [self.stride],
            [self.padding],
            [1],
            1,
        )
    }
}

/// BatchNorm2d with PyTorch's defaults (eps 1e-5, momentum 0.1, weight 1, bias 0) and its
/// `num_batches_tracked` buffer, so state dicts round-trip.
#[derive(Debug)]
struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    num_batches_tracked: Tensor,
}

impl BatchNorm {
    fn new(p: Path, c: i64) -> Self {
        let device = p.device();
        Self {
            weight: p.var("weight", &[c], Init::Const(1.0)),
            bias: p.var("bias", &[c], Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, device)),
                false,
            ),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let mut n = self.num_batches_tracked.shallow_clone();
                let _ = n.g_add_scalar_(1);
            });
        }
        Tensor::batch_norm(
            x,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            0.1,
            1e-5,
            true,
        )
    }
}

/// Pre-activation basic block: `bn1 -> relu -> conv1 -> bn2 -> relu -> dropout -> conv2`, plus the
/// identity (same width) or `convShortcut` applied to the *activated* input (width change).
#[derive(Debug)]
struct BasicBlock {
    bn1: BatchNorm,
    conv1: Conv,
    bn2: BatchNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
    dropout: f64,
}

impl BasicBlock {
    fn new(p: Path, c_in: i64, c_out: i64, stride: i64, dropout: f64) -> Self {
        let shortcut =
            (c_in != c_out).then(|| Conv::new(&p / "convShortcut", c_in, c_out, 1, stride, 0));
        Self {
            bn1: BatchNorm::new(&p / "bn1", c_in),
            conv1: Conv::new(&p / "conv1", c_in, c_out, 3, stride, 1),
            bn2: BatchNorm::new(&p / "bn2", c_out),
            conv2: Conv::new(&p / "conv2", c_out, c_out, 3, 1, 1),
            shortcut,
            dropout,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        // In-place ReLU and residual add, as the code of record's `inplace=True` ReLUs: batch norm
        // and convolution do not need their outputs for backward, so overwriting them is safe and
        // saves one allocation per activation (measured 2-21% faster inference, docs/bench-nn-speed.md).
        let act = self.bn1.forward(x, train).relu_();
        let mut out = self.bn2.forward(&self.conv1.forward(&act), train).relu_();
        if self.dropout > 0.0 {
            out = out.dropout(self.dropout, train);
        }
        let mut out = self.conv2.forward(&out);
        match &self.shortcut {
            Some(conv) => out.g_add_(&conv.forward(&act)),
            None => out.g_add_(x),
        }
    }
}

/// A stage of `n` blocks (`blockI.layer.J`); the first one changes width and stride.
#[derive(Debug)]
struct NetworkBlock {
    layers: Vec<BasicBlock>,
}

impl NetworkBlock {
    fn new(p: Path, n: i64, c_in: i64, c_out: i64, stride: i64, dropout: f64) -> Self {
        let layer = &p / "layer";
        let layers = (0..n)
            .map(|i| {
                let (ci, s) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                BasicBlock::new(&layer / i, ci, c_out, s, dropout)
            })
            .collect();
        Self { layers }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = self.layers[0].forward(x, train);
        for block in &self.layers[1..] {
            out = block.forward(&out, train);
        }
        out
    }
}

/// Layers of [`WideResNet::layer_features`] (the Mahalanobis ensemble's).
pub const LAYERS: usize = 4;

/// Everything a forward pass produces.
#[derive(Debug)]
pub struct WrnOutput {
    /// `N x num_classes`.
    pub logits: Tensor,
    /// Penultimate features after global average pooling, `N x 64k` (Mahalanobis uses these).
    pub features: Tensor,
    /// Outputs of block1, block2, block3 and of the final `relu(bn1(.))`, each `N x C x H x W`
    /// (the last is the code of record's `intermediate_forward` / `feature_list` output).
    pub blocks: Vec<Tensor>,
}

/// WideResNet whose variables live in the caller's [`tch::nn::VarStore`].
#[derive(Debug)]
pub struct WideResNet {
    config: WrnConfig,
    conv1: Conv,
    stages: [NetworkBlock; 3],
    bn1: BatchNorm,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl WideResNet {
    /// Creates the variables under `p` with the code of record's initialisation (conv: normal with
    /// std sqrt(2/(k*k*out)); BatchNorm: 1 and 0; fc: PyTorch's default U(+-1/sqrt(fan_in)) weight,
    /// zero bias). Seed with `tch::manual_seed` first for reproducibility.
    pub fn new(p: &Path, config: &WrnConfig) -> Result<Self> {
        let n = config.blocks_per_stage()?;
        let k = config.widen_factor;
        let widths = [16, 16 * k, 32 * k, 64 * k];
        let d = config.dropout;
        let bound = 1.0 / (widths[3] as f64).sqrt();
        Ok(Self {
            config: config.clone(),
            conv1: Conv::new(p / "conv1", config.in_channels, widths[0], 3, 1, 1),
            stages: [
                NetworkBlock::new(p / "block1", n, widths[0], widths[1], 1, d),
                NetworkBlock::new(p / "block2", n, widths[1], widths[2], 2, d),
                NetworkBlock::new(p / "block3", n, widths[2], widths[3], 2, d),
            ],
            bn1: BatchNorm::new(p / "bn1", widths[3]),
            fc_weight: (p / "fc").var(
                "weight",
                &[config.num_classes, widths[3]],
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            ),
            fc_bias: (p / "fc").var("bias", &[config.num_classes], Init::Const(0.0)),
        })
    }

    pub fn config(&self) -> &WrnConfig {
        &self.config
    }

    /// Logits, `N x num_classes`, for `N x C x H x W` float input. `train` enables dropout and
    /// batch statistics (and updates the running statistics), as PyTorch's `net.train()`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let (logits, _) = self.forward_features(x, train);
        logits
    }

    /// Logits and penultimate (pooled) features.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut out = self.conv1.forward(x);
        for stage in &self.stages {
            out = stage.forward(&out, train);
        }
        let out = self.bn1.forward(&out, train).relu();
        let features = pool(&out);
        (self.classify(&features), features)
    }

    /// Logits, features and every stage's output.
    pub fn forward_all(&self, x: &Tensor, train: bool) -> WrnOutput {
        let mut blocks = Vec::with_capacity(4);
        let mut out = self.conv1.forward(x);
        for stage in &self.stages {
            out = stage.forward(&out, train);
            blocks.push(out.shallow_clone());
        }
        let out = self.bn1.forward(&out, train).relu();
        let features = pool(&out);
        blocks.push(out);
        WrnOutput {
            logits: self.classify(&features),
            features,
            blocks,
        }
    }

    /// The first `count` (at most [`LAYERS`]) layer features of Lee et al.'s Mahalanobis
    /// ensemble, each globally average-pooled to `N x C_l`: the outputs of `conv1`, `block1`,
    /// `block2`, and the final `relu(bn1(block3))`, whose pooled form is the penultimate
    /// features of [`WideResNet::forward_features`]. The layout follows the authors'
    /// `feature_list` of their DenseNet (first convolution, each stage, the last after the
    /// final BatchNorm + ReLU). Stops after the layers asked for, so a shallow layer costs
    /// a shallow forward pass.
    pub fn layer_features(&self, x: &Tensor, train: bool, count: usize) -> Vec<Tensor> {
        let pool = |t: &Tensor| t.mean_dim([2i64, 3].as_slice(), false, None::<Kind>);
        let count = count.min(LAYERS);
        let mut layers = Vec::with_capacity(count);
        let mut out = self.conv1.forward(x);
        for stage in &self.stages {
            if layers.len() == count {
                return layers;
            }
            layers.push(pool(&out));
            out = stage.forward(&out, train);
        }
        if layers.len() < count {
            layers.push(pool(&self.bn1.forward(&out, train).relu()));
        }
        layers
    }

    /// The final linear layer `fc`: weight `K x D` and bias `K` (copies, no gradient), for the
    /// post-hoc detectors that need the head (ReAct, DICE, ViM, ...).
    pub fn head(&self) -> (Tensor, Tensor) {
        (self.fc_weight.detach().copy(), self.fc_bias.detach().copy())
    }

    /// The final linear layer applied to penultimate features.
    pub fn classify(&self, features: &Tensor) -> Tensor {
        features.linear(&self.fc_weight, Some(&self.fc_bias))
    }
}

/// Global average pooling of the final `N x C x H x W` map as the code of record's
/// `avg_pool2d(out, 8)`: the mean over the whole map up to 8 a side (8x8 for 32x32 input; the
/// global mean for smaller maps, which the code of record does not support), the mean of the
/// top-left 8x8 (one window of stride 8, floor mode) for 9 to 15.
pub fn pool(map: &Tensor) -> Tensor {
    let size = map.size();
    let (h, w) = (size[2], size[3]);
    let window = |n: i64| if (9..16).contains(&n) { 8 } else { n };
    let (wh, ww) = (window(h), window(w));
    let map = if (wh, ww) == (h, w) {
        map.shallow_clone()
    } else {
        map.narrow(2, 0, wh).narrow(3, 0, ww)
    };
    map.mean_dim([2i64, 3].as_slice(), false, None::<Kind>)
}

#[cfg(test)]
mod tests;
