//! Batching throughput: batches per second of `BatchLoader` with augmentation, for CIFAR-sized
//! (32x32x3, random crop with 4-pixel padding + flip + CIFAR normalization) and 28x28x1 images
//! (same augmentation at 28, normalization 0.5/0.5), batch 128, for 0 (inline), 1 and 2 worker
//! threads; and how long a consumer that spends a fixed time per batch (a stand-in for the
//! model's step) waits for data with prefetch on.
//!
//! The CIFAR-sized set is measured twice: in memory, and from a `.npy` file through
//! [`ood_data::formats::npy_images::NpyImages`] (one positioned read per image, the way
//! `eood train` and `eood extract` read `.npy` images).
//!
//! Run (release): `cargo run --release -p ood-data --example batch_throughput`
//! Images are synthetic (seeded random bytes), so the figures are reproducible anywhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array4;
use ood_data::batch::{BatchConfig, BatchLoader};
use ood_data::transforms::{Normalize, Pipeline, Step};
use ood_data::ImageSet;
use rand::{Rng, SeedableRng};

fn synthetic(n: usize, h: usize, w: usize, c: usize) -> ImageSet {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut data = vec![0u8; n * h * w * c];
    rng.fill(&mut data[..]);
    ImageSet {
        images: Array4::from_shape_vec((n, h, w, c), data).unwrap(),
        labels: Some((0..n as i64).map(|i| i % 10).collect()),
    }
}

fn augment(side: usize, normalize: Normalize) -> Pipeline {
    Pipeline {
        steps: vec![
            Step::RandomCrop {
                height: side,
                width: side,
                padding: 4,
            },
            Step::HorizontalFlip { p: 0.5 },
        ],
        normalize,
    }
}

/// One epoch as fast as the consumer can take it; returns (batches, seconds).
fn epoch_rate(l: &BatchLoader, epoch: u64) -> (usize, f64) {
    let t = Instant::now();
    let mut n = 0;
    let mut checksum = 0f32;
    for b in l.epoch(epoch) {
        let b = b.expect("in-memory images cannot fail");
        checksum += b.images[[0, 0, 0, 0]];
        n += 1;
    }
    std::hint::black_box(checksum);
    (n, t.elapsed().as_secs_f64())
}

/// A consumer that busy-works `step` per batch: total time blocked in `next()` after the first batch.
fn consumer_wait(l: &BatchLoader, step: Duration, batches: usize) -> (Duration, Duration) {
    let mut it = l.epoch(99);
    it.next().unwrap().unwrap(); // pipeline fill
    let start = Instant::now();
    let mut waited = Duration::ZERO;
    for _ in 0..batches {
        let t = Instant::now();
        let b = it.next().unwrap().unwrap();
        waited += t.elapsed();
        std::hint::black_box(&b);
        let s = Instant::now();
        while s.elapsed() < step {
            std::hint::spin_loop();
        }
    }
    (waited, start.elapsed())
}

fn main() {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    println!("available cores: {cores}; load average before: {}", load());
    let cases = [
        (
            "32x32x3 (CIFAR)",
            synthetic(50_000, 32, 32, 3),
            augment(32, Normalize::cifar()),
        ),
        (
            "28x28x1",
            synthetic(60_000, 28, 28, 1),
            augment(
                28,
                Normalize {
                    mean: vec![0.5],
                    std: vec![0.5],
                },
            ),
        ),
    ];
    println!("| images | workers | batches | seconds | batches/s | images/s |");
    println!("|---|---|---|---|---|---|");
    let mut loaders = Vec::new();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut sources: Vec<(String, Arc<dyn ood_data::batch::ImageSource>, Pipeline)> = Vec::new();
    for (name, set, pipe) in cases {
        let from_file = name.starts_with("32x32x3").then(|| {
            let npy = dir.path().join("cifar.npy");
            let values = set.images.as_slice().expect("standard layout");
            ood_core::io::npy::write_array(&npy, set.images.shape(), values).expect("writing .npy");
            ood_data::formats::npy_images::NpyImages::open(&npy).expect("reading .npy")
        });
        sources.push((name.to_string(), Arc::new(set), pipe.clone()));
        if let Some(file) = from_file {
            sources.push((format!("{name}, .npy file"), Arc::new(file), pipe));
        }
    }
    for (name, src, pipe) in &sources {
        let name = name.as_str();
        for workers in [0, 1, 2] {
            let cfg = BatchConfig {
                batch_size: 128,
                shuffle: true,
                drop_last: true,
                seed: 0,
                workers,
                depth: 4,
            };
            let l = BatchLoader::new(Arc::clone(src), pipe.clone(), cfg).unwrap();
            epoch_rate(&l, 0); // warm-up (page faults, thread start)
            let (n, s) = epoch_rate(&l, 1);
            println!(
                "| {name} | {workers} | {n} | {s:.3} | {:.0} | {:.0} |",
                n as f64 / s,
                (n * 128) as f64 / s
            );
            if workers == 1 {
                loaders.push((name, l));
            }
        }
    }
    println!();
    println!("consumer busy 5 ms per batch, 1 prefetch worker (depth 4), 200 batches:");
    println!("| images | consumer time | waited for data | waited % |");
    println!("|---|---|---|---|");
    for (name, l) in &loaders {
        let (waited, total) = consumer_wait(l, Duration::from_millis(5), 200);
        println!(
            "| {name} | {:.3} s | {:.4} s | {:.2} % |",
            total.as_secs_f64(),
            waited.as_secs_f64(),
            100.0 * waited.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!("load average after: {}", load());
}
