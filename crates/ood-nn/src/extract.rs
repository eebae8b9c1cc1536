//! Streaming inference: a [`Classifier`] over an input array, writing logits (and penultimate
//! features, the feature map before pooling, the last layer) as `.npy` files batch by batch, so
//! memory stays bounded by a few batches whatever the dataset size. Inputs live in `input`,
//! the writer in `writer`, the last layer and the feature map in `head`.
//!
//! Inputs ([`InputSet`]):
//! - `uint8` images `N x H x W (x C)` (e.g. the fmnist-ood files), read image by image and normalized on
//!   the fly by the [`ood_data::batch::BatchLoader`] worker threads, so data preparation overlaps
//!   the forward passes: `(x / 255 - mean[c]) / std[c]`;
//! - `float32` `N x C x H x W`: already model input (used as is), read one batch at a time.
//!
//! Outputs are written through [`NpyRowWriter`]: a temporary file beside the target whose header
//! declares all `N` rows, filled batch by batch and renamed into place at the end, so an
//! interrupted run never leaves a truncated `.npy` behind (nor touches an existing one).
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ood_core::io::npy::{write_array, NpyError};
use ood_data::transforms::Normalize;
use tch::Tensor;

use crate::model::Classifier;

mod head;
mod input;
mod writer;

pub use head::{check_head, find_head, forward_with_map, HeadError, HeadNames};
pub use input::{F32Array, InputBatch, InputSet};
use writer::to_host;
pub(crate) use writer::to_rows;
pub use writer::{NpyRowWriter, RowError};

