//! Batch iterator: coverage, determinism across worker counts, labels, normalization, early drop
//! and worker failure.

use std::sync::Arc;

use ndarray::{Array1, Array4};
use ood_data::batch::{BatchConfig, BatchLoader, ImageSource};
use ood_data::transforms::{Normalize, Pipeline};
use ood_data::ImageSet;

fn set(n: usize, h: usize, w: usize, c: usize) -> ImageSet {
    ImageSet {
        images: Array4::from_shape_fn((n, h, w, c), |(i, y, x, ch)| {
            (i * 7 + y * 3 + x + ch * 11) as u8
        }),
        labels: Some(Array1::from_iter((0..n).map(|i| (i % 10) as i64))),
    }
}

fn loader(s: ImageSet, p: Pipeline, cfg: BatchConfig) -> BatchLoader {
    BatchLoader::new(Arc::new(s), p, cfg).unwrap()
}

#[test]
fn epoch_covers_every_index_once_and_reshuffles() {
    let l = loader(
        set(103, 8, 8, 3),
        Pipeline::cifar_test(),
        BatchConfig {
            batch_size: 10,
            ..Default::default()
        },
    );
    assert_eq!(l.batches_per_epoch(), 11);
    let e0: Vec<usize> = l.epoch(0).flat_map(|b| b.unwrap().indices).collect();
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..103).collect::<Vec<_>>());
    let e1: Vec<usize> = l.epoch(1).flat_map(|b| b.unwrap().indices).collect();
    assert_ne!(e0, e1);
    assert_ne!(e0, (0..103).collect::<Vec<_>>());
    let last = l.epoch(0).last().unwrap().unwrap();
    assert_eq!(last.images.shape(), &[3, 3, 8, 8]);
    let dropping = loader(
        set(103, 8, 8, 3),
        Pipeline::cifar_test(),
        BatchConfig {
            batch_size: 10,
            drop_last: true,
            ..Default::default()
        },
    );
    assert_eq!(dropping.epoch(0).count(), 10);
    let ordered = loader(
        set(25, 2, 2, 3),
        Pipeline::cifar_test(),
        BatchConfig {
            batch_size: 10,
            shuffle: false,
            ..Default::default()
        },
    );
    assert_eq!(
        ordered
            .epoch(5)
            .flat_map(|b| b.unwrap().indices)
            .collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
}

