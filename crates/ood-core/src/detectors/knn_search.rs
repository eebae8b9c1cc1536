//! The exact search behind [`super::knn`]: every query against every bank row, in f32, with
//! every candidate kept that can be among the k nearest once the f32 rounding is allowed for,
//! then those candidates re-measured in f64 and the k best returned.
//!
//! The bank is packed once (at fit or on the first search after a load, never per call) into
//! panels of [`PANEL`] rows laid out dimension-major, so that one vector load reads one
//! dimension of 32 bank rows. A tile of [`TILE`] queries times one panel is a register-blocked
//! product (`|q - b|^2 = |b|^2 - 2 q.b + |q|^2`; `|q|^2` is common to a query's candidates and
//! left out), and the distances are compared with each query's bar while still in registers
//! (a bit mask per query), so only the rare candidates leave them. AVX-512 where the CPU has it
//! (detected at run time, and checked again before each call of the kernel), otherwise the same
//! loop in portable Rust; `EOOD_KNN_KERNEL=portable` forces the portable one. Query blocks run
//! in parallel on rayon; each bank panel is used by all tiles of a block while in L1.
//!
//! Exactness: the f32 value of `|b|^2 - 2 q.b` is within `e` of the f64 one (see [`slack`]), so
//! every true k nearest has an f32 value within `2e` of the f32 k-th best; all those are kept
//! and re-measured. A query for which f32 cannot decide (its bound would overflow, or too many
//! candidates tie within it) is re-measured against the whole bank in f64.

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
    /// Largest row norm (of the f32 values), for the rounding bound.
    max_norm: f64,
}