/// Errors of inference and of the input-space methods (ODIN, Mahalanobis preprocessing).
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Nn(#[from] crate::Error),
    #[error(transparent)]
    Data(#[from] ood_data::Error),
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
    #[error("the collected features do not form a matrix")]
    FeatureShape(#[source] ndarray::ShapeError),
    #[error("{labels} labels for {images} images")]
    LabelCount { labels: usize, images: usize },
    #[error("Mahalanobis epsilons must be >= 0, got {0}")]
    MahalanobisEpsilon(f64),
    #[error("batch size must be positive")]
    ZeroBatchSize,
    #[error("uint8 images need a normalization (mean, std)")]
    NoNormalization,
    #[error("{}: {source}", path.display())]
    Rows {
        path: PathBuf,
        #[source]
        source: RowError,
    },
    #[error("ODIN grid is empty")]
    EmptyOdinGrid,
    #[error("ODIN temperatures must be positive, got {0}")]
    OdinTemperature(f64),
    #[error("ODIN epsilons must be >= 0, got {0}")]
    OdinEpsilon(f64),
    #[error("{stds} normalization stds for {channels}-channel input")]
    StdChannels { stds: usize, channels: i64 },
    #[error(
        "selection needs in-distribution validation scores and at least one validation OOD set"
    )]
    NoValidation,
    #[error("validation")]
    Selection(#[source] ood_core::selection::SelectionError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Metrics(#[from] ood_core::MetricsError),
    #[error(transparent)]
    Head(#[from] HeadError),
    #[error(transparent)]
    Mahalanobis(#[from] ood_core::scores::mahalanobis::MahalanobisError),
    #[error(transparent)]
    Ensemble(#[from] ood_core::scores::EnsembleError),
}

pub type Result<T, E = InferError> = std::result::Result<T, E>;

pub(crate) fn torch_err(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> InferError {
    let context = context.into();
    move |source| InferError::Torch { context, source }
}

/// Settings of [`extract`].
#[derive(Clone, Debug, PartialEq)]
pub struct ExtractConfig {
    /// Images per forward pass. Default 256.
    pub batch_size: usize,
    /// Threads preparing `uint8` image batches ahead of the model. Default 1.
    pub workers: usize,
    pub progress: bool,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            workers: 1,
            progress: false,
        }
    }
}

/// What [`extract`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtractSummary {
    pub rows: usize,
    pub classes: usize,
    pub feature_dim: Option<usize>,
    /// `[C, H, W]` of the feature map, when written.
    pub map_shape: Option<Vec<usize>>,
    pub seconds: f64,
}

impl ExtractSummary {
    pub fn images_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
}

/// Where [`extract_to`] writes (float32 `.npy` files); only the logits are required.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// `N x K` logits.
    pub logits: PathBuf,
    /// `N x D` penultimate features.
    pub features: Option<PathBuf>,
    /// `N x C x H x W` feature map before pooling (see [`forward_with_map`]).
    pub feature_map: Option<PathBuf>,
    /// The last layer: `K x D` weight and `K` bias files (see [`find_head`]).
    pub head: Option<(PathBuf, PathBuf)>,
    /// Names of the head's parameters in a TorchScript module.
    pub head_names: HeadNames,
}

/// A progress bar on stderr (hidden when `show` is false or stderr is not a terminal).
pub(crate) fn progress_bar(len: usize, show: bool, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {per_sec}, ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs `model` over `input` and writes `N x K` logits to `logits_path` and, when
/// `features_path` is given, `N x D` penultimate features. `normalize` applies to `uint8` images.
pub fn extract(
    model: &Classifier,
    input: &InputSet,
    normalize: Option<&Normalize>,
    config: &ExtractConfig,
    logits_path: &Path,
    features_path: Option<&Path>,
) -> Result<ExtractSummary> {
    let out = Outputs {
        logits: logits_path.into(),
        features: features_path.map(Into::into),
        ..Outputs::default()
    };
    extract_to(model, input, normalize, config, &out)
}

fn check_channels(model: &Classifier, input: &InputSet) -> Result<()> {
    if input.is_empty() {
        return Err(InferError::Input {
            path: input.path().into(),
            reason: "no images".into(),
        });
    }
    if let Some(c) = model.in_channels() {
        if c as usize != input.channels() {
            return Err(InferError::Input {
                path: input.path().into(),
                reason: format!("{} channels, the model expects {c}", input.channels()),
            });
        }
    }
    Ok(())
}

/// One forward pass: logits, and the features and map when asked for.
fn forward(
    model: &Classifier,
    x: &Tensor,
    features: bool,
    map: bool,
) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    Ok(if map {
        let (l, f, m) = forward_with_map(model, x)?;
        (l, Some(f), Some(m))
    } else if features {
        let (l, f) = model.logits_and_features(x)?;
        (l, Some(f), None)
    } else {
        (model.logits(x)?, None, None)
    })
}

/// [`extract`] with every output of [`Outputs`]: the head is found on the first batch, checked
/// to reproduce its logits, and written once the arrays are complete.
pub fn extract_to(
    model: &Classifier,
    input: &InputSet,
    normalize: Option<&Normalize>,
    config: &ExtractConfig,
    out: &Outputs,
) -> Result<ExtractSummary> {
    check_channels(model, input)?;
    let n = input.len();
    let device = model.device();
    let create = |p: &Option<PathBuf>| p.as_deref().map(|p| NpyRowWriter::create(p, n)).transpose();
    let mut logits_out = NpyRowWriter::create(&out.logits, n)?;
    let mut features_out = create(&out.features)?;
    let mut map_out = create(&out.feature_map)?;
    for p in out.head.iter().flat_map(|(w, b)| [w, b]) {
        ood_core::io::check_output(p, &[]).map_err(|e| NpyError::from(e.into_io_error()))?;
    }
    let need_features = out.features.is_some() || out.head.is_some();
    let pb = progress_bar(n, config.progress, "extract");
    let started = Instant::now();
    let (mut classes, mut dim, mut map_shape) = (0, None, None);
    let mut head: Option<(Tensor, Tensor)> = None;
    tch::no_grad(|| -> Result<()> {
        for batch in input.batches(config.batch_size, normalize, config.workers)? {
            let x = batch?.x.to_device(device);
            let rows = x.size()[0] as u64;
            let (l, f, m) = forward(model, &x, need_features, map_out.is_some())?;
            if let (Some(f), true) = (&f, out.head.is_some() && head.is_none()) {
                let (w, b) = find_head(model, &out.head_names, l.size()[1], f.size()[1])?;
                check_head(model, (&w, &b), f, &l)?;
                head = Some((w, b));
            }
            let (lv, k) = to_rows(&l)?;
            logits_out.push(&lv, k)?;
            classes = k;
            if let (Some(fo), Some(f)) = (features_out.as_mut(), &f) {
                let (fv, d) = to_rows(f)?;
                fo.push(&fv, d)?;
                dim = Some(d);
            }
            if let (Some(mo), Some(m)) = (map_out.as_mut(), &m) {
                let (mv, shape) = to_host(m)?;
                mo.push_shaped(&mv, &shape[1..])?;
                map_shape = Some(shape[1..].to_vec());
            }
            pb.inc(rows);
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    logits_out.finish()?;
    for w in [features_out, map_out].into_iter().flatten() {
        w.finish()?;
    }
    if let (Some((wp, bp)), Some((w, b))) = (&out.head, &head) {
        let (wv, ws) = to_host(w)?;
        write_array(wp, &ws, &wv)?;
        let (bv, bs) = to_host(b)?;
        write_array(bp, &bs, &bv)?;
    }
    Ok(ExtractSummary {
        rows: n,
        classes,
        feature_dim: dim,
        map_shape,
        seconds,
    })
}

/// Fashion-MNIST training-set channel mean and std: the trainer's default for one-channel input.
pub use crate::data::{FMNIST_MEAN, FMNIST_STD};

/// The normalization used when neither the user nor the model records one, by channel count:
/// the code of record's CIFAR constants for 3 channels, Fashion-MNIST's for 1, `[0, 1]` scaling
/// otherwise (the trainer's defaults, so a checkpoint without a record still matches).
pub fn default_normalize(channels: usize) -> Normalize {
    match channels {
        3 => Normalize::cifar(),
        1 => Normalize {
            mean: vec![FMNIST_MEAN],
            std: vec![FMNIST_STD],
        },
        c => Normalize::unit(c),
    }
}
