//! Stage 4 of a run: the post-hoc detector zoo ([`ood_core::detectors`], the 15 methods of
//! [`ZOO`]) on the pre-trained model, next to MSP, energy, ODIN and Mahalanobis.
//!
//! Inputs are the arrays the run already has, extracted once (one forward pass per image set,
//! [`scoring::logits_and_features`]): penultimate (pooled) features and logits, and the model's
//! last linear layer `fc` ([`ood_nn::WideResNet::head`]).
//!
//! - **Fit** on ID *training* data only: the seeded subset of the training split that also fits
//!   Mahalanobis (`Plan::mahalanobis_fit_images`), its labels and the head ([`TrainSet`]). The
//!   validation and test sets never reach a `fit` ([`select_and_score`] takes them separately).
//! - **Choose** every hyper-parameter on the validation sets only (ID validation and the
//!   validation OOD sets of the margin search), from the method's paper grid
//!   ([`Params::paper_grid`]), by [`ood_core::selection`] (lowest mean FPR95, first of equals),
//!   as for ODIN.
//! - **Score** the test sets with the chosen setting.
//!
//! Degenerate cases, decided here and recorded: KNN's k is capped at the number of training
//! features (tiny runs); Mahalanobis on features and RMDS take [`scoring::FALLBACK_SHRINKAGE`]
//! when the unshrunk covariance is singular (as the input-preprocessing Mahalanobis does); a
//! method that cannot be fitted on this model (e.g. SHE when a class has no correctly
//! classified training image) is left out of the tables with its reason in run.json
//! (`zoo_skipped`) and the README, instead of failing the whole run.
use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::{Array1, Array2};
use ood_core::detectors::{self as det, FitData, Fitted, Head, Inputs, Params};
use ood_core::scores::MahalanobisError;
use serde::{Deserialize, Serialize};

use super::context::{RunContext, Scores, TestLogits};
use super::error::{BenchError, Result};
use super::method::{Method, ZOO};
use super::pretrained::{Pretrained, PretrainedOutputs};
use super::scoring::{self, Choice};

/// Logits (`N x K`) and penultimate features (`N x D`) of one image set.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub logits: Array2<f64>,
    pub features: Array2<f64>,
}

impl Outputs {
    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            features: Some(self.features.view()),
            logits: Some(self.logits.view()),
        }
    }
}

/// Outputs of the ID test set and of every OOD test set (by name).
#[derive(Debug, Clone)]
pub struct TestOutputs {
    pub id: Outputs,
    pub ood: Vec<(String, Outputs)>,
}

impl TestOutputs {
    /// The logits alone (MSP, energy, Figure 4a).
    pub fn logits(&self) -> TestLogits {
        TestLogits {
            id: self.id.logits.clone(),
            ood: self
                .ood
                .iter()
                .map(|(n, o)| (n.clone(), o.logits.clone()))
                .collect(),
        }
    }
}

/// What the zoo is fitted on: outputs of ID training images, their labels, the head.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub outputs: Outputs,
    pub labels: Vec<i64>,
    pub head: Head,
}

impl TrainSet {
    fn fit_data(&self) -> FitData<'_> {
        FitData {
            features: Some(self.outputs.features.view()),
            logits: Some(self.outputs.logits.view()),
            labels: Some(&self.labels),
            head: Some(&self.head),
        }
    }
}

/// The sets the zoo is judged on: validation (choice) and test (tables).
pub struct EvalSets<'a> {
    pub val_id: &'a Outputs,
    pub val_ood: &'a [Outputs],
    pub test: &'a TestOutputs,
}

/// What was chosen for one method, for run.json and the tables' notes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZooRecord {
    /// The settings tried (the paper grid, after the degenerate-case rules above).
    pub grid: Vec<Params>,
    /// Mean validation FPR95 (fraction) of each setting.
    pub validation_fpr: Vec<f64>,
    pub chosen: Params,
    /// Fit, validation and test scoring, wall clock.
    pub seconds: f64,
}

