//! The exact search behind [`super::knn`]: every query against every bank row, in f32, with
//! the k best kept per query, then those k re-measured in f64.
//!
//! The bank is packed once (at fit or on the first search after a load, never per call) into
//! panels of [`PANEL`] rows laid out dimension-major, so that one vector load reads one
//! dimension of 32 bank rows. A tile of [`TILE`] queries times one panel is a register-blocked
//! product (`|q - b|^2 = |b|^2 - 2 q.b + |q|^2`; `|q|^2` is common to a query's candidates and
//! left out), and the distances are compared with each query's current k-th best while still in
//! registers (a bit mask per query), so only the rare candidates leave them. AVX-512 where the
//! CPU has it (detected at run time), otherwise the same loop in portable Rust. Query blocks
//! run in parallel on rayon; each bank panel is used by all tiles of a block while in L1.

use ndarray::{ArrayView1, ArrayView2};
use rayon::prelude::*;

/// Bank rows per panel: two 16-lane f32 vectors.
pub(crate) const PANEL: usize = 32;
/// Queries per register tile (12 x 2 accumulators + the panel's two vectors + a broadcast
/// fill 27 of the 32 AVX-512 registers).
const TILE: usize = 12;
/// Queries per parallel task: their f32 copy (128 KiB at D = 128) stays in the L2 cache
/// while each bank panel (16 KiB) is used by all of them from L1.
const QUERY_BLOCK: usize = 264;

/// The bank in f32, packed: panel p, dimension d, lane j at `(p * dims + d) * PANEL + j`; the
/// last panel padded with zero rows whose squared norm is +inf (never a candidate).
#[derive(Debug)]
pub(crate) struct Bank32 {
    dims: usize,
    rows: usize,
    panels: Vec<f32>,
    norms: Vec<f32>,
}

impl Bank32 {
    /// Pack a bank; `Err(row)` names the first row whose f32 squared norm is not finite.
    pub(crate) fn pack(bank: ArrayView2<f64>) -> Result<Bank32, usize> {
        let (rows, dims) = bank.dim();
        let npanels = rows.div_ceil(PANEL);
        let mut panels = vec![0f32; npanels * dims * PANEL];
        let mut norms = vec![f32::INFINITY; npanels * PANEL];
        for (i, r) in bank.rows().into_iter().enumerate() {
            let (p, j) = (i / PANEL, i % PANEL);
            let mut n = 0f32;
            for (d, &v) in r.iter().enumerate() {
                let v = v as f32;
                panels[(p * dims + d) * PANEL + j] = v;
                n += v * v;
            }
            if !n.is_finite() {
                return Err(i);
            }
            norms[i] = n;
        }
        Ok(Bank32 {
            dims,
            rows,
            panels,
            norms,
        })
    }

    fn panel(&self, p: usize) -> (&[f32], &[f32]) {
        let w = self.dims * PANEL;
        (
            &self.panels[p * w..(p + 1) * w],
            &self.norms[p * PANEL..(p + 1) * PANEL],
        )
    }
}

/// A query's k best so far: a buffer of candidates that beat the bar, compacted to the k best
/// (by distance, then index) whenever it holds 2k, which makes the bar the k-th best distance
/// (+inf until the first compaction). Amortised O(1) per candidate, unlike a heap's O(log k).
struct Best {
    buf: Vec<(f32, usize)>,
    worst: f32,
}

fn by_distance(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

impl Best {
    fn new(k: usize) -> Self {
        Best {
            buf: Vec::with_capacity(2 * k),
            worst: f32::INFINITY,
        }
    }
    #[inline]
    fn offer(&mut self, k: usize, d: f32, index: usize) {
        if d < self.worst {
            self.buf.push((d, index));
            if self.buf.len() >= 2 * k {
                self.keep(k);
                self.worst = self.buf[k - 1].0;
            }
        }
    }
    /// Keep the k best (or all, if fewer).
    fn keep(&mut self, k: usize) {
        if self.buf.len() > k {
            self.buf.select_nth_unstable_by(k - 1, by_distance);
            self.buf.truncate(k);
        }
    }
    fn into_indices(mut self, k: usize) -> Vec<usize> {
        self.keep(k);
        self.buf.into_iter().map(|(_, i)| i).collect()
    }
}

/// Which inner loop: AVX-512 when the CPU has it, else portable (tests force the portable one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    pub(crate) fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel::Avx512;
        }
        Kernel::Portable
    }
}

