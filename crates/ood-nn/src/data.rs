//! Glue between ood-data and training: labelled `.npy` image sets, the preprocessing recorded in
//! checkpoints, and loaders with the code of record's augmentation.
use std::path::Path;
use std::sync::Arc;

use ood_data::batch::{BatchConfig, BatchLoader, ImageSource};
use ood_data::formats::npy_images::NpyImages;
use ood_data::transforms::{Normalize, Pipeline, Step};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Fashion-MNIST training-set channel mean and standard deviation (owned by the data registry).
pub use ood_data::registry::{FMNIST_MEAN, FMNIST_STD};

/// What the network expects as input: image size and per-channel normalization of [0, 1] pixels.
/// Stored in checkpoints so extraction preprocesses exactly as training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl InputSpec {
    /// The code of record's CIFAR normalization for 3 channels, Fashion-MNIST's for 1 channel,
    /// plain [0, 1] scaling otherwise.
    pub fn default_for(height: usize, width: usize, channels: usize) -> Self {
        let n = match channels {
            3 => Normalize::cifar(),
            1 => Normalize {
                mean: vec![FMNIST_MEAN],
                std: vec![FMNIST_STD],
            },
            c => Normalize::unit(c),
        };
        Self {
            height,
            width,
            channels,
            mean: n.mean,
            std: n.std,
        }
    }

    pub fn normalize(&self) -> Normalize {
        Normalize {
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }

    /// Training augmentation of the code of record: random crop to the image size with 4 pixels
    /// of zero padding, then a horizontal flip with probability 1/2.
    pub fn train_pipeline(&self) -> Pipeline {
        self.pipeline(Augmentation::CropFlip)
    }

    /// Normalization after the steps of `augmentation`.
    pub fn pipeline(&self, augmentation: Augmentation) -> Pipeline {
        let crop = Step::RandomCrop {
            height: self.height,
            width: self.width,
            padding: 4,
        };
        let flip = Step::HorizontalFlip { p: 0.5 };
        let steps = match augmentation {
            Augmentation::CropFlip => vec![crop, flip],
            Augmentation::Flip => vec![flip],
            Augmentation::None => vec![],
        };
        Pipeline {
            steps,
            normalize: self.normalize(),
        }
    }

    /// Evaluation: normalization only.
    pub fn test_pipeline(&self) -> Pipeline {
        Pipeline {
            steps: vec![],
            normalize: self.normalize(),
        }
    }
}

/// Training-time augmentation of a stream of images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Augmentation {
    /// Random 4-pixel-padded crop, then a horizontal flip (the code of record for CIFAR, ID and
    /// outliers alike).
    #[default]
    CropFlip,
    /// Horizontal flip only (Outlier Exposure's SVHN outliers).
    Flip,
    /// None (Outlier Exposure's SVHN in-distribution data: digits are not flipped).
    None,
}

/// Images from a `.npy` (`N x H x W x C` u8, memory-mapped) with optional labels from another
/// `.npy` (integers).
pub struct NpySet {
    images: NpyImages,
    labels: Option<Vec<i64>>,
}

impl NpySet {
    pub fn open(images: &Path, labels: Option<&Path>) -> Result<Self> {
        let imgs = NpyImages::open(images)?;
        let labels = match labels {
            Some(p) => {
                let l = ood_core::io::npy::read_labels(p)?;
                if l.len() != imgs.len() {
                    return Err(Error::LabelCount {
                        labels_path: p.to_path_buf(),
                        labels: l.len(),
                        images_path: images.to_path_buf(),
                        images: imgs.len(),
                    });
                }
                if let Some(bad) = l.iter().find(|&&y| y < 0) {
                    return Err(Error::NegativeLabelIn {
                        path: p.to_path_buf(),
                        label: *bad,
                    });
                }
                Some(l)
            }
            None => None,
        };
        if imgs.is_empty() {
            return Err(Error::NoImages {
                path: images.to_path_buf(),
            });
        }
        Ok(Self {
            images: imgs,
            labels,
        })
    }

    /// Number of classes implied by the labels (max + 1).
    pub fn num_classes(&self) -> Option<i64> {
        self.labels
            .as_ref()
            .and_then(|l| l.iter().max())
            .map(|m| m + 1)
    }
}

impl ImageSource for NpySet {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        self.images.image_shape()
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> ood_data::Result<()> {
        ImageSource::read_image(&self.images, index, out)
    }
    fn label(&self, index: usize) -> Option<i64> {
        self.labels.as_ref().map(|l| l[index])
    }
}

/// A loader over `source` with `pipeline`.
pub fn loader(
    source: Arc<dyn ImageSource>,
    pipeline: Pipeline,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    workers: usize,
) -> Result<BatchLoader> {
    let config = BatchConfig {
        batch_size,
        shuffle,
        drop_last: false,
        seed,
        workers,
        depth: 2,
    };
    Ok(BatchLoader::new(source, pipeline, config)?)
}
