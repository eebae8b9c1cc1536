//! Row-parallel building blocks of the scorers and detectors: the rows of a matrix split into
//! contiguous chunks on rayon (its pool size is `RAYON_NUM_THREADS`; the cut does not depend on
//! it, so neither do the results), results kept in row order, and an error from a chunk moved
//! to whole-matrix row numbers by the caller's `offset`, so it names the first bad row exactly
//! as a serial pass would. Small inputs stay on the calling thread (a task costs a few
//! microseconds).

use ndarray::{linalg::general_mat_mul, s, Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Values per chunk below which splitting does not pay.
const MIN_VALUES: usize = 1 << 15;

/// Row ranges of at least `MIN_VALUES` values each, at most `max_parts` of them. The cut does
/// not depend on the number of threads, so results are the same bits for any pool size.
fn chunks(rows: usize, cols: usize, max_parts: usize) -> Vec<(usize, usize)> {
    let by_size = (rows * cols.max(1)) / MIN_VALUES;
    let n = max_parts.min(by_size).min(rows).max(1);
    let size = rows.div_ceil(n).max(1);
    (0..rows)
        .step_by(size)
        .map(|a| (a, (a + size).min(rows)))
        .collect()
}

/// Pieces of a row-parallel pass (enough for a few per thread on the machines we run on).
const PARTS: usize = 32;
/// Pieces of a Gram matrix: each holds a D x D partial sum.
const GRAM_PARTS: usize = 8;

/// `dst` cut into mutable row blocks along `parts` (consecutive ranges from row 0).
fn split<'a>(
    dst: &'a mut Array2<f64>,
    parts: &[(usize, usize)],
) -> Vec<(usize, usize, ndarray::ArrayViewMut2<'a, f64>)> {
    let mut rest = dst.view_mut();
    let mut pieces = Vec::with_capacity(parts.len());
    for &(lo, hi) in parts {
        let (head, tail) = rest.split_at(Axis(0), hi - lo);
        pieces.push((lo, hi, head));
        rest = tail;
    }
    pieces
}

