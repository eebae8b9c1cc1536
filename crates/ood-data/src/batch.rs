//! Batches for training and evaluation: seeded shuffling, a [`Pipeline`] of transforms per
//! image, `f32` output laid out `N x C x H x W`, and background prefetch on worker threads.
//!
//! Determinism: the order of epoch `e` is a permutation drawn from ChaCha8 keyed by
//! `(seed, e)`, and the augmentation of batch `b` of epoch `e` draws from ChaCha8 keyed by
//! `(seed, e, b)`. A batch's content therefore depends only on `(seed, epoch, batch index)`,
//! never on the number of workers or on thread timing.
//!
//! Outliers in the code of record's order ([`BatchLoader::with_random_offset`]): energy_ood's
//! `train.py` reads its 80M Tiny Images loader unshuffled, after setting
//! `train_loader_out.dataset.offset = np.random.randint(len(dataset))` at every epoch, so an epoch
//! reads images `offset, offset + 1, ...` (wrapping). Here the offset of epoch `e` is drawn from
//! ChaCha8 keyed by `(seed, e)`, and the order is never materialized (79 million indices would be
//! 634 MB): batch `b` holds `(offset + b * batch + i) % n`.
//!
//! Prefetch: worker `w` of `W` builds batches `w, w + W, w + 2W, ...` into its own bounded
//! channel, and the consumer takes them round-robin, so batches arrive in order with no
//! reordering buffer and at most `W * depth` batches in memory. Dropping the iterator stops the
//! workers (their next send fails) and joins them.
//!
//! Failures: reading an image can fail (a file that shrank or went away while open). The batch
//! that needed it is an `Err` naming the file and byte offset, and the epoch ends there: a worker
//! stops after sending its error, and the iterator yields nothing after it.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use ndarray::{Array1, Array4, ArrayView3};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::transforms::Pipeline;
use crate::{Error, ImageSet, Result};

/// Random access to images (`H x W x C` `u8`) and optional labels. Implemented by [`ImageSet`],
/// [`crate::formats::npy_images::NpyImages`] and [`crate::formats::tiny_images::TinyImages`].
pub trait ImageSource: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `(H, W, C)` shared by every image.
    fn image_shape(&self) -> (usize, usize, usize);
    /// Copies image `index` into `out` (`H * W * C` bytes, row-major `H x W x C`); fails, naming
    /// the file and offset, when a file-backed source can no longer read it.
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<()>;
    fn label(&self, _index: usize) -> Option<i64> {
        None
    }
}

impl ImageSource for ImageSet {
    fn len(&self) -> usize {
        ImageSet::len(self)
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        ImageSet::image_shape(self)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> Result<()> {
        let img = self.images.index_axis(ndarray::Axis(0), index);
        match img.as_slice() {
            Some(s) => out.copy_from_slice(s),
            None => out.iter_mut().zip(img.iter()).for_each(|(o, &v)| *o = v),
        }
        Ok(())
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[index])
    }
}

/// Settings of a [`BatchLoader`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchConfig {
    /// Images per batch (the paper: 128 in-distribution, 256 outliers).
    pub batch_size: usize,
    pub shuffle: bool,
    /// Drop a last, smaller batch (training) or keep it (evaluation).
    pub drop_last: bool,
    pub seed: u64,
    /// Worker threads; 0 builds batches on the consumer's thread.
    pub workers: usize,
    /// Batches each worker may have ready ahead of the consumer.
    pub depth: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            batch_size: 128,
            shuffle: true,
            drop_last: false,
            seed: 0,
            workers: 2,
            depth: 2,
        }
    }
}

/// One batch: normalized `N x C x H x W` images, labels when the source has them, and the source
/// indices the batch was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Array4<f32>,
    pub labels: Option<Array1<i64>>,
    pub indices: Vec<usize>,
}

/// Makes epochs of [`Batch`]es from a source and a pipeline.
#[derive(Clone)]
pub struct BatchLoader {
    source: Arc<dyn ImageSource>,
    pipeline: Arc<Pipeline>,
    config: BatchConfig,
    out_chw: (usize, usize, usize),
    /// Epochs read sequentially from a random offset (the code of record's outlier order).
    random_offset: bool,
}