/// For each query row (f32, row-major, `bank.dims` columns), the indices of its k nearest bank
/// rows by the f32 distance (unsorted). `k <= bank.rows`.
pub(crate) fn candidates(
    queries: &[f32],
    bank: &Bank32,
    k: usize,
    kernel: Kernel,
) -> Vec<Vec<usize>> {
    let d = bank.dims;
    let n = queries.len() / d.max(1);
    let blocks: Vec<Vec<Vec<usize>>> = (0..n)
        .step_by(QUERY_BLOCK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|s| {
            let e = (s + QUERY_BLOCK).min(n);
            block(&queries[s * d..e * d], bank, k, kernel)
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// One block of queries against the whole bank: the block packed into tiles (dimension-major,
/// `TILE` queries side by side, zero rows padding the last), then every panel against every
/// tile while the panel is in L1.
fn block(q: &[f32], bank: &Bank32, k: usize, kernel: Kernel) -> Vec<Vec<usize>> {
    let d = bank.dims;
    let n = q.len() / d.max(1);
    let ntiles = n.div_ceil(TILE);
    let mut tiles = vec![0f32; ntiles * d * TILE];
    for (r, row) in q.chunks_exact(d.max(1)).enumerate() {
        let (t, i) = (r / TILE, r % TILE);
        for (dd, &v) in row.iter().enumerate() {
            tiles[(t * d + dd) * TILE + i] = v;
        }
    }
    let mut best: Vec<Best> = (0..n).map(|_| Best::new(k)).collect();
    let mut dist = [[0f32; PANEL]; TILE];
    for p in 0..bank.rows.div_ceil(PANEL) {
        let (panel, norms) = bank.panel(p);
        for t in 0..ntiles {
            let rows = (n - t * TILE).min(TILE);
            let mine = &mut best[t * TILE..t * TILE + rows];
            let mut worst = [f32::NEG_INFINITY; TILE];
            for (w, b) in worst.iter_mut().zip(mine.iter()) {
                *w = b.worst;
            }
            let tile = &tiles[t * d * TILE..(t + 1) * d * TILE];
            let masks = tile_distances(kernel, tile, d, panel, norms, &worst, &mut dist);
            // bit j of masks[i]: bank row j of the panel beats query i's k-th best
            for (i, b) in mine.iter_mut().enumerate() {
                let mut m = masks[i];
                while m != 0 {
                    let j = m.trailing_zeros() as usize;
                    m &= m - 1;
                    b.offer(k, dist[i][j], p * PANEL + j);
                }
            }
        }
    }
    best.into_iter().map(|b| b.into_indices(k)).collect()
}

/// `dist[i][j] = |b_j|^2 - 2 q_i . b_j` for the TILE queries of a packed tile and one panel;
/// returns per query the bit mask of the bank rows whose distance is below `worst[i]`.
fn tile_distances(
    kernel: Kernel,
    tile: &[f32],
    d: usize,
    panel: &[f32],
    norms: &[f32],
    worst: &[f32; TILE],
    dist: &mut [[f32; PANEL]; TILE],
) -> [u32; TILE] {
    assert!(tile.len() >= TILE * d && panel.len() >= d * PANEL && norms.len() >= PANEL);
    match kernel {
        Kernel::Portable => portable(tile, d, panel, norms, worst, dist),
        // SAFETY: Kernel::Avx512 is only chosen when the CPU reports avx512f (Kernel::best);
        // the slice lengths are asserted above.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { avx512(tile, d, panel, norms, worst, dist) },
    }
}

fn portable(
    tile: &[f32],
    d: usize,
    panel: &[f32],
    norms: &[f32],
    worst: &[f32; TILE],
    dist: &mut [[f32; PANEL]; TILE],
) -> [u32; TILE] {
    let mut masks = [0u32; TILE];
    for (i, out) in dist.iter_mut().enumerate() {
        let mut acc = [0f32; PANEL];
        for dd in 0..d {
            let qv = tile[dd * TILE + i];
            let b = &panel[dd * PANEL..(dd + 1) * PANEL];
            for (a, &bv) in acc.iter_mut().zip(b) {
                *a += qv * bv;
            }
        }
        for (j, ((o, a), n)) in out.iter_mut().zip(acc).zip(norms).enumerate() {
            *o = n - 2.0 * a;
            masks[i] |= u32::from(*o < worst[i]) << j;
        }
    }
    masks
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(
    tile: &[f32],
    d: usize,
    panel: &[f32],
    norms: &[f32],
    worst: &[f32; TILE],
    dist: &mut [[f32; PANEL]; TILE],
) -> [u32; TILE] {
    use std::arch::x86_64::*;
    let (mut q, mut b) = (tile.as_ptr(), panel.as_ptr());
    let mut lo = [_mm512_setzero_ps(); TILE];
    let mut hi = [_mm512_setzero_ps(); TILE];
    for _ in 0..d {
        // SAFETY: d steps of TILE (queries) and PANEL (bank) values stay inside the slices,
        // whose lengths the caller asserted
        unsafe {
            let (b0, b1) = (_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16)));
            for i in 0..TILE {
                let qv = _mm512_set1_ps(*q.add(i));
                lo[i] = _mm512_fmadd_ps(qv, b0, lo[i]);
                hi[i] = _mm512_fmadd_ps(qv, b1, hi[i]);
            }
            q = q.add(TILE);
            b = b.add(PANEL);
        }
    }
    let m2 = _mm512_set1_ps(-2.0);
    let mut masks = [0u32; TILE];
    // SAFETY: norms holds PANEL values; each dist row is PANEL values
    unsafe {
        let (n0, n1) = (
            _mm512_loadu_ps(norms.as_ptr()),
            _mm512_loadu_ps(norms.as_ptr().add(16)),
        );
        for i in 0..TILE {
            let (d0, d1) = (
                _mm512_fmadd_ps(m2, lo[i], n0),
                _mm512_fmadd_ps(m2, hi[i], n1),
            );
            let w = _mm512_set1_ps(worst[i]);
            let m = u32::from(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(d0, w))
                | (u32::from(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(d1, w)) << 16);
            if m != 0 {
                let out = dist[i].as_mut_ptr();
                _mm512_storeu_ps(out, d0);
                _mm512_storeu_ps(out.add(16), d1);
            }
            masks[i] = m;
        }
    }
    masks
}

/// The k nearest of one query among `idx`, re-measured in f64 and sorted by distance (ties:
/// lower index): indices and distances.
pub(crate) fn exact(
    q: ArrayView1<f64>,
    bank: ArrayView2<f64>,
    idx: Vec<usize>,
) -> (Vec<usize>, Vec<f64>) {
    let q: Vec<f64> = q.to_vec();
    let mut pairs: Vec<(f64, usize)> = idx
        .into_iter()
        .map(|i| {
            let r = bank.row(i);
            let d2 = match r.as_slice() {
                Some(r) => squared_distance(&q, r),
                None => squared_distance(&q, &r.to_vec()),
            };
            (d2.sqrt(), i)
        })
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    pairs.into_iter().map(|(d, i)| (i, d)).unzip()
}

/// `|a - b|^2` in f64, in four running sums (a loop the compiler vectorises).
fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += (x[l] - y[l]) * (x[l] - y[l]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Both kernels give the naive f32 distances (and the masks against a bar), for sizes
    /// with short last tiles and panels; the whole search finds a naive ranking's k nearest.
    #[test]
    #[allow(clippy::needless_range_loop)] // the indices name rows and lanes in the messages
    fn kernels_match_naive_distances() {
        let (n, m, d) = (29, 45, 7);
        let val = |i: usize, j: usize| ((i * 7919 + j * 104_729) % 10_007) as f64 / 3335.0 - 1.5;
        let bank = Array2::from_shape_fn((m, d), |(i, j)| val(i, j));
        let q: Vec<f32> = (0..n * d).map(|x| val(x / d + 100, x % d) as f32).collect();
        let packed = Bank32::pack(bank.view()).unwrap();
        let mut kernels = vec![Kernel::Portable];
        if Kernel::best() != Kernel::Portable {
            kernels.push(Kernel::best());
        }
        let naive = |qi: usize, r: usize| {
            let b = bank.row(r);
            let (mut dot, mut nn) = (0f64, 0f64);
            for c in 0..d {
                dot += q[qi * d + c] as f64 * b[c];
                nn += b[c] * b[c];
            }
            nn - 2.0 * dot
        };
        for &kernel in &kernels {
            for t in 0..n.div_ceil(TILE) {
                let rows = (n - t * TILE).min(TILE);
                let mut tile = vec![0f32; TILE * d];
                for i in 0..rows {
                    for c in 0..d {
                        tile[c * TILE + i] = q[(t * TILE + i) * d + c];
                    }
                }
                // a bar that some rows beat and some do not
                let worst = [0.5f32; TILE];
                for p in 0..m.div_ceil(PANEL) {
                    let (panel, norms) = packed.panel(p);
                    let mut dist = [[f32::NAN; PANEL]; TILE];
                    let masks = tile_distances(kernel, &tile, d, panel, norms, &worst, &mut dist);
                    for i in 0..rows {
                        for j in 0..PANEL {
                            let r = p * PANEL + j;
                            let bit = masks[i] >> j & 1 == 1;
                            if r >= m {
                                assert!(!bit, "padding row {r} offered");
                                continue;
                            }
                            let want = naive(t * TILE + i, r);
                            if (want - 0.5).abs() > 1e-4 {
                                assert_eq!(
                                    bit,
                                    want < 0.5,
                                    "{kernel:?} query {} row {r}",
                                    t * TILE + i
                                );
                            }
                            if bit {
                                assert!(
                                    (dist[i][j] as f64 - want).abs() < 1e-4,
                                    "{kernel:?} query {} row {r}: {} vs {want}",
                                    t * TILE + i,
                                    dist[i][j]
                                );
                            }
                        }
                    }
                }
            }
            for k in [1, 5, 45] {
                let got = candidates(&q, &packed, k, kernel);
                for (i, mut c) in got.into_iter().enumerate() {
                    c.sort_unstable();
                    let mut all: Vec<(f64, usize)> = (0..m).map(|r| (naive(i, r), r)).collect();
                    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    let mut want: Vec<usize> = all[..k].iter().map(|p| p.1).collect();
                    want.sort_unstable();
                    assert_eq!(c, want, "{kernel:?} k = {k} query {i}");
                }
            }
        }
    }
}
