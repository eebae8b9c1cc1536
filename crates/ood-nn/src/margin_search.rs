//! The energy margins (m_in, m_out) of energy-bounded fine-tuning chosen on validation data: the
//! paper's recipe (Section 4.1), shared by `eood finetune --m-in-grid/--m-out-grid` and
//! `eood bench`. Every pair of the grid is fine-tuned and judged by its mean FPR95 of the
//! negative energy over the validation OOD sets ([`ood_core::selection`]: lowest wins, first in
//! grid order on ties); the caller says how a pair is trained and validated.
use ood_core::selection::{select_min, SelectionError};
use serde::{Deserialize, Serialize};

/// Smallest `m_out - m_in` of a grid built by [`MarginGrid::around_means`].
pub const MIN_GAP: f64 = 2.0;

/// Candidate margins; the pairs are `m_in x m_out`, `m_in`-major. A grid given explicitly (`eood
/// finetune --m-in-grid/--m-out-grid`) is taken as given, every pair tried, as before this module;
/// [`MarginGrid::around_means`] is the one that keeps every m_out above every m_in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginGrid {
    pub m_in: Vec<f64>,
    pub m_out: Vec<f64>,
}

impl MarginGrid {
    /// One fixed pair (e.g. the code of record's -23 / -5).
    pub fn fixed(m_in: f64, m_out: f64) -> Self {
        Self {
            m_in: vec![m_in],
            m_out: vec![m_out],
        }
    }

    /// Candidates around the mean energies of the pre-trained model ("chosen around the mean of
    /// energy scores from a pre-trained model for in- and out-of-distribution samples"):
    /// `m_in = round(mean_in) + d_in`, `m_out = base + d_out` with
    /// `base = max(round(mean_out), max(m_in) + MIN_GAP)`. The loss needs `m_in < m_out` (ID
    /// energies pushed below m_in, outliers above m_out); when the outliers' mean energy is not
    /// above the ID mean (on Fashion-MNIST the outliers score *lower* energy), the m_out grid
    /// starts `MIN_GAP` above the largest m_in instead.
    pub fn around_means(
        mean_in: f64,
        mean_out: f64,
        offsets_in: &[f64],
        offsets_out: &[f64],
    ) -> Self {
        let m_in: Vec<f64> = offsets_in.iter().map(|d| mean_in.round() + d).collect();
        let top_in = m_in.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let base = if top_in.is_finite() {
            mean_out.round().max(top_in + MIN_GAP)
        } else {
            mean_out.round()
        };
        let m_out = offsets_out.iter().map(|d| base + d).collect();
        Self { m_in, m_out }
    }

    /// Every `(m_in, m_out)` pair, `m_in`-major (the order of the search and of its tie rule).
    pub fn pairs(&self) -> Vec<(f64, f64)> {
        self.m_in
            .iter()
            .flat_map(|&a| self.m_out.iter().map(move |&b| (a, b)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.m_in.len() * self.m_out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One fine-tuned pair: its mean validation FPR95 (fraction) and what the caller kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial<T> {
    pub m_in: f64,
    pub m_out: f64,
    pub mean_val_fpr: f64,
    pub outcome: T,
}

/// Every trial of a grid, in pair order, and the chosen one.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginSearch<T> {
    pub grid: MarginGrid,
    pub trials: Vec<Trial<T>>,
    /// Index into `trials` of the lowest mean validation FPR95 (first of equals).
    pub best: usize,
}

impl<T> MarginSearch<T> {
    pub fn best(&self) -> &Trial<T> {
        &self.trials[self.best]
    }

    /// Mean validation FPR95 of `m_in[i]`, `m_out[j]` as a table (Figure 4b).
    pub fn fpr_table(&self) -> Vec<Vec<Option<f64>>> {
        let cols = self.grid.m_out.len();
        let mut t = vec![vec![None; cols]; self.grid.m_in.len()];
        for (k, trial) in self.trials.iter().enumerate() {
            t[k / cols][k % cols] = Some(trial.mean_val_fpr);
        }
        t
    }

    /// The chosen trial, consuming the search.
    pub fn into_best(mut self) -> Trial<T> {
        self.trials.swap_remove(self.best)
    }
}

/// Runs `trial(index, m_in, m_out)` for every pair of `grid` in order (it fine-tunes and returns
/// the mean validation FPR95 with whatever it keeps, e.g. the checkpoint) and chooses the pair
/// of lowest FPR by [`ood_core::selection`]'s tie rule. The first error stops the search.
pub fn search<T, E: From<SelectionError>>(
    grid: &MarginGrid,
    mut trial: impl FnMut(usize, f64, f64) -> Result<(f64, T), E>,
) -> Result<MarginSearch<T>, E> {
    let mut trials = Vec::with_capacity(grid.len());
    let sel = select_min(&grid.pairs(), |i, &(m_in, m_out)| -> Result<f64, E> {
        let (mean_val_fpr, outcome) = trial(i, m_in, m_out)?;
        trials.push(Trial {
            m_in,
            m_out,
            mean_val_fpr,
            outcome,
        });
        Ok(mean_val_fpr)
    })?;
    Ok(MarginSearch {
        grid: grid.clone(),
        trials,
        best: sel.best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_are_offsets_from_the_rounded_means() {
        let g = MarginGrid::around_means(-9.6, -3.2, &[-4.0, -2.0, 0.0], &[0.0, 2.0]);
        assert_eq!(g.m_in, vec![-14.0, -12.0, -10.0]);
        assert_eq!(g.m_out, vec![-3.0, -1.0]);
        // outliers with lower mean energy than the ID data: m_out starts MIN_GAP above max m_in
        let g = MarginGrid::around_means(-7.89, -11.01, &[-4.0, 0.0], &[0.0, 4.0]);
        assert_eq!((g.m_in, g.m_out), (vec![-12.0, -8.0], vec![-6.0, -2.0]));
    }

    #[test]
    fn search_tries_every_pair_in_order_and_keeps_the_first_best() {
        let grid = MarginGrid {
            m_in: vec![-5.0, -1.0],
            m_out: vec![1.0, 5.0],
        };
        assert_eq!(
            grid.pairs(),
            vec![(-5.0, 1.0), (-5.0, 5.0), (-1.0, 1.0), (-1.0, 5.0)]
        );
        let fpr = [0.3, 0.1, 0.2, 0.1];
        let s = search(&grid, |i, a, b| {
            Ok::<_, SelectionError>((fpr[i], (i, a, b)))
        })
        .unwrap();
        assert_eq!(s.best().outcome, (1, -5.0, 5.0));
        assert_eq!(
            s.fpr_table(),
            vec![vec![Some(0.3), Some(0.1)], vec![Some(0.2), Some(0.1)]]
        );
        let t = s.into_best();
        assert_eq!((t.m_in, t.m_out, t.mean_val_fpr), (-5.0, 5.0, 0.1));
        let empty = MarginGrid::fixed(0.0, 1.0);
        assert_eq!(empty.pairs(), vec![(0.0, 1.0)]);
        let none = MarginGrid {
            m_in: vec![],
            m_out: vec![1.0],
        };
        assert!(matches!(
            search(&none, |_, _, _| Ok::<_, SelectionError>((0.0, ()))),
            Err(SelectionError::EmptyGrid)
        ));
    }
}