/// The grid tried for `m`: its paper grid for features of `train`'s dimension, KNN's k capped
/// at the number of training features (duplicates dropped); the method's default when no grid
/// value fits (ViM with D <= 16).
pub fn grid(m: det::Method, train: &TrainSet) -> Vec<Params> {
    let n = train.outputs.features.nrows();
    let mut out: Vec<Params> = Vec::new();
    for p in Params::paper_grid(m, train.head.dims()) {
        let p = match p {
            Params::Knn(k) if k.k > n => Params::Knn(det::KnnParams { k: n.max(1), ..k }),
            p => p,
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        // ViM below 17 dimensions: no grid value fits under D; the authors' rule (D / 2)
        out.push(Params::default_for(m));
    }
    out
}

fn detector_err(method: &'static str) -> impl Fn(det::DetectorError) -> BenchError {
    move |source| BenchError::Zoo { method, source }
}

/// Fits `p` on the training set; the Gaussian methods with the fallback shrinkage when their
/// covariance is singular. Returns the model and the parameters actually fitted.
fn fit(p: &Params, train: &TrainSet) -> Result<(Fitted, Params)> {
    let data = train.fit_data();
    let singular = |e: &det::DetectorError| {
        matches!(
            e,
            det::DetectorError::Mahalanobis(MahalanobisError::Singular { .. })
        )
    };
    let shrunk = |p: &Params, shrinkage: f64| match p {
        Params::MahalanobisFeatures(_) => {
            Params::MahalanobisFeatures(ood_core::scores::MahalanobisParams { shrinkage })
        }
        Params::Rmds(_) => Params::Rmds(ood_core::scores::MahalanobisParams { shrinkage }),
        p => *p,
    };
    let (model, shrinkage) = match p {
        Params::MahalanobisFeatures(m) | Params::Rmds(m) if m.shrinkage == 0.0 => {
            scoring::with_fallback_shrinkage(|s| shrunk(p, s).fit(&data), singular)
        }
        _ => p.fit(&data).map(|f| (f, 0.0)),
    }
    .map_err(detector_err(p.method().key()))?;
    Ok((
        model,
        if shrinkage > 0.0 {
            shrunk(p, shrinkage)
        } else {
            *p
        },
    ))
}

/// Chooses `m`'s setting on the validation sets and scores the test sets with it. Fitting sees
/// `train` only.
pub fn select_and_score(
    m: det::Method,
    train: &TrainSet,
    sets: &EvalSets,
    progress: bool,
) -> Result<(ZooRecord, Scores)> {
    let t0 = Instant::now();
    let candidates = grid(m, train);
    let pb = super::progress::bar(candidates.len() as u64, progress, m.key());
    let err = detector_err(m.key());
    let (mut models, mut tried) = (Vec::new(), Vec::new());
    let (mut id, mut ood) = (Vec::new(), vec![Vec::new(); sets.val_ood.len()]);
    for p in &candidates {
        let (model, used) = fit(p, train)?;
        id.push(model.score(&sets.val_id.inputs()).map_err(&err)?);
        for (o, v) in ood.iter_mut().zip(sets.val_ood) {
            o.push(model.score(&v.inputs()).map_err(&err)?);
        }
        models.push(model);
        tried.push(used);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let choice = Choice::on_validation(&tried, &id, &ood)?;
    let best = tried
        .iter()
        .position(|p| *p == choice.chosen)
        .expect("the choice is one of the grid");
    let model = &models[best];
    let test = sets.test;
    let scores = Scores {
        id: model.score(&test.id.inputs()).map_err(&err)?,
        ood: test
            .ood
            .iter()
            .map(|(n, o)| Ok((n.clone(), model.score(&o.inputs()).map_err(&err)?)))
            .collect::<Result<Vec<_>>>()?,
    };
    let record = ZooRecord {
        grid: choice.grid,
        validation_fpr: choice.validation_fpr,
        chosen: choice.chosen,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok((record, scores))
}

/// `percentile = 90, k = 50`: the hyper-parameters of `p` without the method's name.
pub fn describe(p: &Params) -> String {
    let v = serde_json::to_value(p).unwrap_or_default();
    let fields: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "method" && *k != "variant")
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    if fields.is_empty() {
        "no hyper-parameters".into()
    } else {
        fields.join(", ")
    }
}

/// The head of the pre-trained model as f64 arrays.
pub fn head_of(model: &ood_nn::model::Classifier) -> Result<Head> {
    let ood_nn::model::Classifier::Wrn { net, .. } = model else {
        return Err(BenchError::NoHead);
    };
    let (w, b) = net.head();
    let (k, d) = (w.size()[0] as usize, w.size()[1] as usize);
    let weight = Array2::from_shape_vec((k, d), scoring::host_values(&w, "head weight")?).map_err(
        |source| BenchError::LogitShape {
            values: k * d,
            classes: d,
            source,
        },
    )?;
    let bias = Array1::from(scoring::host_values(&b, "head bias")?);
    Head::new(weight, bias).map_err(detector_err("the head (fc) of the pre-trained model"))
}

/// Stage 4: every zoo method chosen on validation and scored on the test sets, into the
/// tables; choices and skipped methods into the record.
pub(super) fn score_zoo(
    ctx: &mut RunContext,
    pre: &Pretrained,
    outs: &PretrainedOutputs,
) -> Result<()> {
    let (train, val_id, test) = (&outs.train, &outs.val_id, &outs.test);
    ctx.stages.begin(&format!(
        "detector zoo: {} post-hoc methods, fitted on {} training images, chosen on {} validation OOD sets",
        ZOO.len(),
        train.labels.len(),
        ctx.sets.val_ood.len()
    ));
    let t0 = Instant::now();
    let (model, norm, show) = (&pre.model, &pre.norm, ctx.show());
    let val_ood = ctx
        .sets
        .val_ood
        .iter()
        .map(|p| {
            let (logits, features) = scoring::logits_and_features(model, p, norm, show)?;
            Ok(Outputs { logits, features })
        })
        .collect::<Result<Vec<_>>>()?;
    let sets = EvalSets {
        val_id,
        val_ood: &val_ood,
        test,
    };
    for m in ZOO {
        match select_and_score(m, train, &sets, show) {
            Ok((record, scores)) => {
                let best = record
                    .grid
                    .iter()
                    .position(|p| *p == record.chosen)
                    .map_or(f64::NAN, |i| record.validation_fpr[i]);
                ctx.stages.note(&format!(
                    "{}: {} setting(s), chose {} (validation FPR95 {:.2}%), {:.1} s",
                    m.key(),
                    record.grid.len(),
                    describe(&record.chosen),
                    100.0 * best,
                    record.seconds
                ));
                let mut params = serde_json::to_value(record.chosen).unwrap_or_default();
                if let Some(o) = params.as_object_mut() {
                    o.insert("fit_images".into(), train.labels.len().into());
                }
                ctx.add(Method::Zoo(m), params, outs.test_error, scores);
                ctx.record.zoo.insert(m.key().into(), record);
            }
            Err(BenchError::Zoo { source, .. }) => {
                ctx.stages.note(&format!(
                    "{}: left out, cannot be fitted: {source}",
                    m.key()
                ));
                ctx.record
                    .zoo_skipped
                    .insert(m.key().into(), source.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    ctx.timings.record(
        "detector zoo (validation OOD outputs, 15 methods: grids + test)",
        t0.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Choices of every zoo method, one line each (README and table notes).
pub fn choices_markdown(
    zoo: &BTreeMap<String, ZooRecord>,
    skipped: &BTreeMap<String, String>,
) -> String {
    let mut s = String::new();
    for m in ZOO {
        if let Some(r) = zoo.get(m.key()) {
            s.push_str(&format!(
                "- {} (`{}`): {} (of {} setting(s))\n",
                Method::Zoo(m).label(),
                m.key(),
                describe(&r.chosen),
                r.grid.len()
            ));
        } else if let Some(why) = skipped.get(m.key()) {
            s.push_str(&format!(
                "- {} (`{}`): left out, cannot be fitted: {why}\n",
                Method::Zoo(m).label(),
                m.key()
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests;