impl Bank32 {
    /// Pack a bank; `Err(row)` names the first row whose f32 squared norm is not finite.
    pub(crate) fn pack(bank: ArrayView2<f64>) -> Result<Bank32, usize> {
        let (rows, dims) = bank.dim();
        let npanels = rows.div_ceil(PANEL);
        let mut panels = vec![0f32; npanels * dims * PANEL];
        let mut norms = vec![f32::INFINITY; npanels * PANEL];
        let mut max_norm = 0f64;
        for (i, r) in bank.rows().into_iter().enumerate() {
            let (p, j) = (i / PANEL, i % PANEL);
            let (mut n, mut n64) = (0f32, 0f64);
            for (d, &v) in r.iter().enumerate() {
                let v = v as f32;
                panels[(p * dims + d) * PANEL + j] = v;
                n += v * v;
                n64 += f64::from(v) * f64::from(v);
            }
            if !n.is_finite() {
                return Err(i);
            }
            norms[i] = n;
            max_norm = max_norm.max(n64.sqrt());
        }
        Ok(Bank32 {
            dims,
            rows,
            panels,
            norms,
            max_norm,
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

/// The bound `2e` on how far the f32 value of `|b|^2 - 2 q.b` may be from the f64 one, both
/// ways, for a query of norm `qn` against a bank of largest norm `bn` in `d` dimensions, or
/// `None` where f32 could overflow (that query is then measured in f64 against every row).
///
/// Each of `|b|^2` and `q.b` is a sum of `d` products of values rounded to f32 (relative
/// error `u` each), so it is within `(d + 2) u` of its f64 value relative to `|b|^2` resp.
/// `|q| |b|`; the last multiply-add adds one more rounding. So
/// `e <= (d + 4) u (|b|^2 + 2 |q| |b|)`; a factor 2 more is kept as margin (u = 2^-24, and
/// f32::EPSILON = 2u is used).
fn slack(d: usize, qn: f64, bn: f64) -> Option<f32> {
    let reach = (qn + bn) * (qn + bn);
    if !reach.is_finite() || reach >= f64::from(f32::MAX) / 4.0 {
        return None;
    }
    let e = (d as f64 + 4.0) * f64::from(f32::EPSILON) * (bn * bn + 2.0 * qn * bn);
    Some((2.0 * e) as f32)
}

/// Candidates kept per query beyond `4k + 64` mean f32 cannot separate them (ties within
/// the rounding bound): that query is measured in f64 against the whole bank instead, which
/// bounds the memory at `O(k)` per query.
fn max_kept(k: usize) -> usize {
    4 * k + 64
}

/// A query's candidates so far: those below the bar, compacted whenever the buffer doubles to
/// the ones within `slack` of the k-th best, which makes the bar the k-th best plus `slack`
/// (+inf until the first compaction). Amortised O(1) per candidate, unlike a heap's O(log k).
struct Best {
    buf: Vec<(f32, usize)>,
    bar: f32,
    slack: f32,
    /// Compact when the buffer holds this many.
    next: usize,
    /// f32 cannot decide this query: measure it against every bank row.
    full: bool,
}

fn by_distance(a: &(f32, usize), b: &(f32, usize)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

impl Best {
    fn new(k: usize, slack: Option<f32>) -> Self {
        Best {
            buf: Vec::new(),
            bar: if slack.is_some() {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            },
            slack: slack.unwrap_or(0.0),
            next: 2 * k,
            full: slack.is_none(),
        }
    }
    #[inline]
    fn offer(&mut self, k: usize, d: f32, index: usize) {
        if d < self.bar {
            self.buf.push((d, index));
            if self.buf.len() >= self.next {
                self.keep(k);
                if self.buf.len() > max_kept(k) {
                    self.give_up();
                } else {
                    self.next = (2 * self.buf.len()).max(2 * k);
                }
            }
        }
    }
    fn give_up(&mut self) {
        self.full = true;
        self.bar = f32::NEG_INFINITY;
        self.buf = Vec::new();
    }
    /// Keep those within `slack` of the k-th best (or all, if k or fewer) and raise the bar.
    fn keep(&mut self, k: usize) {
        if self.buf.len() > k {
            self.buf.select_nth_unstable_by(k - 1, by_distance);
            let kth = self.buf[k - 1].0;
            self.bar = kth + self.slack;
            let bar = self.bar;
            self.buf.retain(|c| c.0 <= bar);
        }
    }
    /// The candidates' indices, or `None`: measure against every row (f32 could not decide,
    /// or found fewer than k finite distances).
    fn into_indices(mut self, k: usize) -> Option<Vec<usize>> {
        self.keep(k);
        if self.full || self.buf.len() < k {
            return None;
        }
        Some(self.buf.into_iter().map(|(_, i)| i).collect())
    }
}

/// Which inner loop: AVX-512 when the CPU has it, else AVX2 + FMA, else portable (tests and
/// `EOOD_KNN_KERNEL=portable|avx2` force a lesser one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    pub(crate) fn best() -> Kernel {
        Kernel::choose(std::env::var_os("EOOD_KNN_KERNEL").as_deref())
    }
    /// `switch`: the value of `EOOD_KNN_KERNEL` (`portable` forces the portable loop, `avx2`
    /// the AVX2 one where the CPU has it; anything else: the best the CPU has).
    fn choose(switch: Option<&std::ffi::OsStr>) -> Kernel {
        if switch.is_some_and(|v| v == "portable") {
            return Kernel::Portable;
        }
        let avail = Kernel::available();
        if switch.is_some_and(|v| v == "avx2") {
            #[cfg(target_arch = "x86_64")]
            if avail.contains(&Kernel::Avx2) {
                return Kernel::Avx2;
            }
        }
        *avail.last().unwrap_or(&Kernel::Portable)
    }
    /// Every kernel this CPU can run, worst first (the portable one always).
    pub(crate) fn available() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut v = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(Kernel::Avx512);
            }
        }
        v
    }
}

