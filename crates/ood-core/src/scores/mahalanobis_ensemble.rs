//! The Mahalanobis feature ensemble of Lee, Lee, Lee & Shin ("A Simple Unified Framework for
//! Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018, Section 2.2 and
//! Algorithm 1; code: pokaxpoka/deep_Mahalanobis_detector, `lib_generation.sample_estimator`,
//! `get_Mahalanobis_score` per layer, `OOD_Regression_Mahalanobis.py`), framework-free part:
//!
//! 1. per layer `l`, class means and one tied covariance on the (globally average-pooled)
//!    training features of that layer: [`fit_layers`], the single-layer fit
//!    ([`MahalanobisParams::fit`]) once per layer;
//! 2. per image, the layer scores `M_l(x) = max_c -d_{l,c}(x)`, stacked into `N x L`
//!    ([`layer_scores`] without input preprocessing; the neural crate adds the input step);
//! 3. a logistic regression over the `L` layer scores, in-distribution positive, fitted on
//!    validation data ([`EnsembleParams::fit`]); the ensemble score is its logit (higher = more
//!    in-distribution).
//!
//! Departures from the authors' code, decided here: the layer scores are standardised (mean and
//! standard deviation of the fitting rows) before the regression, and the regression has a fixed
//! `C` (default 1) instead of `LogisticRegressionCV`'s cross-validated one: with standardised
//! inputs one penalty suits every layer, whatever its distance scale. Standardising is affine,
//! so the ranking of scores it yields differs from the raw fit only through the penalty.
//!
//! [`EnsembleParams::select`] chooses the input-preprocessing magnitude as Lee et al. do: for
//! each candidate, the regression is fitted on one half of the validation data (even rows of
//! the ID set and of every validation OOD set) and judged on the other half (odd rows), by the
//! lowest mean FPR95 over the validation OOD sets ([`crate::selection::select_on_scores`], the
//! rule of every other choice in the project); the chosen candidate's regression is kept.

