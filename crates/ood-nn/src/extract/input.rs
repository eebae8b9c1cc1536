//! Inputs to run a model on ([`InputSet`]): `uint8` images normalized on the fly by the
//! [`ood_data::batch::BatchLoader`] worker threads, or `float32` model input read one batch at a
//! time.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ood_core::io::npy::{self, Dtype, NpyFile};
use ood_data::batch::{BatchConfig, BatchLoader, ImageSource};
use ood_data::formats::npy_images::NpyImages;
use ood_data::transforms::{Normalize, Pipeline};
use tch::Tensor;

use super::{InferError, Result};

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
            return Err(InferError::ZeroBatchSize);
        }
        match self {
            InputSet::Images { images, len } => {
                let source: Arc<dyn ImageSource> = if *len == images.len() {
                    images.clone()
                } else {
                    Arc::new(FirstImages {
                        inner: images.clone(),
                        len: *len,
                    })
                };
                let normalize = normalize.ok_or(InferError::NoNormalization)?;
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
struct FirstImages {
    inner: Arc<NpyImages>,
    len: usize,
}

impl ImageSource for FirstImages {
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
