//! The energy margins (m_in, m_out) of energy-bounded fine-tuning chosen on validation data: the
//! paper's recipe (Section 4.1), shared by `eood finetune --m-in-grid/--m-out-grid` and
//! `eood bench`. Every pair of the grid is fine-tuned and judged by its mean FPR95 of the
//! negative energy over the validation OOD sets ([`ood_core::selection`]'s tie rule: lowest
//! wins, first in grid order on ties); the caller says how a pair is trained and validated.
//!
//! **Accuracy floor** (our addition; the code of record fixes its margins): the paper selects on
//! validation data and claims accuracy is kept, but FPR alone rewards margins that trade ID
//! accuracy for separation (on Fashion-MNIST m_in 4 below the ID mean energy costs ~2 points).
//! With an [`AccuracyFloor`], only pairs whose ID validation accuracy is within `tolerance` of
//! the pre-trained model's compete on FPR; if none is, the most accurate pair is chosen.
use ood_core::selection::{argmin, SelectionError};
use serde::{Deserialize, Serialize};

/// Default smallest `m_out - m_in` of a grid built by [`MarginGrid::around_means`] (the paper
/// presets' grids; the Fashion-MNIST plan uses 0, see `Plan::margin_min_gap`).
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
    /// `base = max(round(mean_out), max(m_in) + min_gap)`. The loss needs `m_in <= m_out` (ID
    /// energies pushed below m_in, outliers above m_out; equal margins are a zero-width band);
    /// when the outliers' mean energy is not above the ID mean (on Fashion-MNIST the outliers
    /// score about the ID mean), the m_out grid starts `min_gap` above the largest m_in instead.
    /// `min_gap` must be finite and non-negative (a negative gap would ask outliers to sit below
    /// the ID margin); [`MIN_GAP`] is the usual value.
    pub fn around_means(
        mean_in: f64,
        mean_out: f64,
        offsets_in: &[f64],
        offsets_out: &[f64],
        min_gap: f64,
    ) -> Self {
        debug_assert!(min_gap.is_finite() && min_gap >= 0.0, "min_gap {min_gap}");
        let m_in: Vec<f64> = offsets_in.iter().map(|d| mean_in.round() + d).collect();
        let top_in = m_in.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let base = if top_in.is_finite() {
            mean_out.round().max(top_in + min_gap)
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

/// Default [`AccuracyFloor::tolerance`]: a quarter point of ID validation accuracy, half the
/// 0.5-point test-accuracy goal it serves. The validation estimate is noisy: on 2,000 images the
/// paired difference between the fine-tuned and the pre-trained model moves by ~0.4 points, and
/// on the Fashion-MNIST run of 2026-12-02 (later) a pair 0.45 below on validation (m_in -9 / m_out -7)
/// was 0.8 below on the test set, so a floor at the goal itself passes pairs that miss it about
/// half the time (docs/experiments.md, "Fine-tuning that keeps accuracy"). Was 0.005.
pub const ACCURACY_TOLERANCE: f64 = 0.0025;

/// The ID validation accuracy a fine-tuned pair must keep to compete on FPR (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AccuracyFloor {
    /// ID validation accuracy of the pre-trained model (fraction).
    pub pretrained: f64,
    /// Largest accuracy loss allowed (fraction; [`ACCURACY_TOLERANCE`]).
    pub tolerance: f64,
}

impl AccuracyFloor {
    /// Whether `accuracy` is within the tolerance of the pre-trained accuracy (1e-12 of slack
    /// for the rounding of `pretrained - tolerance`; a NaN is not admitted).
    pub fn admits(&self, accuracy: f64) -> bool {
        accuracy >= self.pretrained - self.tolerance - 1e-12
    }
}

/// How a fine-tuned pair did on validation data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrialScore {
    /// Mean FPR95 of -E over the validation OOD sets (fraction): the paper's criterion.
    pub mean_val_fpr: f64,
    /// Accuracy on the labelled ID validation images (fraction), when labels were given.
    pub val_accuracy: Option<f64>,
}

impl TrialScore {
    /// The paper's criterion alone (no labels).
    pub fn fpr(mean_val_fpr: f64) -> Self {
        Self {
            mean_val_fpr,
            val_accuracy: None,
        }
    }
}

/// One fine-tuned pair: its mean validation FPR95 (fraction), validation accuracy and what the
/// caller kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial<T> {
    pub m_in: f64,
    pub m_out: f64,
    pub mean_val_fpr: f64,
    pub val_accuracy: Option<f64>,
    pub outcome: T,
}