#[test]
fn batches_do_not_depend_on_worker_count() {
    let make = |workers, depth| {
        let cfg = BatchConfig {
            batch_size: 16,
            seed: 42,
            workers,
            depth,
            ..Default::default()
        };
        loader(set(70, 32, 32, 3), Pipeline::cifar_train(), cfg)
            .epoch(3)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let reference = make(0, 1);
    assert_eq!(reference.len(), 5);
    for (w, d) in [(1, 1), (2, 2), (3, 1), (8, 4)] {
        assert_eq!(make(w, d), reference, "workers {w} depth {d}");
    }
    let other_seed = {
        let cfg = BatchConfig {
            batch_size: 16,
            seed: 43,
            workers: 2,
            ..Default::default()
        };
        loader(set(70, 32, 32, 3), Pipeline::cifar_train(), cfg)
            .epoch(3)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    assert_ne!(other_seed, reference);
}

#[test]
fn labels_and_values_follow_indices() {
    let s = set(30, 4, 5, 3);
    let l = loader(
        s.clone(),
        Pipeline::cifar_test(),
        BatchConfig {
            batch_size: 7,
            seed: 1,
            ..Default::default()
        },
    );
    let n = Normalize::cifar();
    for b in l.epoch(0) {
        let b = b.unwrap();
        let labels = b.labels.unwrap();
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(labels[k], (i % 10) as i64);
            for (ch, y, x) in [(0, 0, 0), (2, 3, 4), (1, 2, 1)] {
                let want = (s.images[[i, y, x, ch]] as f32 / 255.0 - n.mean[ch]) / n.std[ch];
                assert!((b.images[[k, ch, y, x]] - want).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn unlabelled_gray_source_and_validation() {
    let s = ImageSet {
        images: Array4::zeros((9, 28, 28, 1)),
        labels: None,
    };
    let p = Pipeline {
        steps: vec![],
        normalize: Normalize {
            mean: vec![0.5],
            std: vec![0.5],
        },
    };
    let l = loader(
        s.clone(),
        p,
        BatchConfig {
            batch_size: 4,
            ..Default::default()
        },
    );
    let b = l.epoch(0).next().unwrap().unwrap();
    assert!(b.labels.is_none());
    assert_eq!(b.images.shape(), &[4, 1, 28, 28]);
    assert!(b.images.iter().all(|&v| v == -1.0));
    // CIFAR normalization (3 channels) on gray images is refused up front.
    let err = BatchLoader::new(
        Arc::new(s.clone()),
        Pipeline::cifar_test(),
        BatchConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("3 means"), "{err}");
    assert!(BatchLoader::new(
        Arc::new(s),
        Pipeline::cifar_test(),
        BatchConfig {
            batch_size: 0,
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn dropping_early_stops_workers() {
    let cfg = BatchConfig {
        batch_size: 2,
        workers: 3,
        depth: 1,
        ..Default::default()
    };
    let l = loader(set(1000, 8, 8, 3), Pipeline::cifar_test(), cfg);
    let mut it = l.epoch(0);
    assert_eq!(it.len(), 500);
    it.next().unwrap().unwrap();
    drop(it); // must return (workers blocked on full channels are released and joined)
}

struct Exploding;
impl ImageSource for Exploding {
    fn len(&self) -> usize {
        10
    }
    fn image_shape(&self) -> (usize, usize, usize) {
        (2, 2, 1)
    }
    fn read_image(&self, index: usize, out: &mut [u8]) -> ood_data::Result<()> {
        assert!(index != 7, "source failure at 7");
        out.fill(1);
        Ok(())
    }
}

#[test]
fn worker_panic_reaches_the_consumer() {
    let p = Pipeline {
        steps: vec![],
        normalize: Normalize::unit(1),
    };
    let l = BatchLoader::new(
        Arc::new(Exploding),
        p,
        BatchConfig {
            batch_size: 1,
            shuffle: false,
            workers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.epoch(0).count()));
    let msg = r.unwrap_err();
    let text = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("source failure at 7"), "{text}");
}

/// `tiny_images.bin` as released: 3072-byte records, column-major (`C x W x H` row-major); every
/// byte of record `r` is `r`, so a batch shows which file records it read.
fn tiny_images_fixture(
    dir: &std::path::Path,
    records: usize,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = dir.join("tiny_images.bin");
    let bytes: Vec<u8> = (0..records).flat_map(|r| vec![r as u8; 3072]).collect();
    std::fs::write(&bin, bytes).unwrap();
    // the code of record's 80mn_cifar_idxs.txt: 1-based indices, one per line
    let idxs = dir.join("80mn_cifar_idxs.txt");
    std::fs::write(&idxs, "3\n8\n9\n").unwrap();
    (bin, idxs)
}

/// The code of record's outlier sampling: each epoch reads consecutive (kept) images from a
/// random offset, wrapping, the CIFAR overlaps skipped; streamed by positioned reads.
#[test]
fn tiny_images_epochs_read_consecutively_from_a_random_offset() {
    use ood_data::formats::tiny_images::TinyImages;
    let tmp = tempfile::tempdir().unwrap();
    let (bin, idxs) = tiny_images_fixture(tmp.path(), 40);
    let tiny = TinyImages::open(&bin)
        .unwrap()
        .with_exclusion_file(&idxs)
        .unwrap();
    assert_eq!(tiny.len(), 37);
    let excluded_raw = [2u8, 7, 8];
    let l = BatchLoader::new(
        Arc::new(tiny),
        Pipeline {
            steps: vec![],
            normalize: Normalize::unit(3),
        },
        BatchConfig {
            batch_size: 8,
            drop_last: true,
            workers: 2,
            ..Default::default()
        },
    )
    .unwrap()
    .with_random_offset();
    let mut starts = Vec::new();
    for epoch in 0..6 {
        let start = l.epoch_offset(epoch).unwrap();
        starts.push(start);
        let batches: Vec<_> = l.epoch(epoch).map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 4);
        let seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(seen, (0..32).map(|i| (start + i) % 37).collect::<Vec<_>>());
        for b in &batches {
            for (k, _) in b.indices.iter().enumerate() {
                let raw = (b.images[[k, 0, 0, 0]] * 255.0).round() as u8;
                assert!(
                    !excluded_raw.contains(&raw),
                    "excluded record {raw} was read"
                );
            }
        }
        // kept image k is file record k + (excluded before it): e.g. kept 2 is record 3
        let first = &batches[0];
        let raw0 = (first.images[[0, 0, 0, 0]] * 255.0).round() as usize;
        let kept = first.indices[0];
        let skipped = excluded_raw
            .iter()
            .filter(|&&e| (e as usize) <= raw0)
            .count();
        assert_eq!(raw0 - skipped, kept);
        assert_eq!(l.order(epoch)[..32], seen[..]);
    }
    starts.sort();
    starts.dedup();
    assert!(
        starts.len() > 1,
        "the offset must change between epochs: {starts:?}"
    );
}
