//! Model selection on validation data, never on test data: the one owner of
//!
//! - "mean FPR95 over the validation OOD sets" ([`validate`], [`mean_fpr`]): the paper's criterion
//!   for every hyper-parameter (ODIN's T and eps, Mahalanobis' eps, the energy margins), and
//! - "choose the best candidate of a grid, then apply it" ([`select_min`]): generic over the
//!   candidate type, scored by a closure (which may train a model, or look up precomputed scores).
//!
//! **Tie rule**: the lowest score wins; among equal scores the candidate that comes *first in grid
//! order* wins; a NaN score never wins over a number (it ranks last, `f64::total_cmp` order). So a
//! grid's order is part of its definition: put the cheapest or most conventional setting first.
//!
//! ```
//! use ood_core::selection::{select_min, SelectionError};
//! let grid = [10.0, 1.0, 100.0, 1.0];
//! // score: distance to 1; the first of the two 1.0s wins the tie
//! let s = select_min(&grid, |_, &t: &f64| Ok::<_, SelectionError>((t - 1.0_f64).abs())).unwrap();
//! assert_eq!((s.best, *s.chosen()), (1, 1.0));
//! ```
use serde::{Deserialize, Serialize};

use crate::metrics::{evaluate, Metrics, MetricsConfig, MetricsError};

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("validation needs at least one validation OOD set")]
    NoValidationOod,
    #[error("nothing to choose from: the grid is empty")]
    EmptyGrid,
    #[error("no validation scores of candidate {candidate} (set {set}: in-distribution = 0, OOD sets from 1)")]
    MissingScores { candidate: usize, set: usize },
    #[error("validation OOD set {set}")]
    Metrics {
        /// Index of the validation OOD set.
        set: usize,
        #[source]
        source: MetricsError,
    },
}

/// Detection metrics of one scorer on the validation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Metrics against each validation OOD set, in order.
    pub per_set: Vec<Metrics>,
    /// Mean FPR (at `cfg.tpr`) over the sets: the selection criterion.
    pub mean_fpr: f64,
    /// Mean AUROC over the sets (reported, not used to choose).
    pub mean_auroc: f64,
}