/// For each query row (f32, row-major, `bank.dims` columns), the indices of the bank rows that
/// can be among its k nearest (unsorted; at least k), or `None`: measure it against every
/// row. `1 <= k <= bank.rows`.
pub(crate) fn candidates(
    queries: &[f32],
    bank: &Bank32,
    k: usize,
    kernel: Kernel,
) -> Vec<Option<Vec<usize>>> {
    let d = bank.dims;
    let n = queries.len() / d.max(1);
    let blocks: Vec<Vec<Option<Vec<usize>>>> = (0..n)
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
fn block(q: &[f32], bank: &Bank32, k: usize, kernel: Kernel) -> Vec<Option<Vec<usize>>> {
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
    let mut best: Vec<Best> = q
        .chunks_exact(d.max(1))
        .map(|r| {
            let qn = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            Best::new(k, slack(d, qn.sqrt(), bank.max_norm))
        })
        .collect();
    let mut dist = [[0f32; PANEL]; TILE];
    for p in 0..bank.rows.div_ceil(PANEL) {
        let (panel, norms) = bank.panel(p);
        for t in 0..ntiles {
            let rows = (n - t * TILE).min(TILE);
            let mine = &mut best[t * TILE..t * TILE + rows];
            let mut worst = [f32::NEG_INFINITY; TILE];
            for (w, b) in worst.iter_mut().zip(mine.iter()) {
                *w = b.bar;
            }
            let tile = &tiles[t * d * TILE..(t + 1) * d * TILE];
            let input = TileInput {
                tile,
                d,
                panel,
                norms,
                worst: &worst,
            };
            let masks = tile_distances(kernel, input, &mut dist);
            // bit j of masks[i]: bank row j of the panel is below query i's bar
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

/// What a distance kernel reads: a packed tile of TILE queries (`d` values each, interleaved),
/// one bank panel with its squared norms, and each query's bar.
#[derive(Clone, Copy)]
struct TileInput<'a> {
    pub tile: &'a [f32],
    pub d: usize,
    pub panel: &'a [f32],
    pub norms: &'a [f32],
    pub worst: &'a [f32; TILE],
}

/// `dist[i][j] = |b_j|^2 - 2 q_i . b_j` for the TILE queries of a packed tile and one panel;
/// returns per query the bit mask of the bank rows whose distance is below `worst[i]` (the
/// query's bar; `dist` is written only where a mask is not zero).
fn tile_distances(kernel: Kernel, x: TileInput, dist: &mut [[f32; PANEL]; TILE]) -> [u32; TILE] {
    assert!(x.tile.len() >= TILE * x.d && x.panel.len() >= x.d * PANEL && x.norms.len() >= PANEL);
    match kernel {
        Kernel::Portable => portable(x, dist),
        // SAFETY: the CPU reports avx512f (checked here, not only when the kernel was chosen:
        // a `Kernel` value can be made anywhere in the crate; the check is a cached load); the
        // slice lengths are asserted above.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => unsafe {
            avx512(x, dist)
        },
        // SAFETY: as above, for avx2 and fma
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma") =>
        unsafe { avx2(x, dist) },
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 | Kernel::Avx2 => portable(x, dist),
    }
}

fn portable(x: TileInput, dist: &mut [[f32; PANEL]; TILE]) -> [u32; TILE] {
    let TileInput {
        tile,
        d,
        panel,
        norms,
        worst,
    } = x;
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
unsafe fn avx512(x: TileInput, dist: &mut [[f32; PANEL]; TILE]) -> [u32; TILE] {
    use std::arch::x86_64::*;
    let (mut q, mut b) = (x.tile.as_ptr(), x.panel.as_ptr());
    let mut lo = [_mm512_setzero_ps(); TILE];
    let mut hi = [_mm512_setzero_ps(); TILE];
    for _ in 0..x.d {
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
            _mm512_loadu_ps(x.norms.as_ptr()),
            _mm512_loadu_ps(x.norms.as_ptr().add(16)),
        );
        for i in 0..TILE {
            let (d0, d1) = (
                _mm512_fmadd_ps(m2, lo[i], n0),
                _mm512_fmadd_ps(m2, hi[i], n1),
            );
            let w = _mm512_set1_ps(x.worst[i]);
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

/// Queries per AVX2 register group: 6 queries x 16 bank rows are 12 accumulators, plus two
/// panel vectors and a broadcast: 15 of the 16 AVX2 registers.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 6;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(TILE % GROUP == 0 && PANEL == 32);

/// The AVX2 + FMA form of [`avx512`]: the tile in groups of [`GROUP`] queries, the panel in
/// halves of 16 rows (two 8-lane vectors), each pair a register-blocked product over `d`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(x: TileInput, dist: &mut [[f32; PANEL]; TILE]) -> [u32; TILE] {
    use std::arch::x86_64::*;
    let m2 = _mm256_set1_ps(-2.0);
    let mut masks = [0u32; TILE];
    for g in (0..TILE).step_by(GROUP) {
        for h in [0usize, 16] {
            let mut acc = [[_mm256_setzero_ps(); 2]; GROUP];
            // SAFETY: d steps of TILE (queries) and PANEL (bank) values from offsets below
            // TILE and PANEL stay inside the slices, whose lengths the caller asserted
            unsafe {
                let (mut q, mut b) = (x.tile.as_ptr().add(g), x.panel.as_ptr().add(h));
                for _ in 0..x.d {
                    let (b0, b1) = (_mm256_loadu_ps(b), _mm256_loadu_ps(b.add(8)));
                    for (i, a) in acc.iter_mut().enumerate() {
                        let qv = _mm256_broadcast_ss(&*q.add(i));
                        a[0] = _mm256_fmadd_ps(qv, b0, a[0]);
                        a[1] = _mm256_fmadd_ps(qv, b1, a[1]);
                    }
                    q = q.add(TILE);
                    b = b.add(PANEL);
                }
            }
            // SAFETY: norms holds PANEL values; each dist row is PANEL values; h + 16 <= PANEL
            unsafe {
                let np = x.norms.as_ptr().add(h);
                let (n0, n1) = (_mm256_loadu_ps(np), _mm256_loadu_ps(np.add(8)));
                for (i, a) in acc.iter().enumerate() {
                    let (d0, d1) = (_mm256_fmadd_ps(m2, a[0], n0), _mm256_fmadd_ps(m2, a[1], n1));
                    let w = _mm256_set1_ps(x.worst[g + i]);
                    let m = (_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(d0, w)) as u32)
                        | ((_mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(d1, w)) as u32) << 8);
                    if m != 0 {
                        let out = dist[g + i].as_mut_ptr().add(h);
                        _mm256_storeu_ps(out, d0);
                        _mm256_storeu_ps(out.add(8), d1);
                    }
                    masks[g + i] |= m << h;
                }
            }
        }
    }
    masks
}

/// The k nearest of one query among `idx` (every bank row if `None`), re-measured in f64 and
/// sorted by distance (ties: lower index): indices and distances.
pub(crate) fn exact(
    q: ArrayView1<f64>,
    bank: ArrayView2<f64>,
    idx: Option<Vec<usize>>,
    k: usize,
) -> (Vec<usize>, Vec<f64>) {
    let q: Vec<f64> = q.to_vec();
    let measure = |i: usize| {
        let r = bank.row(i);
        let d2 = match r.as_slice() {
            Some(r) => squared_distance(&q, r),
            None => squared_distance(&q, &r.to_vec()),
        };
        (d2.sqrt(), i)
    };
    let mut pairs: Vec<(f64, usize)> = match idx {
        Some(idx) => idx.into_iter().map(measure).collect(),
        None => (0..bank.nrows()).map(measure).collect(),
    };
    let order = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if pairs.len() > k && k > 0 {
        pairs.select_nth_unstable_by(k - 1, order);
        pairs.truncate(k);
    }
    pairs.sort_by(order);
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
mod tests;
