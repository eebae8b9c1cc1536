//! Tests of the exact KNN search: kernels, the f64 re-check, ties, thread counts.

use super::*;
use ndarray::Array2;

/// `EOOD_KNN_KERNEL=portable` forces the portable loop, `avx2` the AVX2 one where the CPU has
/// it; otherwise AVX-512 where detected, else AVX2 + FMA where detected.
#[test]
fn the_switch_forces_a_lesser_kernel() {
    use std::ffi::OsStr;
    assert_eq!(
        Kernel::choose(Some(OsStr::new("portable"))),
        Kernel::Portable
    );
    let detected = Kernel::choose(None);
    assert_eq!(Kernel::choose(Some(OsStr::new("avx512"))), detected);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma");
        assert_eq!(detected == Kernel::Avx512, has!("avx512f"));
        assert_eq!(detected == Kernel::Avx2, avx2 && !has!("avx512f"));
        let forced = Kernel::choose(Some(OsStr::new("avx2")));
        assert_eq!(forced, if avx2 { Kernel::Avx2 } else { detected });
        assert_eq!(Kernel::available().contains(&Kernel::Avx2), avx2);
    }
}

/// The bound: no slack where f32 could overflow; a finite one that grows with D and the
/// norms otherwise; a query with it gives up (whole-bank f64) past `max_kept` ties.
#[test]
fn slack_and_give_up() {
    assert_eq!(slack(4, 1.0, 1.8e19), None);
    let (a, b) = (slack(4, 1.0, 1.0).unwrap(), slack(128, 1.0, 1.0).unwrap());
    assert!(a > 0.0 && b > a && b < 1e-3, "{a} {b}");
    let mut best = Best::new(2, Some(0.5));
    for i in 0..1000 {
        best.offer(2, 1.0, i);
    }
    assert!(best.full && best.buf.is_empty(), "kept {}", best.buf.len());
    assert_eq!(best.into_indices(2), None);
    // fewer than k finite distances: measure everything
    let mut best = Best::new(3, Some(0.0));
    best.offer(3, 1.0, 0);
    assert_eq!(best.into_indices(3), None);
}

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
    let kernels = Kernel::available();
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
                let input = TileInput {
                    tile: &tile,
                    d,
                    panel,
                    norms,
                    worst: &worst,
                };
                let masks = tile_distances(kernel, input, &mut dist);
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
            for (i, c) in got.into_iter().enumerate() {
                let c = c.expect("f32 decides these small values");
                let mut all: Vec<(f64, usize)> = (0..m).map(|r| (naive(i, r), r)).collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for p in &all[..k] {
                    assert!(c.contains(&p.1), "{kernel:?} k = {k} query {i}: {}", p.1);
                }
                assert!(c.len() <= max_kept(k), "{kernel:?} k = {k}: {}", c.len());
            }
        }
    }
}