impl std::fmt::Debug for BatchLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchLoader")
            .field("len", &self.source.len())
            .field("config", &self.config)
            .finish()
    }
}

/// Domain tags keeping the order and augmentation streams apart.
const ORDER_STREAM: u64 = 0x006f_7264_6572; // "order"
const AUGMENT_STREAM: u64 = 0x6175_676d; // "augm"
const OFFSET_STREAM: u64 = 0x6f66_6673; // "offs"

/// The sample order of one epoch.
#[derive(Debug, Clone)]
enum EpochOrder {
    /// An explicit list (a seeded permutation, or `0..n`).
    List(Arc<Vec<usize>>),
    /// `(start + i) % n`, computed per batch.
    Offset { start: usize, n: usize },
}

impl EpochOrder {
    /// Source indices of batch `b` of `bs` images.
    fn span(&self, b: usize, bs: usize) -> Vec<usize> {
        match self {
            EpochOrder::List(order) => order[b * bs..((b + 1) * bs).min(order.len())].to_vec(),
            EpochOrder::Offset { start, n } => (b * bs..((b + 1) * bs).min(*n))
                .map(|i| (start + i) % n)
                .collect(),
        }
    }
}

fn rng_for(seed: u64, epoch: u64, batch: u64, domain: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, v) in [seed, epoch, batch, domain].into_iter().enumerate() {
        key[i * 8..(i + 1) * 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

impl BatchLoader {
    /// Checks that the pipeline fits the source's images (channel count of the normalization).
    pub fn new(
        source: Arc<dyn ImageSource>,
        pipeline: Pipeline,
        config: BatchConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::Invalid {
                what: "batch size",
                reason: "must be positive".into(),
            });
        }
        let (h, w, c) = pipeline.output_hwc(source.image_shape());
        if h == 0 || w == 0 || c == 0 {
            return Err(Error::Invalid {
                what: "pipeline",
                reason: format!("output {h}x{w}x{c} is empty"),
            });
        }
        if pipeline.normalize.mean.len() != c || pipeline.normalize.std.len() != c {
            return Err(Error::Invalid {
                what: "normalization",
                reason: format!(
                    "{} means / {} stds but images have {c} channels",
                    pipeline.normalize.mean.len(),
                    pipeline.normalize.std.len()
                ),
            });
        }
        if pipeline
            .normalize
            .std
            .iter()
            .any(|&s| !(s.is_finite() && s > 0.0))
        {
            return Err(Error::Invalid {
                what: "normalization std",
                reason: "must be positive and finite".into(),
            });
        }
        Ok(BatchLoader {
            source,
            pipeline: Arc::new(pipeline),
            config,
            out_chw: (c, h, w),
            random_offset: false,
        })
    }

    /// Reads every epoch in source order from a random offset, wrapping (the code of record's
    /// outlier sampling; see the module documentation). Replaces `shuffle`.
    pub fn with_random_offset(mut self) -> Self {
        self.random_offset = true;
        self
    }

    /// The first source index of `epoch` with [`BatchLoader::with_random_offset`], else `None`.
    pub fn epoch_offset(&self, epoch: u64) -> Option<usize> {
        use rand::Rng;
        let n = self.source.len();
        (self.random_offset && n > 0)
            .then(|| rng_for(self.config.seed, epoch, 0, OFFSET_STREAM).random_range(0..n))
    }

    fn epoch_order(&self, epoch: u64) -> EpochOrder {
        match self.epoch_offset(epoch) {
            Some(start) => EpochOrder::Offset {
                start,
                n: self.source.len(),
            },
            None => EpochOrder::List(Arc::new(self.order(epoch))),
        }
    }

    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// `(C, H, W)` of every output image.
    pub fn output_chw(&self) -> (usize, usize, usize) {
        self.out_chw
    }

    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.source.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of an epoch (a seeded permutation, or `0..n` without shuffling, or the
    /// rotation of `0..n` by [`BatchLoader::epoch_offset`]). Materializes `n` indices: epochs
    /// themselves do not call it with a random offset.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        if let Some(start) = self.epoch_offset(epoch) {
            let n = self.source.len();
            return (0..n).map(|i| (start + i) % n).collect();
        }
        let mut idx: Vec<usize> = (0..self.source.len()).collect();
        if self.config.shuffle {
            idx.shuffle(&mut rng_for(self.config.seed, epoch, 0, ORDER_STREAM));
        }
        idx
    }

    /// Builds batch `b` of an epoch from its indices (on the calling thread).
    pub fn make_batch(&self, epoch: u64, b: usize, indices: &[usize]) -> Result<Batch> {
        let (c, h, w) = self.out_chw;
        let per_out = c * h * w;
        let (ih, iw, ic) = self.source.image_shape();
        let mut raw = vec![0u8; ih * iw * ic];
        let mut images = Array4::<f32>::zeros((indices.len(), c, h, w));
        let out = images.as_slice_mut().expect("fresh array is contiguous");
        let mut rng = rng_for(self.config.seed, epoch, b as u64, AUGMENT_STREAM);
        for (k, &i) in indices.iter().enumerate() {
            self.source.read_image(i, &mut raw)?;
            let view = ArrayView3::from_shape((ih, iw, ic), &raw).expect("source image size");
            self.pipeline
                .apply_into(view, &mut rng, &mut out[k * per_out..(k + 1) * per_out]);
        }
        let labels = if indices
            .first()
            .and_then(|&i| self.source.label(i))
            .is_some()
        {
            Some(
                indices
                    .iter()
                    .map(|&i| self.source.label(i).unwrap_or(-1))
                    .collect(),
            )
        } else {
            None
        };
        Ok(Batch {
            images,
            labels,
            indices: indices.to_vec(),
        })
    }

    /// The batches of one epoch, built ahead by `config.workers` threads.
    pub fn epoch(&self, epoch: u64) -> BatchIter {
        let order = Arc::new(self.epoch_order(epoch));
        let total = self.batches_per_epoch();
        let bs = self.config.batch_size;
        let workers = self.config.workers.min(total);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded(self.config.depth.max(1));
            let loader = self.clone();
            let order = Arc::clone(&order);
            let handle = std::thread::Builder::new()
                .name(format!("ood-data-batch-{w}"))
                .spawn(move || {
                    for b in (w..total).step_by(workers) {
                        let batch = loader.make_batch(epoch, b, &order.span(b, bs));
                        let failed = batch.is_err();
                        if tx.send(batch).is_err() || failed {
                            return; // consumer gone, or the epoch ends at this error
                        }
                    }
                })
                .expect("spawning a batch worker thread");
            receivers.push(rx);
            handles.push(Some(handle));
        }
        BatchIter {
            loader: self.clone(),
            epoch,
            order,
            next: 0,
            total,
            receivers,
            handles,
        }
    }
}