use ndarray::{concatenate, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::{Mahalanobis, MahalanobisError, MahalanobisParams};
use crate::logistic::{Logistic, LogisticError, LogisticParams};
use crate::metrics::MetricsConfig;
use crate::selection::{select_on_scores, Selection, SelectionError};

/// Errors of the layer ensemble.
#[derive(Debug, thiserror::Error)]
pub enum EnsembleError {
    #[error("Mahalanobis layer ensemble: layer {layer}")]
    Layer {
        layer: usize,
        #[source]
        source: MahalanobisError,
    },
    #[error("Mahalanobis layer ensemble: {found} layers given, {expected} fitted")]
    Layers { expected: usize, found: usize },
    #[error("Mahalanobis layer ensemble: no layers")]
    NoLayers,
    #[error("Mahalanobis layer ensemble: candidate {candidate} has no layer scores for set {set} (0 = in-distribution)")]
    Missing { candidate: usize, set: usize },
    #[error("Mahalanobis layer ensemble: validation set {set} has {rows} rows, need 2 to split it into fitting and selection halves (0 = in-distribution)")]
    Split { set: usize, rows: usize },
    #[error("Mahalanobis layer ensemble: logistic regression")]
    Logistic(#[from] LogisticError),
    #[error("Mahalanobis layer ensemble: choosing on validation data")]
    Selection(#[from] SelectionError),
}

/// Hyper-parameters of the combiner.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct EnsembleParams {
    pub logistic: LogisticParams,
}

/// A fitted combiner: `score(s) = w . ((s - mean) / scale) + b` over the layer scores `s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MahalanobisEnsemble {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub logistic: Logistic,
}

/// What [`EnsembleParams::select`] chose.
#[derive(Debug, Clone)]
pub struct EnsembleChoice<C> {
    /// The grid, each candidate's mean FPR95 on the selection half, and the best.
    pub selection: Selection<C>,
    /// The regression of the chosen candidate (fitted on the fitting half).
    pub ensemble: MahalanobisEnsemble,
}

/// One Gaussian fit per layer: `features[l]` is `N x D_l`, the labels are shared.
pub fn fit_layers(
    params: &MahalanobisParams,
    features: &[ArrayView2<f64>],
    labels: &[i64],
) -> Result<Vec<Mahalanobis>, EnsembleError> {
    if features.is_empty() {
        return Err(EnsembleError::NoLayers);
    }
    features
        .iter()
        .enumerate()
        .map(|(layer, f)| {
            params
                .fit(*f, labels)
                .map_err(|source| EnsembleError::Layer { layer, source })
        })
        .collect()
}

/// `N x L` layer scores `max_c -d_{l,c}(x)` of clean (not preprocessed) features.
pub fn layer_scores(
    layers: &[Mahalanobis],
    features: &[ArrayView2<f64>],
) -> Result<Array2<f64>, EnsembleError> {
    if layers.len() != features.len() {
        return Err(EnsembleError::Layers {
            expected: layers.len(),
            found: features.len(),
        });
    }
    let columns = layers
        .iter()
        .zip(features)
        .enumerate()
        .map(|(layer, (m, f))| {
            m.score(*f)
                .map_err(|source| EnsembleError::Layer { layer, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(stack_columns(&columns))
}

/// Columns of equal length side by side (`columns[l][i]` -> row `i`, column `l`).
pub fn stack_columns(columns: &[Vec<f64>]) -> Array2<f64> {
    let n = columns.first().map_or(0, Vec::len);
    Array2::from_shape_fn((n, columns.len()), |(i, l)| columns[l][i])
}

/// Rows `start, start + 2, ...` (the fitting half for `start = 0`, selection for 1).
fn every_other(x: &Array2<f64>, start: usize) -> Array2<f64> {
    let rows: Vec<usize> = (start..x.nrows()).step_by(2).collect();
    x.select(Axis(0), &rows)
}

impl EnsembleParams {
    /// Fits the regression on the layer scores of in-distribution rows `id` (positive) and OOD
    /// rows `ood` (each `N x L`).
    pub fn fit(
        &self,
        id: ArrayView2<f64>,
        ood: ArrayView2<f64>,
    ) -> Result<MahalanobisEnsemble, EnsembleError> {
        if id.ncols() != ood.ncols() {
            return Err(EnsembleError::Layers {
                expected: id.ncols(),
                found: ood.ncols(),
            });
        }
        if id.ncols() == 0 {
            return Err(EnsembleError::NoLayers);
        }
        let x = concatenate(Axis(0), &[id, ood]).expect("same number of columns");
        let y: Vec<bool> = (0..x.nrows()).map(|i| i < id.nrows()).collect();
        let n = x.nrows().max(1) as f64;
        let mean: Vec<f64> = x.columns().into_iter().map(|c| c.sum() / n).collect();
        let scale: Vec<f64> = x
            .columns()
            .into_iter()
            .zip(&mean)
            .map(|(c, m)| {
                let sd = (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
                // a constant layer score carries no information; keep it unscaled
                if sd.is_finite() && sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        let z = standardise(x.view(), &mean, &scale);
        let logistic = self.logistic.fit(z.view(), &y)?;
        Ok(MahalanobisEnsemble {
            mean,
            scale,
            logistic,
        })
    }

    /// Chooses among `grid` (e.g. input-preprocessing magnitudes) on validation data, as the
    /// module documentation says: `id[c]` are the `N x L` layer scores of the ID validation set
    /// under candidate `c`, `ood[v][c]` those of validation OOD set `v`.
    pub fn select<C: Clone>(
        &self,
        grid: &[C],
        id: &[Array2<f64>],
        ood: &[Vec<Array2<f64>>],
        cfg: &MetricsConfig,
    ) -> Result<EnsembleChoice<C>, EnsembleError> {
        let get = |set: usize, c: usize| -> Result<&Array2<f64>, EnsembleError> {
            let m = if set == 0 {
                id.get(c)
            } else {
                ood[set - 1].get(c)
            };
            let m = m.ok_or(EnsembleError::Missing { candidate: c, set })?;
            if m.nrows() < 2 {
                return Err(EnsembleError::Split {
                    set,
                    rows: m.nrows(),
                });
            }
            Ok(m)
        };
        let mut fitted = Vec::with_capacity(grid.len());
        let mut sel_id = Vec::with_capacity(grid.len());
        let mut sel_ood = vec![Vec::with_capacity(grid.len()); ood.len()];
        for c in 0..grid.len() {
            let id_c = get(0, c)?;
            let ood_c = (1..=ood.len())
                .map(|v| get(v, c))
                .collect::<Result<Vec<_>, _>>()?;
            let fit_ood: Vec<Array2<f64>> = ood_c.iter().map(|m| every_other(m, 0)).collect();
            let views: Vec<ArrayView2<f64>> = fit_ood.iter().map(|m| m.view()).collect();
            let fit_ood = if views.is_empty() {
                Array2::zeros((0, id_c.ncols()))
            } else {
                concatenate(Axis(0), &views).map_err(|_| EnsembleError::Layers {
                    expected: id_c.ncols(),
                    found: views.iter().map(|v| v.ncols()).max().unwrap_or(0),
                })?
            };
            let e = self.fit(every_other(id_c, 0).view(), fit_ood.view())?;
            sel_id.push(e.score(every_other(id_c, 1).view())?);
            for (dst, m) in sel_ood.iter_mut().zip(&ood_c) {
                dst.push(e.score(every_other(m, 1).view())?);
            }
            fitted.push(e);
        }
        let (selection, _) = select_on_scores(grid, &sel_id, &sel_ood, cfg)?;
        let ensemble = fitted.swap_remove(selection.best);
        Ok(EnsembleChoice {
            selection,
            ensemble,
        })
    }
}

fn standardise(x: ArrayView2<f64>, mean: &[f64], scale: &[f64]) -> Array2<f64> {
    let mut z = x.to_owned();
    for (mut c, (m, s)) in z.columns_mut().into_iter().zip(mean.iter().zip(scale)) {
        c.mapv_inplace(|v| (v - m) / s);
    }
    z
}

impl MahalanobisEnsemble {
    /// Number of layers combined.
    pub fn layers(&self) -> usize {
        self.mean.len()
    }

    /// The ensemble score (the regression's logit; higher = more in-distribution) of `N x L`
    /// layer scores.
    pub fn score(&self, layer_scores: ArrayView2<f64>) -> Result<Vec<f64>, EnsembleError> {
        if layer_scores.ncols() != self.layers() {
            return Err(EnsembleError::Layers {
                expected: self.layers(),
                found: layer_scores.ncols(),
            });
        }
        let z = standardise(layer_scores, &self.mean, &self.scale);
        Ok(self.logistic.decision(z.view())?)
    }

    /// The weight of each layer's raw score (`w_l / scale_l`): the regression in the units of
    /// the layer scores, for the record.
    pub fn raw_weights(&self) -> Vec<f64> {
        self.logistic
            .weights
            .iter()
            .zip(&self.scale)
            .map(|(w, s)| w / s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// Two layers: the first separates ID from OOD, the second is noise. The regression puts
    /// its weight on the first; scoring is standardise-then-logit.
    #[test]
    fn fit_weights_the_informative_layer() {
        let id = Array2::from_shape_fn((40, 2), |(i, l)| {
            if l == 0 {
                -1.0 - (i % 5) as f64
            } else {
                ((i * 7) % 11) as f64
            }
        });
        let ood = Array2::from_shape_fn((40, 2), |(i, l)| {
            if l == 0 {
                -8.0 - (i % 5) as f64
            } else {
                ((i * 5) % 11) as f64
            }
        });
        let e = EnsembleParams::default()
            .fit(id.view(), ood.view())
            .unwrap();
        assert!(
            e.logistic.weights[0] > 5.0 * e.logistic.weights[1].abs(),
            "{e:?}"
        );
        let s = e.score(array![[-2.0, 3.0], [-9.0, 3.0]].view()).unwrap();
        assert!(s[0] > 0.0 && s[1] < 0.0, "{s:?}");
        let w = e.raw_weights();
        let by_hand = w[0] * (-2.0 - e.mean[0])
            + e.logistic.weights[1] * (3.0 - e.mean[1]) / e.scale[1]
            + e.logistic.intercept;
        assert!((by_hand - s[0]).abs() < 1e-9);
        assert!(matches!(
            e.score(array![[1.0]].view()),
            Err(EnsembleError::Layers {
                expected: 2,
                found: 1
            })
        ));
    }

    /// `select` fits on even rows and judges on odd rows: a candidate whose odd rows separate
    /// wins even though both candidates' even rows are alike.
    #[test]
    fn select_judges_on_the_held_out_half() {
        // candidate 0: odd OOD rows look like ID; candidate 1: they do not
        let id = Array2::from_shape_fn((20, 1), |(i, _)| (i % 4) as f64);
        let ood_for = |bad: bool| {
            Array2::from_shape_fn((20, 1), |(i, _)| {
                if i % 2 == 1 && bad {
                    2.0
                } else {
                    -10.0 - (i % 3) as f64
                }
            })
        };
        let grid = [0.0, 0.5];
        let c = EnsembleParams::default()
            .select(
                &grid,
                &[id.clone(), id.clone()],
                &[vec![ood_for(true), ood_for(false)]],
                &MetricsConfig::default(),
            )
            .unwrap();
        assert_eq!(*c.selection.chosen(), 0.5);
        assert_eq!(c.selection.scores[1], 0.0);
        assert!(c.selection.scores[0] > 0.5, "{:?}", c.selection.scores);
        let short = EnsembleParams::default().select(
            &grid[..1],
            &[id.slice(ndarray::s![..1, ..]).to_owned()],
            &[vec![ood_for(false)]],
            &MetricsConfig::default(),
        );
        assert!(matches!(
            short,
            Err(EnsembleError::Split { set: 0, rows: 1 })
        ));
    }

    /// The layer scores are the single-layer detector's scores, one column per layer.
    #[test]
    fn layer_scores_are_the_single_layer_scores_side_by_side() {
        let a = Array2::from_shape_fn((12, 2), |(i, j)| {
            ((i * 3 + j * 5) % 7) as f64 + (i % 2) as f64 * 4.0
        });
        let b = Array2::from_shape_fn((12, 3), |(i, j)| {
            ((i * 5 + j) % 9) as f64 - (i % 2) as f64 * 3.0
        });
        let y: Vec<i64> = (0..12).map(|i| (i % 2) as i64).collect();
        let p = MahalanobisParams { shrinkage: 0.1 };
        let layers = fit_layers(&p, &[a.view(), b.view()], &y).unwrap();
        let s = layer_scores(&layers, &[a.view(), b.view()]).unwrap();
        let sa = p.fit(a.view(), &y).unwrap().score(a.view()).unwrap();
        let sb = p.fit(b.view(), &y).unwrap().score(b.view()).unwrap();
        assert_eq!(s.column(0).to_vec(), sa);
        assert_eq!(s.column(1).to_vec(), sb);
        assert!(matches!(
            layer_scores(&layers, &[a.view()]),
            Err(EnsembleError::Layers { .. })
        ));
    }
}