/// Every trial of a grid, in pair order, and the chosen one.
#[derive(Debug, Clone, PartialEq)]
pub struct MarginSearch<T> {
    pub grid: MarginGrid,
    pub trials: Vec<Trial<T>>,
    /// The accuracy condition the choice was made under (`None`: FPR alone, the paper's).
    pub floor: Option<AccuracyFloor>,
    /// Index into `trials` of the chosen pair ([`choose`]).
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

    /// Validation accuracy of `m_in[i]`, `m_out[j]` as a table (beside Figure 4b).
    pub fn accuracy_table(&self) -> Vec<Vec<Option<f64>>> {
        let cols = self.grid.m_out.len();
        let mut t = vec![vec![None; cols]; self.grid.m_in.len()];
        for (k, trial) in self.trials.iter().enumerate() {
            t[k / cols][k % cols] = trial.val_accuracy;
        }
        t
    }

    /// The chosen trial, consuming the search.
    pub fn into_best(mut self) -> Trial<T> {
        self.trials.swap_remove(self.best)
    }
}

/// Index of the chosen score: without a floor the lowest mean validation FPR; with one, the
/// lowest FPR among the scores whose accuracy it admits (a missing accuracy is not admitted),
/// else the highest accuracy. Ties: first in grid order ([`ood_core::selection::argmin`]).
pub fn choose(
    scores: &[TrialScore],
    floor: Option<&AccuracyFloor>,
) -> Result<usize, SelectionError> {
    let fprs: Vec<f64> = scores.iter().map(|s| s.mean_val_fpr).collect();
    let Some(floor) = floor else {
        return argmin(&fprs).ok_or(SelectionError::EmptyGrid);
    };
    let admitted = |s: &TrialScore| s.val_accuracy.is_some_and(|a| floor.admits(a));
    let best = if scores.iter().any(admitted) {
        // an excluded pair ranks after every admitted one (NaN ranks last in argmin)
        let masked: Vec<f64> = scores
            .iter()
            .map(|s| {
                if admitted(s) {
                    s.mean_val_fpr
                } else {
                    f64::NAN
                }
            })
            .collect();
        argmin(&masked)
    } else {
        let neg_acc: Vec<f64> = scores
            .iter()
            .map(|s| s.val_accuracy.map_or(f64::NAN, |a| -a))
            .collect();
        argmin(&neg_acc)
    };
    best.ok_or(SelectionError::EmptyGrid)
}