/// `f(offset, chunk)` on row chunks of `x` in parallel, outputs concatenated in row order;
/// the error of the first failing chunk (in row order) is returned.
pub fn par_rows<T: Send, E: Send>(
    x: ArrayView2<'_, f64>,
    f: impl Fn(usize, ArrayView2<'_, f64>) -> Result<Vec<T>, E> + Sync,
) -> Result<Vec<T>, E> {
    let parts = chunks(x.nrows(), x.ncols(), PARTS);
    if parts.len() == 1 {
        return f(0, x);
    }
    let results: Vec<Result<Vec<T>, E>> = parts
        .into_par_iter()
        .map(|(a, b)| f(a, x.slice(s![a..b, ..])))
        .collect();
    let mut out = Vec::with_capacity(x.nrows());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// `f(offset, src, dst)` on matching row chunks of `src` and `dst` (same number of rows) in
/// parallel; the error of the first failing chunk in row order is returned.
pub fn par_zip_rows<E: Send>(
    src: ArrayView2<'_, f64>,
    dst: &mut Array2<f64>,
    f: impl Fn(usize, ArrayView2<'_, f64>, ndarray::ArrayViewMut2<'_, f64>) -> Result<(), E> + Sync,
) -> Result<(), E> {
    assert_eq!(src.nrows(), dst.nrows(), "par_zip_rows: row counts differ");
    let parts = chunks(src.nrows(), src.ncols(), PARTS);
    let results: Vec<Result<(), E>> = split(dst, &parts)
        .into_par_iter()
        .map(|(lo, hi, d)| f(lo, src.slice(s![lo..hi, ..]), d))
        .collect();
    results.into_iter().collect()
}

/// `a b` (N x D times D x M) with the rows of `a` split over the threads.
pub fn par_dot(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let (n, m) = (a.nrows(), b.ncols());
    let mut out = Array2::<f64>::zeros((n, m));
    let parts = chunks(n, a.ncols() * m.max(1) / 8 + 1, PARTS);
    if parts.len() == 1 {
        general_mat_mul(1.0, &a, &b, 0.0, &mut out);
        return out;
    }
    split(&mut out, &parts)
        .into_par_iter()
        .for_each(|(lo, hi, mut c)| {
            general_mat_mul(1.0, &a.slice(s![lo..hi, ..]), &b, 0.0, &mut c);
        });
    out
}

/// `x^T x` (D x D) as a sum of per-chunk products over the threads, added in row order so
/// that the result does not depend on which thread finished first.
pub fn par_gram(x: ArrayView2<'_, f64>) -> Array2<f64> {
    let d = x.ncols();
    let parts = chunks(x.nrows(), d * d / 8 + 1, GRAM_PARTS);
    let grams: Vec<Array2<f64>> = parts
        .into_par_iter()
        .map(|(a, b)| {
            let c = x.slice(s![a..b, ..]);
            c.t().dot(&c)
        })
        .collect();
    grams
        .into_iter()
        .fold(Array2::<f64>::zeros((d, d)), |acc, g| acc + g)
}

/// Index (row, column) of the first non-finite value, if any. The common case (all finite) is
/// one vectorised pass: `v * 0` is 0 for a finite value and NaN otherwise.
pub fn first_non_finite(x: ArrayView2<'_, f64>) -> Option<(usize, usize)> {
    let all_finite = match x.as_slice_memory_order() {
        Some(s) => s
            .par_chunks(1 << 16)
            .all(|c| c.iter().fold(0.0, |a, &v| a + v * 0.0) == 0.0),
        None => x.iter().fold(0.0, |a, &v| a + v * 0.0) == 0.0,
    };
    if all_finite {
        return None;
    }
    x.indexed_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(ix, _)| ix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_products_equal_serial_ones() {
        let a = Array2::from_shape_fn((5000, 13), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((13, 9), |(i, j)| (i as f64 - j as f64) / 3.0);
        assert_eq!(par_dot(a.view(), b.view()), a.dot(&b));
        let g = par_gram(a.view());
        assert!((&g - &a.t().dot(&a)).iter().all(|e| e.abs() < 1e-9));
        // rows in order; the error of the first failing chunk (its offset moved by the caller)
        let big = Array2::<f64>::zeros((50_000, 13));
        let r: Result<Vec<usize>, usize> = par_rows(big.view(), |off, c| {
            if off + c.nrows() > 30_000 {
                Err(off)
            } else {
                Ok((off..off + c.nrows()).collect())
            }
        });
        let e = r.unwrap_err();
        assert!(e <= 30_000 && e > 0, "{e}");
        // the caller's row numbers: the first bad row in the whole matrix, not in the chunk
        // that happened to fail first (bad rows in two chunks)
        let first_bad: Result<Vec<()>, usize> = par_rows(big.view(), |off, c| {
            match (0..c.nrows()).find(|&r| [7_777, 41_000].contains(&(off + r))) {
                Some(r) => Err(off + r),
                None => Ok(vec![(); c.nrows()]),
            }
        });
        assert_eq!(first_bad, Err(7_777));
        assert!(
            chunks(50_000, 13, PARTS).len() > 2,
            "not split: the test proves nothing"
        );
        let ok: Vec<usize> = par_rows(big.view(), |off, c| {
            Ok::<_, ()>((off..off + c.nrows()).collect())
        })
        .unwrap();
        assert_eq!(ok, (0..50_000).collect::<Vec<_>>());
    }

    #[test]
    fn finds_the_first_non_finite_value() {
        let mut a = Array2::<f64>::zeros((300, 400));
        assert_eq!(first_non_finite(a.view()), None);
        a[[250, 3]] = f64::NEG_INFINITY;
        a[[299, 0]] = f64::NAN;
        assert_eq!(first_non_finite(a.view()), Some((250, 3)));
        // a transposed (non-standard) view is searched in its own row order
        assert_eq!(first_non_finite(a.t()), Some((0, 299)));
    }

    /// The same bits on rayon pools of 1 and 2 threads, for every parallel helper.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let a = Array2::from_shape_fn((9000, 11), |(i, j)| ((i * 37 + j * 3) % 101) as f64 / 7.3);
        let b = Array2::from_shape_fn((11, 5), |(i, j)| (i as f64 - 2.0 * j as f64) / 3.1);
        let mut bad = a.clone();
        bad[[8000, 4]] = f64::NAN;
        bad[[6500, 9]] = f64::INFINITY;
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| {
                    let sums: Vec<f64> = par_rows(a.view(), |_, c| {
                        Ok::<_, ()>(c.rows().into_iter().map(|r| r.sum()).collect())
                    })
                    .unwrap();
                    (
                        par_dot(a.view(), b.view()),
                        par_gram(a.view()),
                        sums,
                        first_non_finite(bad.view()),
                    )
                })
        };
        let one = run(1);
        assert_eq!(one.3, Some((6500, 9)));
        assert!(
            chunks(9000, 11 * 11 / 8 + 1, GRAM_PARTS).len() > 1,
            "gram not split"
        );
        assert_eq!(one, run(2));
    }
}
