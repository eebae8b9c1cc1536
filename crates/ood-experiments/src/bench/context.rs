//! The run context shared by the stages of [`super::run`]: options, results folder, the image
//! sets after subsetting, progress, timings, what was chosen, and the results keyed by method.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use ood_core::protocol::{evaluate_table, ProtocolConfig};
use ood_data::batch::ImageSource;
use ood_data::transforms::Normalize;
use ood_nn::data::{InputSpec, NpySet};
use ood_nn::model::Classifier;
use ood_nn::tch::Device;

use super::data::{choose, subset_file, BenchData};
use super::error::{BenchError, Result};
use super::finetune::Weights;
use super::layout::BenchDir;
use super::method::Method;
use super::plan::Plan;
use super::progress::Stages;
use super::zoo::{Outputs, TestOutputs};
use super::{scoring, InputSource, Options, RunRecord, Series4a};
use crate::report::Entry;
use crate::results::ResultsDir;
use crate::run_info::Timings;

/// The scores the deployable detector is calibrated on (ID validation, energy at T = 1), and
/// which model they come from.
pub(super) struct DetectorBasis {
    pub scores: Vec<f64>,
    pub model: String,
}

/// Everything the stages share.
pub(super) struct RunContext<'a> {
    pub opts: &'a Options,
    pub plan: &'a Plan,
    pub dir: BenchDir,
    pub results: ResultsDir,
    pub stages: Stages,
    pub timings: Timings,
    pub record: RunRecord,
    pub sets: Sets,
    pub train: Arc<NpySet>,
    /// The results of Tables 1 and 2, in table order.
    pub entries: BTreeMap<Method, Entry>,
    pub detector: Option<DetectorBasis>,
}

impl<'a> RunContext<'a> {
    /// Creates the results folder and prepares the seeded image subsets (step 1).
    pub fn prepare(opts: &'a Options) -> Result<Self> {
        let plan = &opts.plan;
        let dir = BenchDir::new(&opts.out);
        let results = ResultsDir::create(dir.root())?;
        let mut timings = Timings::default();
        let steps = if opts.finetune { 8 } else { 5 };
        let mut stages = Stages::new(steps, opts.progress);
        stages.begin(&format!("preparing {} subsets", opts.data.name));
        let sets = timings.time("prepare data subsets", || {
            prepare_sets(&opts.data, plan, opts.seed, &dir)
        })?;
        let train = Arc::new(NpySet::open(&opts.data.train_x, Some(&opts.data.train_y))?);
        Ok(Self {
            opts,
            plan,
            dir,
            results,
            stages,
            timings,
            record: RunRecord::default(),
            sets,
            train,
            entries: BTreeMap::new(),
            detector: None,
        })
    }

    pub fn device(&self) -> Device {
        self.opts.device
    }

    pub fn show(&self) -> bool {
        self.opts.progress
    }

    /// The input spec of a model without one recorded: `--mean/--std`, else the plan's
    /// normalisation, else the default for the training images' channels; with its source.
    pub fn default_spec_and_source(&self) -> (InputSpec, InputSource) {
        let (h, w, c) = self.train.image_shape();
        let (norm, source) = match (&self.opts.normalize, self.plan.normalize_for(c)) {
            (Some(n), _) => (n.clone(), InputSource::Flags),
            (None, Some(n)) => (n.clone(), InputSource::Plan),
            (None, None) => return (InputSpec::default_for(h, w, c), InputSource::Default),
        };
        let spec = InputSpec {
            mean: norm.mean,
            std: norm.std,
            ..InputSpec::default_for(h, w, c)
        };
        (spec, source)
    }

    pub fn default_spec(&self) -> InputSpec {
        self.default_spec_and_source().0
    }

    /// `wts` loaded for inference, with its input spec and where that came from. A checkpoint's
    /// recorded normalisation wins over the plan's; one that disagrees with `--mean/--std` is
    /// refused (the model would be fed other inputs than the user said).
    pub fn load_with_source(&self, wts: &Weights) -> Result<(Classifier, InputSpec, InputSource)> {
        let (vs, net, spec) = wts.load(self.device())?;
        let (spec, source) = match spec {
            Some(s) => {
                if let Some(n) = &self.opts.normalize {
                    if (&n.mean, &n.std) != (&s.mean, &s.std) {
                        return Err(BenchError::InputMismatch {
                            model: wts.describe(),
                            recorded: (s.mean.clone(), s.std.clone()),
                            given: (n.mean.clone(), n.std.clone()),
                        });
                    }
                }
                (s, InputSource::Checkpoint)
            }
            None => self.default_spec_and_source(),
        };
        Ok((Classifier::from_wrn(vs, net), spec, source))
    }

    /// `wts` loaded for inference, with its input spec.
    pub fn load(&self, wts: &Weights) -> Result<(Classifier, InputSpec)> {
        let (model, spec, _) = self.load_with_source(wts)?;
        Ok((model, spec))
    }