/// Iterator over one epoch's batches (see [`BatchLoader::epoch`]); after an `Err` it ends.
pub struct BatchIter {
    loader: BatchLoader,
    epoch: u64,
    order: Arc<EpochOrder>,
    next: usize,
    total: usize,
    receivers: Vec<Receiver<Result<Batch>>>,
    handles: Vec<Option<JoinHandle<()>>>,
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        let batch = self.receive(b);
        if batch.is_err() {
            self.next = self.total; // nothing after an error
        }
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl BatchIter {
    /// Batch `b`, built here without workers, else from its worker's channel.
    fn receive(&mut self, b: usize) -> Result<Batch> {
        if self.receivers.is_empty() {
            let idx = self.order.span(b, self.loader.config.batch_size);
            return self.loader.make_batch(self.epoch, b, &idx);
        }
        let w = b % self.receivers.len();
        match self.receivers[w].recv() {
            Ok(batch) => batch,
            Err(_) => {
                // The worker ended without sending: it panicked. Re-raise its panic here.
                if let Some(Err(p)) = self.handles[w].take().map(JoinHandle::join) {
                    std::panic::resume_unwind(p);
                }
                panic!("batch worker {w} stopped early");
            }
        }
    }
}

impl ExactSizeIterator for BatchIter {}

impl Drop for BatchIter {
    fn drop(&mut self) {
        self.receivers.clear(); // blocked senders now fail and their threads return
        for h in self.handles.iter_mut().filter_map(Option::take) {
            let _ = h.join();
        }
    }
}
