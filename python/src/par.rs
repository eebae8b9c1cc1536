//! Row-parallel scoring: the rows of a matrix in contiguous chunks on scoped threads, one per
//! core, while the GIL is released. Each chunk calls the core's own scorer, so no formula is
//! repeated here; a chunk's error is moved to whole-matrix row numbers, and chunks are checked
//! in order, so the error names the first bad row exactly as a serial pass would.

use ndarray::{s, ArrayView2};
use ood_core::scores::{MahalanobisError, ScoreError};

/// An error that may name a row of the matrix it came from.
pub(crate) trait RowError {
    /// The same error with its row number moved by `offset` (a chunk's first row).
    fn shift_row(self, offset: usize) -> Self;
}

impl RowError for ScoreError {
    fn shift_row(self, offset: usize) -> Self {
        match self {
            ScoreError::NonFinite { row, col, value } => ScoreError::NonFinite {
                row: row + offset,
                col,
                value,
            },
            other => other,
        }
    }
}

impl RowError for MahalanobisError {
    fn shift_row(self, offset: usize) -> Self {
        match self {
            MahalanobisError::NonFinite { row, col, value } => MahalanobisError::NonFinite {
                row: row + offset,
                col,
                value,
            },
            other => other,
        }
    }
}

/// Below this many values a matrix is scored on the calling thread (threads cost ~20 us).
const MIN_VALUES_PER_THREAD: usize = 1 << 16;

pub(crate) fn par_rows<E: Send + RowError>(
    x: ArrayView2<'_, f64>,
    score: impl Fn(ArrayView2<'_, f64>) -> Result<Vec<f64>, E> + Sync,
) -> Result<Vec<f64>, E> {
    let (n, d) = x.dim();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let by_size = (n * d.max(1)) / MIN_VALUES_PER_THREAD;
    let chunks = threads.min(by_size).min(n).max(1);
    if chunks == 1 {
        return score(x);
    }
    let size = n.div_ceil(chunks);
    let results: Vec<Result<Vec<f64>, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(size)
            .map(|lo| {
                let part = x.slice(s![lo..(lo + size).min(n), ..]);
                let score = &score;
                scope.spawn(move || score(part).map_err(|e| e.shift_row(lo)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scoring thread panicked"))
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}
