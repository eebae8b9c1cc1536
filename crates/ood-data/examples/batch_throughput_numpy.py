"""Reference for `batch_throughput.rs`: the same augmentation (random crop with 4-pixel zero
padding, horizontal flip with p = 0.5, per-channel normalization to N x C x H x W float32) on the
same kind of data (seeded random uint8 images, batch 128, one shuffled epoch, last partial batch
dropped), written as a vectorized numpy pipeline on one thread: what a fast Python loader does.

Run: .venv/bin/python crates/ood-data/examples/batch_throughput_numpy.py
"""
import time

import numpy as np


def epoch(images, mean, std, rng, batch=128, pad=4):
    n, h, w, c = images.shape
    perm = rng.permutation(n)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (-mean / std).astype(np.float32)
    count = 0
    for b in range(n // batch):
        idx = perm[b * batch:(b + 1) * batch]
        x = np.pad(images[idx], ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        dy = rng.integers(0, 2 * pad + 1, batch)
        dx = rng.integers(0, 2 * pad + 1, batch)
        flip = rng.random(batch) < 0.5
        ar_h, ar_w = np.arange(h), np.arange(w)
        rows = dy[:, None] + ar_h[None, :]
        cols = dx[:, None] + np.where(flip[:, None], ar_w[::-1][None, :], ar_w[None, :])
        crop = x[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]
        out = crop.transpose(0, 3, 1, 2).astype(np.float32) * scale[None, :, None, None] + shift[None, :, None, None]
        count += out.shape[0] > 0
    return count


def main():
    rng = np.random.default_rng(0)
    print("| images | batches | seconds | batches/s | images/s |")
    print("|---|---|---|---|---|")
    cases = [
        ("32x32x3 (CIFAR)", (50_000, 32, 32, 3), np.array([125.3, 123.0, 113.9]) / 255, np.array([63.0, 62.1, 66.7]) / 255),
        ("28x28x1", (60_000, 28, 28, 1), np.array([0.5]), np.array([0.5])),
    ]
    for name, shape, mean, std in cases:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        epoch(images, mean, std, rng)  # warm-up
        t = time.perf_counter()
        nb = epoch(images, mean, std, rng)
        s = time.perf_counter() - t
        print(f"| {name} | {nb} | {s:.3f} | {nb / s:.0f} | {nb * 128 / s:.0f} |")


if __name__ == "__main__":
    main()
