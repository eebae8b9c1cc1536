//! Streaming inference: a [`Classifier`] over an input array, writing logits (and penultimate
//! features) as `.npy` files batch by batch, so memory stays bounded by a few batches whatever
//! the dataset size.
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
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ood_core::io::npy::{self, Dtype, NpyError, NpyFile, NpyWriter};
use ood_data::batch::{BatchConfig, BatchLoader, ImageSource};
use ood_data::formats::npy_images::NpyImages;
use ood_data::transforms::{Normalize, Pipeline};
use tch::{Device, Kind, Tensor};

use crate::model::Classifier;

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
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error(transparent)]
    Metrics(#[from] ood_core::MetricsError),
    #[error(transparent)]
    Mahalanobis(#[from] ood_core::scores::mahalanobis::MahalanobisError),
}

pub type Result<T, E = InferError> = std::result::Result<T, E>;

pub(crate) fn torch_err(context: impl Into<String>) -> impl FnOnce(tch::TchError) -> InferError {
    let context = context.into();
    move |source| InferError::Torch { context, source }
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// A `.npy` array to run a model on.
#[derive(Debug)]
pub enum InputSet {
    /// `uint8` images, normalized per channel on the fly (the first `len` of the file).
    Images { images: Arc<NpyImages>, len: usize },
    /// `float32` `N x C x H x W` model input.
    Tensors(F32Array),
}

/// A C-order `float32` `N x C x H x W` `.npy` array read by rows (`shape[0]`), never whole.
#[derive(Debug, Clone)]
pub struct F32Array {
    pub path: PathBuf,
    pub shape: Vec<usize>,
}

impl F32Array {
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| InferError::Input {
            path: path.into(),
            reason,
        };
        let header = NpyFile::open(path)?.header().clone();
        if header.dtype != Dtype::F32 || header.fortran_order {
            return Err(bad(format!(
                "dtype {:?}{}: expected uint8 images or C-order float32 ('<f4') N x C x H x W",
                header.descr(),
                if header.fortran_order {
                    " (Fortran order)"
                } else {
                    ""
                }
            )));
        }
        if header.shape.len() != 4 {
            return Err(bad(format!(
                "float32 input must be N x C x H x W, got shape {:?}",
                header.shape
            )));
        }
        Ok(Self {
            path: path.into(),
            shape: header.shape,
        })
    }

    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..start + n` as an `n x C x H x W` tensor.
    fn read_rows(&self, file: &NpyFile, start: usize, n: usize) -> Result<Tensor> {
        let per: usize = self.shape[1..].iter().product();
        let mut bytes = vec![0u8; n * per * 4];
        file.read_at((start * per * 4) as u64, &mut bytes)?;
        let values = npy::decode_f32(file.header().big_endian, &bytes);
        let mut shape: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
        shape[0] = n as i64;
        Ok(Tensor::from_slice(&values).reshape(shape))
    }
}

/// A batch of model input on the CPU.
#[derive(Debug)]
pub struct InputBatch {
    /// `n x C x H x W` float32.
    pub x: Tensor,
    /// Row index of the first image in the set.
    pub start: usize,
}

impl InputSet {
    /// Opens a `.npy` of `uint8` images or of `float32` model input (by its dtype).
    pub fn open(path: &Path) -> Result<Self> {
        if npy::is_float(path)? {
            Ok(InputSet::Tensors(F32Array::open(path)?))
        } else {
            let images = NpyImages::open(path)?;
            let len = images.len();
            Ok(InputSet::Images {
                images: Arc::new(images),
                len,
            })
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            InputSet::Images { images, .. } => images.path(),
            InputSet::Tensors(a) => &a.path,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            InputSet::Images { len, .. } => *len,
            InputSet::Tensors(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Channels of the model input.
    pub fn channels(&self) -> usize {
        match self {
            InputSet::Images { images, .. } => images.image_shape().2,
            InputSet::Tensors(a) => a.shape[1],
        }
    }

    /// `true` for `uint8` images (which need a normalization).
    pub fn needs_normalization(&self) -> bool {
        matches!(self, InputSet::Images { .. })
    }

    /// Only the first `n` rows (all of them if there are fewer).
    pub fn head(self, n: usize) -> Self {
        match self {
            InputSet::Images { images, len } => InputSet::Images {
                images,
                len: len.min(n),
            },
            InputSet::Tensors(mut a) => {
                a.shape[0] = a.shape[0].min(n);
                InputSet::Tensors(a)
            }
        }
    }

    /// Batches in file order. `normalize` is required for `uint8` images and ignored for float
    /// input; `workers` threads prepare image batches ahead (0: on this thread).
    pub fn batches(
        &self,
        batch_size: usize,
        normalize: Option<&Normalize>,
        workers: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<InputBatch>> + '_>> {
        if batch_size == 0 {
            return Err(InferError::Config("batch size must be positive".into()));
        }
        match self {
            InputSet::Images { images, len } => {
                let source: Arc<dyn ImageSource> = if *len == images.len() {
                    images.clone()
                } else {
                    Arc::new(Head {
                        inner: images.clone(),
                        len: *len,
                    })
                };
                let normalize = normalize.ok_or_else(|| {
                    InferError::Config("uint8 images need a normalization (mean, std)".into())
                })?;
                let loader = BatchLoader::new(
                    source,
                    Pipeline {
                        steps: vec![],
                        normalize: normalize.clone(),
                    },
                    BatchConfig {
                        batch_size,
                        shuffle: false,
                        drop_last: false,
                        seed: 0,
                        workers,
                        depth: 2,
                    },
                )?;
                let mut start = 0;
                Ok(Box::new(loader.epoch(0).map(move |b| {
                    let b = b?;
                    let shape: Vec<i64> = b.images.shape().iter().map(|&d| d as i64).collect();
                    let n = shape[0] as usize;
                    let x = Tensor::from_slice(b.images.as_slice().expect("contiguous batch"))
                        .reshape(shape);
                    let batch = InputBatch { x, start };
                    start += n;
                    Ok(batch)
                })))
            }
            InputSet::Tensors(a) => {
                let file = NpyFile::open(&a.path)?;
                let n = a.len();
                Ok(Box::new((0..n).step_by(batch_size).map(move |start| {
                    let rows = batch_size.min(n - start);
                    Ok(InputBatch {
                        x: a.read_rows(&file, start, rows)?,
                        start,
                    })
                })))
            }
        }
    }
}

/// The first `len` images of a file.
struct Head {
    inner: Arc<NpyImages>,
    len: usize,
}

impl ImageSource for Head {
    fn len(&self) -> usize {
        self.len
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        self.inner.image_shape()
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> ood_data::Result<()> {
        ImageSource::read_image(&*self.inner, index, out)
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming .npy writer

/// Writes a `float32` `rows x cols` `.npy` file row block by row block, through
/// [`ood_core::io::npy::NpyWriter`] (created with the first block, when `cols` is known, and
/// declaring all `rows`). [`NpyRowWriter::finish`] checks the count and renames the temporary
/// file into place; dropped unfinished, it leaves no file behind.
#[derive(Debug)]
pub struct NpyRowWriter {
    path: PathBuf,
    rows: usize,
    cols: Option<usize>,
    out: Option<NpyWriter<f32>>,
}

impl NpyRowWriter {
    pub fn create(path: &Path, rows: usize) -> Result<Self> {
        // Refuse a device node or directory now, before the model runs.
        ood_core::io::check_output(path, &[]).map_err(|e| NpyError::from(e.into_io_error()))?;
        Ok(Self {
            path: path.into(),
            rows,
            cols: None,
            out: None,
        })
    }

    /// Appends `values.len() / cols` rows.
    pub fn push(&mut self, values: &[f32], cols: usize) -> Result<()> {
        let config = |m: String| Err(InferError::Config(format!("{}: {m}", self.path.display())));
        if let Some(c) = self.cols.filter(|&c| c != cols) {
            return config(format!("a batch has {cols} columns, earlier ones {c}"));
        }
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return config(format!(
                "{} values do not make rows of {cols}",
                values.len()
            ));
        }
        let written = self.written_rows();
        if written + values.len() / cols > self.rows {
            return config(format!("more than the {} declared rows", self.rows));
        }
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                self.cols = Some(cols);
                self.out
                    .insert(NpyWriter::create(&self.path, &[self.rows, cols])?)
            }
        };
        out.push(values)?;
        Ok(())
    }

    fn written_rows(&self) -> usize {
        match (&self.out, self.cols) {
            (Some(o), Some(c)) => o.written() as usize / c,
            _ => 0,
        }
    }

    /// Checks that every row was written, syncs, and renames into place.
    pub fn finish(mut self) -> Result<()> {
        let written = self.written_rows();
        match self.out.take() {
            Some(out) if written == self.rows => Ok(out.finish()?),
            _ => Err(InferError::Config(format!(
                "{}: {written} of {} rows written",
                self.path.display(),
                self.rows
            ))),
        }
    }
}

/// A 2-D tensor as contiguous CPU `f32` values and its column count.
pub(crate) fn to_rows(t: &Tensor) -> Result<(Vec<f32>, usize)> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let cols = t.size().get(1).copied().unwrap_or(1) as usize;
    let v = Vec::<f32>::try_from(t.view(-1)).map_err(torch_err("copying to host"))?;
    Ok((v, cols))
}

// ---------------------------------------------------------------------------------------------
// Extraction

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
    pub seconds: f64,
}

impl ExtractSummary {
    pub fn images_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds.max(1e-9)
    }
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
    let n = input.len();
    if n == 0 {
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
    let device = model.device();
    let mut logits_out = NpyRowWriter::create(logits_path, n)?;
    let mut features_out = features_path
        .map(|p| NpyRowWriter::create(p, n))
        .transpose()?;
    let pb = progress_bar(n, config.progress, "extract");
    let started = Instant::now();
    let (mut classes, mut dim) = (0, None);
    tch::no_grad(|| -> Result<()> {
        for batch in input.batches(config.batch_size, normalize, config.workers)? {
            let batch = batch?;
            let x = batch.x.to_device(device);
            let rows = x.size()[0] as u64;
            if let Some(fo) = features_out.as_mut() {
                let (l, f) = model.logits_and_features(&x)?;
                let (lv, k) = to_rows(&l)?;
                let (fv, d) = to_rows(&f)?;
                logits_out.push(&lv, k)?;
                fo.push(&fv, d)?;
                (classes, dim) = (k, Some(d));
            } else {
                let (lv, k) = to_rows(&model.logits(&x)?)?;
                logits_out.push(&lv, k)?;
                classes = k;
            }
            pb.inc(rows);
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    logits_out.finish()?;
    if let Some(fo) = features_out {
        fo.finish()?;
    }
    Ok(ExtractSummary {
        rows: n,
        classes,
        feature_dim: dim,
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