/// Runs `trial(index, m_in, m_out)` for every pair of `grid` in order (it fine-tunes and returns
/// the pair's [`TrialScore`] with whatever it keeps, e.g. the checkpoint) and chooses by
/// [`choose`] under `floor`. The first error stops the search.
pub fn search<T, E: From<SelectionError>>(
    grid: &MarginGrid,
    floor: Option<AccuracyFloor>,
    mut trial: impl FnMut(usize, f64, f64) -> Result<(TrialScore, T), E>,
) -> Result<MarginSearch<T>, E> {
    let pairs = grid.pairs();
    if pairs.is_empty() {
        return Err(SelectionError::EmptyGrid.into());
    }
    let mut trials = Vec::with_capacity(pairs.len());
    let mut scores = Vec::with_capacity(pairs.len());
    for (i, &(m_in, m_out)) in pairs.iter().enumerate() {
        let (score, outcome) = trial(i, m_in, m_out)?;
        trials.push(Trial {
            m_in,
            m_out,
            mean_val_fpr: score.mean_val_fpr,
            val_accuracy: score.val_accuracy,
            outcome,
        });
        scores.push(score);
    }
    let best = choose(&scores, floor.as_ref())?;
    Ok(MarginSearch {
        grid: grid.clone(),
        trials,
        floor,
        best,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins_are_offsets_from_the_rounded_means() {
        let g = MarginGrid::around_means(-9.6, -3.2, &[-4.0, -2.0, 0.0], &[0.0, 2.0], MIN_GAP);
        assert_eq!(g.m_in, vec![-14.0, -12.0, -10.0]);
        assert_eq!(g.m_out, vec![-3.0, -1.0]);
        // outliers with lower mean energy than the ID data: m_out starts MIN_GAP above max m_in
        let g = MarginGrid::around_means(-7.89, -11.01, &[-4.0, 0.0], &[0.0, 4.0], MIN_GAP);
        assert_eq!((g.m_in, g.m_out), (vec![-12.0, -8.0], vec![-6.0, -2.0]));
        // a zero gap lets m_out start at the largest m_in (the pair m_in = m_out is tried)
        let g = MarginGrid::around_means(-9.21, -9.19, &[0.0, 2.0], &[0.0, 2.0], 0.0);
        assert_eq!((&g.m_in, &g.m_out), (&vec![-9.0, -7.0], &vec![-7.0, -5.0]));
        assert!(g.pairs().contains(&(-7.0, -7.0)));
        // the outliers' own mean wins when it is above the largest m_in plus the gap
        let g = MarginGrid::around_means(-9.6, -3.2, &[0.0], &[0.0], 0.0);
        assert_eq!((g.m_in, g.m_out), (vec![-10.0], vec![-3.0]));
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
        let s = search(&grid, None, |i, a, b| {
            Ok::<_, SelectionError>((TrialScore::fpr(fpr[i]), (i, a, b)))
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
            search(&none, None, |_, _, _| Ok::<_, SelectionError>((
                TrialScore::fpr(0.0),
                ()
            ))),
            Err(SelectionError::EmptyGrid)
        ));
    }

    fn scored(fpr: f64, acc: f64) -> TrialScore {
        TrialScore {
            mean_val_fpr: fpr,
            val_accuracy: Some(acc),
        }
    }

    /// The committed Fashion-MNIST grid's shape: the lowest FPR (m_in 4 below the ID mean) lost
    /// 2 points of accuracy; with the floor the best FPR among the accurate pairs wins.
    #[test]
    fn the_floor_excludes_pairs_that_lose_accuracy() {
        let floor = AccuracyFloor {
            pretrained: 0.92,
            tolerance: 0.005,
        };
        let scores = [
            scored(0.359, 0.90),
            scored(0.357, 0.899),
            scored(0.400, 0.918),
            scored(0.368, 0.915),
        ];
        assert_eq!(choose(&scores, None).unwrap(), 1);
        assert_eq!(choose(&scores, Some(&floor)).unwrap(), 3);
        // exactly at the floor is admitted, just below is not
        assert!(floor.admits(0.915) && !floor.admits(0.9149) && !floor.admits(f64::NAN));
        // nobody admitted: the most accurate pair, first of equals
        let low = [scored(0.1, 0.80), scored(0.2, 0.85), scored(0.3, 0.85)];
        assert_eq!(choose(&low, Some(&floor)).unwrap(), 1);
        // a pair without an accuracy never passes the floor
        let unlabelled = [TrialScore::fpr(0.1), scored(0.5, 0.92)];
        assert_eq!(choose(&unlabelled, Some(&floor)).unwrap(), 1);
        assert!(matches!(
            choose(&[], Some(&floor)),
            Err(SelectionError::EmptyGrid)
        ));
    }

    /// The Fashion-MNIST grid of 2026-12-02 (later) (validation FPR, accuracy; pre-trained 92.30%): the
    /// old half-point floor let m_in -9 / m_out -7 through (91.85%, test accuracy 0.8 points
    /// below the pre-trained model's); the default quarter point keeps only -7 / -7.
    #[test]
    fn the_default_floor_keeps_a_margin_for_validation_noise() {
        let scores = [
            scored(0.3554, 0.9185),
            scored(0.3586, 0.9105),
            scored(0.3942, 0.9215),
            scored(0.3902, 0.9150),
        ];
        let floor = |tolerance| AccuracyFloor {
            pretrained: 0.9230,
            tolerance,
        };
        assert_eq!(choose(&scores, Some(&floor(0.005))).unwrap(), 0);
        assert_eq!(
            choose(&scores, Some(&floor(ACCURACY_TOLERANCE))).unwrap(),
            2
        );
    }

    #[test]
    fn search_records_accuracy_and_the_floor() {
        let grid = MarginGrid {
            m_in: vec![-13.0, -9.0],
            m_out: vec![-7.0],
        };
        let floor = AccuracyFloor {
            pretrained: 0.9,
            tolerance: 0.005,
        };
        let s = search(&grid, Some(floor), |i, _, _| {
            Ok::<_, SelectionError>(([scored(0.2, 0.85), scored(0.3, 0.899)][i], i))
        })
        .unwrap();
        assert_eq!((s.best, s.best().outcome), (1, 1));
        assert_eq!(
            s.accuracy_table(),
            vec![vec![Some(0.85)], vec![Some(0.899)]]
        );
        assert_eq!(s.floor, Some(floor));
    }
}