    /// Logits of the ID test set and of every OOD test set.
    pub fn test_logits(&self, model: &Classifier, norm: &Normalize) -> Result<TestLogits> {
        let show = self.show();
        let id = scoring::logits(model, &self.sets.test_id, norm, show)?;
        let ood = self
            .sets
            .test_ood
            .iter()
            .map(|(n, p)| Ok((n.clone(), scoring::logits(model, p, norm, show)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(TestLogits { id, ood })
    }

    /// Logits and penultimate features of the ID test set and of every OOD test set, from one
    /// forward pass per set.
    pub fn test_outputs(&self, model: &Classifier, norm: &Normalize) -> Result<TestOutputs> {
        let show = self.show();
        let outputs = |p: &Path| -> Result<Outputs> {
            let (logits, features) = scoring::logits_and_features(model, p, norm, show)?;
            Ok(Outputs { logits, features })
        };
        Ok(TestOutputs {
            id: outputs(&self.sets.test_id)?,
            ood: self
                .sets
                .test_ood
                .iter()
                .map(|(n, p)| Ok((n.clone(), outputs(p)?)))
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// Records `method`'s test scores.
    pub fn add(
        &mut self,
        method: Method,
        params: serde_json::Value,
        test_error: f64,
        scores: Scores,
    ) {
        self.entries.insert(
            method,
            Entry {
                key: method.key().into(),
                label: method.label().into(),
                group: method.group(),
                params,
                test_error: Some(test_error),
                id: scores.id,
                ood: scores.ood,
            },
        );
    }

    /// Test scores in the order of `sets.test_id` then `sets.test_ood` (as the ODIN and
    /// Mahalanobis passes return them), named.
    pub fn split(&self, scores: Vec<Vec<f64>>) -> Scores {
        let mut it = scores.into_iter();
        let id = it.next().unwrap_or_default();
        let names = self.sets.test_ood.iter().map(|(n, _)| n.clone());
        Scores {
            id,
            ood: names.zip(it).collect(),
        }
    }

    /// The paths scored by the ODIN and Mahalanobis passes: ID test, then the OOD test sets.
    pub fn test_paths(&self) -> Vec<&Path> {
        std::iter::once(self.sets.test_id.as_path())
            .chain(self.sets.test_ood.iter().map(|(_, p)| p.as_path()))
            .collect()
    }

    /// The validation and test sets of the ODIN and Mahalanobis grids.
    pub fn grid_sets(&self) -> scoring::GridSets<'_> {
        scoring::GridSets {
            val_id: &self.sets.select_id,
            val_ood: self.sets.select_ood.iter().map(|p| p.as_path()).collect(),
            test: self.test_paths(),
            progress: self.show(),
        }
    }

    /// Figure 4a: mean FPR95 (percent) over the OOD test sets per temperature of the plan.
    pub fn fpr_curve(
        &mut self,
        name: &str,
        logits: &TestLogits,
        score: impl Fn(&Array2<f64>, f64) -> Result<Vec<f64>>,
    ) -> Result<()> {
        let series = fpr_curve(
            name,
            logits,
            &self.plan.temperatures,
            &self.plan.protocol,
            score,
        )?;
        self.record.fpr_vs_temperature.push(series);
        Ok(())
    }
}

/// Test scores of one method: ID test, then each OOD test set by name.
pub(super) struct Scores {
    pub id: Vec<f64>,
    pub ood: Vec<(String, Vec<f64>)>,
}

impl Scores {
    /// Every OOD test score in one list (Figure 3).
    pub fn pooled_ood(&self) -> Vec<f64> {
        self.ood
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .collect()
    }
}

/// Logits of the ID test set and of every OOD test set.
pub(super) struct TestLogits {
    pub id: Array2<f64>,
    pub ood: Vec<(String, Array2<f64>)>,
}

impl TestLogits {
    /// Scores of every set by a logit score.
    pub fn scores(&self, score: impl Fn(&Array2<f64>) -> Result<Vec<f64>>) -> Result<Scores> {
        Ok(Scores {
            id: score(&self.id)?,
            ood: self
                .ood
                .iter()
                .map(|(n, l)| Ok((n.clone(), score(l)?)))
                .collect::<Result<Vec<_>>>()?,
        })
    }
}

fn fpr_curve(
    name: &str,
    logits: &TestLogits,
    temps: &[f64],
    protocol: &ProtocolConfig,
    score: impl Fn(&Array2<f64>, f64) -> Result<Vec<f64>>,
) -> Result<Series4a> {
    let mut points = Vec::new();
    for &t in temps {
        let s = logits.scores(|l| score(l, t))?;
        points.push((t, 100.0 * evaluate_table(&s.id, &s.ood, protocol)?.mean.fpr));
    }
    Ok(Series4a {
        name: name.into(),
        points,
    })
}

/// Image sets of the run after subsetting: paths of `.npy` files.
pub(super) struct Sets {
    pub test_id: PathBuf,
    pub test_labels: Vec<i64>,
    pub test_ood: Vec<(String, PathBuf)>,
    pub val_id: PathBuf,
    /// Labels of `val_id` when the benchmark has validation labels.
    pub val_labels: Option<Vec<i64>>,
    pub val_ood: Vec<PathBuf>,
    pub select_id: PathBuf,
    pub select_ood: Vec<PathBuf>,
    pub maha_fit: PathBuf,
    pub maha_labels: Vec<i64>,
    pub outliers_sample: PathBuf,
}

fn n_images(path: &Path) -> Result<usize> {
    Ok(ood_data::formats::npy_images::NpyImages::open(path)?.len())
}

/// Seeded subsets of a run: stream `stream` of the run's seed picks the rows of each set.
struct Subsets<'a> {
    seed: u64,
    dir: &'a BenchDir,
}

impl Subsets<'_> {
    /// `k` seeded rows of `src` written as `work/sets/<name>.npy` (`src` itself when `k` covers
    /// it), with the rows chosen.
    fn sub(
        &self,
        src: &Path,
        k: Option<usize>,
        stream: u64,
        name: &str,
    ) -> Result<(PathBuf, Option<Vec<usize>>)> {
        let n = n_images(src)?;
        match k {
            Some(k) if k < n => {
                let seed = self.seed.wrapping_mul(1000).wrapping_add(stream);
                let rows = choose(n, k, seed);
                let path = subset_file(src, Some(&rows), &self.dir.subset(name))?;
                Ok((path, Some(rows)))
            }
            _ => Ok((src.to_path_buf(), None)),
        }
    }

    /// The labels in `path` of `rows` (all when `None`); fewer labels than rows is an error.
    fn labels(path: &Path, rows: &Option<Vec<usize>>) -> Result<Vec<i64>> {
        let l = ood_core::io::npy::read_labels(path)?;
        match rows {
            Some(r) => r
                .iter()
                .map(|&i| {
                    l.get(i).copied().ok_or_else(|| BenchError::RowOutOfRange {
                        path: path.to_path_buf(),
                        row: i,
                        len: l.len(),
                    })
                })
                .collect(),
            None => Ok(l),
        }
    }
}

pub(super) fn prepare_sets(d: &BenchData, plan: &Plan, seed: u64, dir: &BenchDir) -> Result<Sets> {
    let s = Subsets { seed, dir };
    let sub = |src: &Path, k: Option<usize>, stream: u64, name: &str| s.sub(src, k, stream, name);
    let labels_of = Subsets::labels;
    let (test_id, rows) = sub(&d.test_x, plan.test_id_images, 1, "test_id")?;
    let test_labels = labels_of(&d.test_y, &rows)?;
    let mut test_ood = Vec::new();
    for (i, (name, p)) in d.ood_test.iter().enumerate() {
        test_ood.push((
            name.clone(),
            sub(
                p,
                plan.test_ood_images,
                100 + i as u64,
                &format!("test_{name}"),
            )?
            .0,
        ));
    }
    let (val_id, rows) = sub(&d.val_x, Some(plan.val_id_images), 2, "val_id")?;
    let val_labels = match &d.val_y {
        Some(y) => Some(labels_of(y, &rows)?),
        None => None,
    };
    let select_id = sub(&d.val_x, Some(plan.select_id_images), 3, "select_id")?.0;
    let mut val_ood = Vec::new();
    let mut select_ood = Vec::new();
    for (i, (name, p)) in d.ood_val.iter().enumerate() {
        val_ood.push(
            sub(
                p,
                Some(plan.val_ood_images),
                200 + i as u64,
                &format!("val_{name}"),
            )?
            .0,
        );
        select_ood.push(
            sub(
                p,
                Some(plan.select_ood_images),
                300 + i as u64,
                &format!("select_{name}"),
            )?
            .0,
        );
    }
    let (maha_fit, rows) = sub(
        &d.train_x,
        Some(plan.mahalanobis_fit_images),
        4,
        "mahalanobis_fit",
    )?;
    let maha_labels = labels_of(&d.train_y, &rows)?;
    let outliers_sample = sub(
        &d.outliers,
        Some(plan.outlier_energy_images),
        5,
        "outliers_sample",
    )?
    .0;
    Ok(Sets {
        test_id,
        test_labels,
        test_ood,
        val_id,
        val_labels,
        val_ood,
        select_id,
        select_ood,
        maha_fit,
        maha_labels,
        outliers_sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_rows_beyond_the_label_file_are_an_error_not_a_panic() {
        // regression: a labels file shorter than its image file indexed out of bounds
        let dir = tempfile::tempdir().unwrap();
        let y = dir.path().join("y.npy");
        ood_core::io::npy::write_i64_vector(&y, &[4, 5, 6]).unwrap();
        assert_eq!(Subsets::labels(&y, &Some(vec![0, 2])).unwrap(), vec![4, 6]);
        assert_eq!(Subsets::labels(&y, &None).unwrap(), vec![4, 5, 6]);
        let e = Subsets::labels(&y, &Some(vec![1, 7])).unwrap_err();
        assert!(
            matches!(e, BenchError::RowOutOfRange { row: 7, len: 3, .. }),
            "{e}"
        );
    }
}