/// Metrics of in-distribution validation scores `id` against each validation OOD set of `ood`
/// (higher score = more in-distribution), and their means (sum in set order, then divide).
pub fn validate<O: AsRef<[f64]>>(
    id: &[f64],
    ood: &[O],
    cfg: &MetricsConfig,
) -> Result<Validation, SelectionError> {
    if ood.is_empty() {
        return Err(SelectionError::NoValidationOod);
    }
    let per_set = ood
        .iter()
        .enumerate()
        .map(|(set, o)| {
            evaluate(id, o.as_ref(), cfg).map_err(|source| SelectionError::Metrics { set, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n = per_set.len() as f64;
    let (mut fpr, mut auroc) = (0.0, 0.0);
    for m in &per_set {
        fpr += m.fpr;
        auroc += m.auroc;
    }
    Ok(Validation {
        per_set,
        mean_fpr: fpr / n,
        mean_auroc: auroc / n,
    })
}

/// The mean validation FPR of [`validate`] alone.
pub fn mean_fpr<O: AsRef<[f64]>>(
    id: &[f64],
    ood: &[O],
    cfg: &MetricsConfig,
) -> Result<f64, SelectionError> {
    Ok(validate(id, ood, cfg)?.mean_fpr)
}

/// What a grid search chose: the grid, each candidate's score, the index of the winner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection<C> {
    pub grid: Vec<C>,
    /// Score of each candidate (lower is better), in grid order.
    pub scores: Vec<f64>,
    /// Index of the chosen candidate (see the module's tie rule).
    pub best: usize,
}

impl<C> Selection<C> {
    pub fn chosen(&self) -> &C {
        &self.grid[self.best]
    }

    pub fn best_score(&self) -> f64 {
        self.scores[self.best]
    }
}

/// Index of the lowest score under the module's tie rule (first of equals, NaN last); `None` when
/// `scores` is empty.
pub fn argmin(scores: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in scores.iter().enumerate() {
        // strictly lower only: an equal score later in the grid does not replace the first
        let better = |b: usize| !s.is_nan() && (scores[b].is_nan() || *s < scores[b]);
        if best.is_none_or(better) {
            best = Some(i);
        }
    }
    best
}

/// Scores every candidate of `grid` with `score(index, candidate)` (lower is better, e.g. the
/// mean validation FPR of [`mean_fpr`]), in grid order, and chooses by the module's tie rule.
/// The first error of `score` stops the search and is returned.
pub fn select_min<C: Clone, E: From<SelectionError>>(
    grid: &[C],
    mut score: impl FnMut(usize, &C) -> Result<f64, E>,
) -> Result<Selection<C>, E> {
    let scores = grid
        .iter()
        .enumerate()
        .map(|(i, c)| score(i, c))
        .collect::<Result<Vec<f64>, E>>()?;
    let best = argmin(&scores).ok_or(SelectionError::EmptyGrid)?;
    Ok(Selection {
        grid: grid.to_vec(),
        scores,
        best,
    })
}

/// "Choose on validation, then apply" when every candidate's validation scores are at hand (one
/// pass of a scorer often yields every setting at once, e.g. ODIN's (T, eps) grid):
/// `id[c]` are the in-distribution validation scores of candidate `c`, `ood[v][c]` those of
/// validation OOD set `v`. Chooses the lowest mean FPR by the module's tie rule; also returns each
/// candidate's [`Validation`] (per-set metrics, mean AUROC) for the record.
pub fn select_on_scores<C: Clone>(
    grid: &[C],
    id: &[Vec<f64>],
    ood: &[Vec<Vec<f64>>],
    cfg: &MetricsConfig,
) -> Result<(Selection<C>, Vec<Validation>), SelectionError> {
    if ood.is_empty() {
        return Err(SelectionError::NoValidationOod);
    }
    let mut validations = Vec::with_capacity(grid.len());
    let sel = select_min(grid, |c, _| {
        let missing = |set| SelectionError::MissingScores { candidate: c, set };
        let id_c = id.get(c).ok_or(missing(0))?;
        let sets = ood
            .iter()
            .enumerate()
            .map(|(v, o)| o.get(c).ok_or(missing(v + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let v = validate(id_c, &sets, cfg)?;
        let fpr = v.mean_fpr;
        validations.push(v);
        Ok::<_, SelectionError>(fpr)
    })?;
    Ok((sel, validations))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> MetricsConfig {
        MetricsConfig::default()
    }

    #[test]
    fn validation_fpr_is_the_mean_over_sets() {
        let id: Vec<f64> = (0..100).map(f64::from).collect();
        // all OOD below all ID -> FPR 0, AUROC 1; all OOD above -> FPR 1, AUROC 0
        let v = validate(&id, &[vec![-1.0; 10], vec![1000.0; 10]], &cfg()).unwrap();
        assert_eq!((v.mean_fpr, v.mean_auroc), (0.5, 0.5));
        assert_eq!((v.per_set[0].fpr, v.per_set[1].fpr), (0.0, 1.0));
        assert_eq!(mean_fpr(&id, &[vec![1000.0; 3]], &cfg()).unwrap(), 1.0);
    }

    #[test]
    fn validation_refuses_no_sets_and_names_the_bad_set() {
        let id = [1.0, 2.0];
        let none: [Vec<f64>; 0] = [];
        assert!(matches!(
            validate(&id, &none, &cfg()),
            Err(SelectionError::NoValidationOod)
        ));
        let e = validate(&id, &[vec![0.0], vec![]], &cfg()).unwrap_err();
        assert!(matches!(e, SelectionError::Metrics { set: 1, .. }), "{e}");
    }

    #[test]
    fn select_on_scores_chooses_the_lowest_mean_fpr_and_checks_shapes() {
        let id: Vec<Vec<f64>> = vec![(0..20).map(f64::from).collect(); 3];
        // candidate 1 separates both sets; 0 and 2 fail on one set each
        let set_a = vec![vec![100.0; 5], vec![-1.0; 5], vec![-1.0; 5]];
        let set_b = vec![vec![-1.0; 5], vec![-1.0; 5], vec![100.0; 5]];
        let (sel, val) = select_on_scores(&['x', 'y', 'z'], &id, &[set_a, set_b], &cfg()).unwrap();
        assert_eq!((sel.best, *sel.chosen()), (1, 'y'));
        assert_eq!(sel.scores, vec![0.5, 0.0, 0.5]);
        assert_eq!((val.len(), val[1].mean_auroc), (3, 1.0));
        let short = vec![vec![-1.0; 5]];
        assert!(matches!(
            select_on_scores(&['x', 'y'], &id, &[short], &cfg()),
            Err(SelectionError::MissingScores {
                candidate: 1,
                set: 1
            })
        ));
        assert!(matches!(
            select_on_scores(&['x'], &id, &[], &cfg()),
            Err(SelectionError::NoValidationOod)
        ));
    }

    #[test]
    fn lowest_score_wins_first_of_equals_nan_last() {
        assert_eq!(argmin(&[0.3, 0.1, 0.2]), Some(1));
        assert_eq!(argmin(&[0.1, 0.2, 0.1]), Some(0));
        assert_eq!(argmin(&[f64::NAN, 0.5, 0.5]), Some(1));
        assert_eq!(argmin(&[0.5, f64::NAN]), Some(0));
        assert_eq!(argmin(&[f64::NAN]), Some(0));
        assert_eq!(argmin(&[]), None);
    }

    #[test]
    fn select_scores_in_order_and_stops_at_the_first_error() {
        let mut seen = Vec::new();
        let s = select_min(&["a", "b", "c"], |i, c| {
            seen.push(*c);
            Ok::<_, SelectionError>([0.4, 0.2, 0.2][i])
        })
        .unwrap();
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!((s.best, *s.chosen(), s.best_score()), (1, "b", 0.2));
        assert_eq!(s.scores, vec![0.4, 0.2, 0.2]);

        let mut calls = 0;
        let e = select_min(&[1, 2, 3], |_, &c| {
            calls += 1;
            if c == 2 {
                Err(SelectionError::NoValidationOod)
            } else {
                Ok(0.0)
            }
        });
        assert!(e.is_err() && calls == 2);
        let empty: [u8; 0] = [];
        assert!(matches!(
            select_min(&empty, |_, _| Ok::<_, SelectionError>(0.0)),
            Err(SelectionError::EmptyGrid)
        ));
    }
}
