//! The benchmark runner behind `eood bench`: the paper's evaluation end to end.
//!
//! 1. **Model**: load the pre-trained classifier (our checkpoint or a PyTorch `state_dict`), or
//!    pretrain it with the code of record's recipe ([`Plan::pretrain_epochs`] epochs).
//! 2. **Score** the ID test set and every OOD test set with MSP, energy (T = 1), ODIN and
//!    Mahalanobis. ODIN's (T, eps) and Mahalanobis' eps are chosen on the *validation* OOD sets
//!    only (lowest mean FPR95), never on the test sets.
//! 3. **Fine-tune** with Outlier Exposure and with the energy-bounded loss on the auxiliary
//!    outliers. Energy margins: the paper's recipe, a grid around the pre-trained model's mean
//!    energies on ID and outlier data, each candidate fine-tuned and judged by its mean FPR95
//!    on the validation OOD sets (or fixed margins, e.g. the code of record's -23/-5). Score again.
//! 4. **Report**: Table 1 and Table 2 (the paper's protocol: OOD draws, mean and std), CSV,
//!    JSON, Figures 3, 4a, 4b, a calibrated detector, the configuration, seeds, versions,
//!    machine and timings, in one results folder.
//!
//! Fine-tuned models can also be given as files (e.g. the code of record's published
//! `*_energy_ft` / `*_oe_tune` state_dicts); then that step is evaluation only.
pub mod cifar;
pub mod data;
pub mod finetune;
pub mod progress;
pub mod scoring;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use ood_core::protocol::{evaluate_table, ProtocolConfig};
use ood_core::Detector;
use ood_data::batch::ImageSource;
use ood_nn::data::{InputSpec, NpySet};
use ood_nn::losses::FinetuneLoss;
use ood_nn::model::Classifier;
use ood_nn::odin::{OdinGrid, OdinParams};
use ood_nn::tch::{self, Device};
use ood_nn::train::RunConfig;
use ood_nn::{WideResNet, WrnConfig};
use serde::{Deserialize, Serialize};

use crate::figures::{self, HistPanel, Series};
use crate::report::{Entry, Group, Report, Table1Block};
use crate::results::ResultsDir;
use crate::run_info::{Machine, Timings, Versions};
use data::{choose, subset_file, BenchData};
use finetune::{finetune_config, margin_grid, run_job, TrainJob, Weights};
use progress::Stages;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Io(String),
    #[error("libtorch: {0}")]
    Torch(String),
    #[error(transparent)]
    Nn(#[from] ood_nn::Error),
    #[error(transparent)]
    Infer(#[from] ood_nn::extract::InferError),
    #[error(transparent)]
    OodData(#[from] ood_data::Error),
    #[error(transparent)]
    Score(#[from] ood_core::scores::ScoreError),
    #[error(transparent)]
    Metrics(#[from] ood_core::MetricsError),
    #[error(transparent)]
    Protocol(#[from] ood_core::protocol::ProtocolError),
    #[error(transparent)]
    Npy(#[from] ood_core::io::npy::NpyError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error(transparent)]
    Figure(#[from] crate::figures::FigureError),
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    #[error(transparent)]
    Mahalanobis(#[from] ood_core::scores::MahalanobisError),
    #[error(transparent)]
    Detector(#[from] ood_core::detector::DetectorError),
}

impl From<ood_core::io::IoError> for BenchError {
    fn from(e: ood_core::io::IoError) -> Self {
        BenchError::Io(e.to_string())
    }
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// How much work a run does. Every number is recorded in the results' `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Architecture when pretraining (`in_channels`/`num_classes` are set from the data).
    pub arch: WrnConfig,
    pub pretrain_epochs: u64,
    /// Training images per pretraining epoch (seeded subset; `None` = all).
    pub pretrain_images: Option<usize>,
    /// ID test images scored (seeded subset; `None` = all).
    pub test_id_images: Option<usize>,
    /// Cap on the images of each OOD test set (seeded subset; `None` = all).
    pub test_ood_images: Option<usize>,
    /// ID validation images and images per validation OOD set for margin selection.
    pub val_id_images: usize,
    pub val_ood_images: usize,
    /// The same for the ODIN and Mahalanobis grids (each setting costs extra passes).
    pub select_id_images: usize,
    pub select_ood_images: usize,
    pub odin_grid: OdinGrid,
    pub mahalanobis_epsilons: Vec<f64>,
    /// Training images whose features fit the Mahalanobis class means and covariance.
    pub mahalanobis_fit_images: usize,
    pub finetune_epochs: u64,
    /// ID images per fine-tuning epoch (steps = this / 128); `None` = the whole training set.
    pub finetune_images: Option<usize>,
    pub finetune_lr: f64,
    /// Energy margins: fixed `(m_in, m_out)` (code of record), or a grid around the mean energies.
    pub margins: Option<(f64, f64)>,
    pub margin_offsets_in: Vec<f64>,
    pub margin_offsets_out: Vec<f64>,
    /// Outlier images whose mean energy centres the margin grid.
    pub outlier_energy_images: usize,
    /// Temperatures of Figure 4a.
    pub temperatures: Vec<f64>,
    pub protocol: ProtocolConfig,
}

impl Plan {
    /// The Fashion-MNIST benchmark on 2 CPU cores (about 15 minutes with the shipped model; see
    /// docs/experiments.md for the measured cost of each step).
    pub fn fmnist() -> Self {
        Self {
            arch: WrnConfig {
                depth: 10,
                widen_factor: 1,
                dropout: 0.0,
                num_classes: 10,
                in_channels: 1,
            },
            // the shipped model's recipe (scripts/bench-train-fmnist-model.sh)
            pretrain_epochs: 10,
            pretrain_images: None,
            test_id_images: None,
            test_ood_images: Some(5000),
            val_id_images: 2000,
            val_ood_images: 500,
            select_id_images: 1000,
            select_ood_images: 200,
            odin_grid: OdinGrid {
                temperatures: vec![1.0, 10.0, 100.0, 1000.0],
                epsilons: vec![0.0, 0.0004, 0.0014, 0.0024, 0.0038],
            },
            mahalanobis_epsilons: ood_nn::mahalanobis_input::EPSILONS.to_vec(),
            mahalanobis_fit_images: 10_000,
            finetune_epochs: 1,
            finetune_images: Some(150 * 128),
            finetune_lr: 0.001,
            margins: None,
            margin_offsets_in: vec![-4.0, 0.0],
            margin_offsets_out: vec![0.0, 4.0],
            outlier_energy_images: 2000,
            temperatures: vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
            protocol: ProtocolConfig::default(),
        }
    }

    /// A few-minute smoke version of [`Plan::fmnist`]: small subsets everywhere.
    pub fn fmnist_quick() -> Self {
        Self {
            pretrain_epochs: 1,
            pretrain_images: Some(4096),
            test_id_images: Some(1000),
            test_ood_images: Some(500),
            val_id_images: 500,
            val_ood_images: 100,
            select_id_images: 300,
            select_ood_images: 50,
            odin_grid: OdinGrid {
                temperatures: vec![1.0, 1000.0],
                epsilons: vec![0.0, 0.0014],
            },
            mahalanobis_epsilons: vec![0.0, 0.0014],
            mahalanobis_fit_images: 2000,
            finetune_images: Some(10 * 128),
            outlier_energy_images: 500,
            ..Self::fmnist()
        }
    }

    /// The paper's CIFAR settings (Section 4.1 and the code of record): WRN-40-2, dropout 0.3,
    /// 100 pretraining epochs, 10 fine-tuning epochs over the whole training set, the code of
    /// record's margins (-23/-5 for 10 classes, -27/-5 for 100), full ODIN and Mahalanobis grids.
    pub fn paper(num_classes: i64) -> Self {
        let m_in = if num_classes >= 100 { -27.0 } else { -23.0 };
        Self {
            arch: WrnConfig {
                num_classes,
                ..WrnConfig::default()
            },
            pretrain_epochs: 100,
            pretrain_images: None,
            test_id_images: None,
            test_ood_images: None,
            val_id_images: 5000,
            val_ood_images: 2000,
            select_id_images: 2000,
            select_ood_images: 1000,
            odin_grid: OdinGrid::default(),
            mahalanobis_epsilons: ood_nn::mahalanobis_input::EPSILONS.to_vec(),
            mahalanobis_fit_images: 50_000,
            finetune_epochs: 10,
            finetune_images: None,
            finetune_lr: 0.001,
            margins: Some((m_in, -5.0)),
            margin_offsets_in: vec![],
            margin_offsets_out: vec![],
            outlier_energy_images: 5000,
            temperatures: Self::fmnist().temperatures,
            protocol: ProtocolConfig::default(),
        }
    }
}

/// Where each model comes from; `None` = trained by the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Models {
    pub pretrained: Option<Weights>,
    pub oe: Option<Weights>,
    pub energy_ft: Option<Weights>,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub data: BenchData,
    pub out: PathBuf,
    pub plan: Plan,
    pub models: Models,
    pub seed: u64,
    pub device: Device,
    pub threads: Option<i32>,
    /// `false`: score the pre-trained model only (no fine-tuning step).
    pub finetune: bool,
    pub progress: bool,
    /// The command line, for the record.
    pub command: String,
    /// Threads preparing training batches.
    pub workers: usize,
}

/// What the run chose and measured besides the tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub pretrained: String,
    pub test_error: std::collections::BTreeMap<String, f64>,
    pub odin: Option<scoring::Choice<OdinParams>>,
    pub mahalanobis: Option<scoring::Choice<f64>>,
    /// Mean energy E(x) = -logsumexp(f(x)) of the pre-trained model on ID validation and outliers.
    pub mean_energy_id: Option<f64>,
    pub mean_energy_outliers: Option<f64>,
    pub margin_grid: Option<MarginSearch>,
    /// Figure 4a data: FPR95 (percent, mean over the OOD test sets) per temperature.
    pub fpr_vs_temperature: Vec<Series4a>,
    pub finetune_logs: std::collections::BTreeMap<String, Vec<ood_nn::train::EpochLog>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series4a {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarginSearch {
    pub m_in: Vec<f64>,
    pub m_out: Vec<f64>,
    /// Mean validation FPR95 (fraction) of `m_in[i]`, `m_out[j]`.
    pub validation_fpr: Vec<Vec<Option<f64>>>,
    pub chosen: (f64, f64),
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub dir: PathBuf,
    pub seconds: f64,
}

/// Image sets of the run after subsetting: paths of `.npy` files.
struct Sets {
    test_id: PathBuf,
    test_labels: Vec<i64>,
    test_ood: Vec<(String, PathBuf)>,
    val_id: PathBuf,
    val_ood: Vec<PathBuf>,
    select_id: PathBuf,
    select_ood: Vec<PathBuf>,
    maha_fit: PathBuf,
    maha_labels: Vec<i64>,
    outliers_sample: PathBuf,
}

fn n_images(path: &Path) -> Result<usize> {
    Ok(ood_data::formats::npy_images::NpyImages::open(path)?.len())
}

fn prepare_sets(d: &BenchData, plan: &Plan, seed: u64, work: &Path) -> Result<Sets> {
    let sub = |src: &Path,
               k: Option<usize>,
               stream: u64,
               name: &str|
     -> Result<(PathBuf, Option<Vec<usize>>)> {
        let n = n_images(src)?;
        match k {
            Some(k) if k < n => {
                let rows = choose(n, k, seed.wrapping_mul(1000).wrapping_add(stream));
                Ok((
                    subset_file(
                        src,
                        Some(&rows),
                        &work.join("sets").join(format!("{name}.npy")),
                    )?,
                    Some(rows),
                ))
            }
            _ => Ok((src.to_path_buf(), None)),
        }
    };
    let labels_of = |path: &Path, rows: &Option<Vec<usize>>| -> Result<Vec<i64>> {
        let l = ood_core::io::npy::read_labels(path)?;
        Ok(match rows {
            Some(r) => r.iter().map(|&i| l[i]).collect(),
            None => l,
        })
    };
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
    let val_id = sub(&d.val_x, Some(plan.val_id_images), 2, "val_id")?.0;
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
        val_ood,
        select_id,
        select_ood,
        maha_fit,
        maha_labels,
        outliers_sample,
    })
}

/// Logits of the ID test set and of every OOD test set.
struct TestLogits {
    id: Array2<f64>,
    ood: Vec<(String, Array2<f64>)>,
}

fn test_logits(
    model: &Classifier,
    norm: &ood_data::transforms::Normalize,
    sets: &Sets,
    progress: bool,
) -> Result<TestLogits> {
    let id = scoring::logits(model, &sets.test_id, norm, progress)?;
    let ood = sets
        .test_ood
        .iter()
        .map(|(n, p)| Ok((n.clone(), scoring::logits(model, p, norm, progress)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(TestLogits { id, ood })
}

fn entry_from(
    key: &str,
    label: &str,
    group: Group,
    params: serde_json::Value,
    test_error: f64,
    logits: &TestLogits,
    score: impl Fn(&Array2<f64>) -> Result<Vec<f64>>,
) -> Result<Entry> {
    Ok(Entry {
        key: key.into(),
        label: label.into(),
        group,
        params,
        test_error: Some(test_error),
        id: score(&logits.id)?,
        ood: logits
            .ood
            .iter()
            .map(|(n, l)| Ok((n.clone(), score(l)?)))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// Mean FPR95 (percent) over the OOD test sets with the protocol, per temperature.
fn fpr_curve(
    name: &str,
    logits: &TestLogits,
    temps: &[f64],
    protocol: &ProtocolConfig,
    score: impl Fn(&Array2<f64>, f64) -> Result<Vec<f64>>,
) -> Result<Series4a> {
    let mut points = Vec::new();
    for &t in temps {
        let id = score(&logits.id, t)?;
        let ood = logits
            .ood
            .iter()
            .map(|(n, l)| Ok((n.clone(), score(l, t)?)))
            .collect::<Result<Vec<_>>>()?;
        points.push((t, 100.0 * evaluate_table(&id, &ood, protocol)?.mean.fpr));
    }
    Ok(Series4a {
        name: name.into(),
        points,
    })
}

/// Runs the whole benchmark; see the module documentation.
pub fn run(opts: &Options) -> Result<Outcome> {
    let plan = &opts.plan;
    let show = opts.progress;
    if let Some(n) = opts.threads {
        tch::set_num_threads(n);
    }
    let results = ResultsDir::create(&opts.out)?;
    let work = opts.out.join("work");
    let mut timings = Timings::default();
    let mut record = RunRecord::default();
    let steps = if opts.finetune { 7 } else { 4 };
    let mut stages = Stages::new(steps, show);
    let device = opts.device;

    // ---- 0. data
    stages.begin(&format!("preparing {} subsets", opts.data.name));
    let sets = timings.time("prepare data subsets", || {
        prepare_sets(&opts.data, plan, opts.seed, &work)
    })?;
    let train = Arc::new(NpySet::open(&opts.data.train_x, Some(&opts.data.train_y))?);
    let (h, w, c) = train.image_shape();

    // ---- 1. pre-trained model
    let pretrained = match &opts.models.pretrained {
        Some(wts) => {
            stages.begin(&format!("pre-trained model: {}", wts.describe()));
            wts.clone()
        }
        None => {
            let arch = WrnConfig {
                in_channels: c as i64,
                num_classes: train.num_classes().unwrap_or(plan.arch.num_classes),
                ..plan.arch.clone()
            };
            stages.begin(&format!(
                "pretraining {} for {} epoch(s) of {} images (code-of-record recipe)",
                arch.name(),
                plan.pretrain_epochs,
                plan.pretrain_images.unwrap_or(train.len()).min(train.len())
            ));
            let ckpt = work.join("pretrained.json");
            let t0 = std::time::Instant::now();
            tch::manual_seed(opts.seed as i64);
            let vs = ood_nn::tch::nn::VarStore::new(device);
            let net = WideResNet::new(&vs.root(), &arch)?;
            let job = TrainJob {
                config: RunConfig {
                    epochs: plan.pretrain_epochs,
                    seed: opts.seed,
                    ..RunConfig::pretrain()
                },
                spec: InputSpec::default_for(h, w, c),
                train: train.clone(),
                images_per_epoch: plan.pretrain_images,
                outliers: None,
                test: None,
                checkpoint: &ckpt,
                progress: show,
                workers: opts.workers,
            };
            let logs = run_job(&vs, &net, &job)?;
            record.finetune_logs.insert("pretrain".into(), logs);
            timings.record("pretrain", t0.elapsed().as_secs_f64());
            Weights::Checkpoint(ckpt)
        }
    };
    record.pretrained = pretrained.describe();
    let load = |wts: &Weights| -> Result<(Classifier, InputSpec)> {
        let (vs, net, spec) = wts.load(device)?;
        let spec = spec.unwrap_or_else(|| InputSpec::default_for(h, w, c));
        Ok((Classifier::from_wrn(vs, net), spec))
    };
    let (model, spec) = load(&pretrained)?;
    let norm = spec.normalize();

    // ---- 2. score the pre-trained model
    stages.begin("scoring the pre-trained model: MSP, energy, ODIN, Mahalanobis");
    let t0 = std::time::Instant::now();
    let pre = test_logits(&model, &norm, &sets, show)?;
    let pre_err = scoring::error_rate(&pre.id, &sets.test_labels)?;
    record.test_error.insert("pretrained".into(), pre_err);
    stages.note(&format!("ID test error {:.2}%", 100.0 * pre_err));
    let val_id_logits = scoring::logits(&model, &sets.val_id, &norm, show)?;
    timings.record(
        "score pre-trained (MSP, energy)",
        t0.elapsed().as_secs_f64(),
    );
    let mut entries = vec![
        entry_from(
            "msp",
            "Softmax score",
            Group::PreTrained,
            serde_json::json!({"temperature": 1.0}),
            pre_err,
            &pre,
            |l| scoring::msp(l, 1.0),
        )?,
        entry_from(
            "energy",
            "Energy score",
            Group::PreTrained,
            serde_json::json!({"temperature": 1.0}),
            pre_err,
            &pre,
            |l| scoring::energy(l, 1.0),
        )?,
    ];
    let test_paths: Vec<&Path> = std::iter::once(sets.test_id.as_path())
        .chain(sets.test_ood.iter().map(|(_, p)| p.as_path()))
        .collect();
    let select_ood: Vec<&Path> = sets.select_ood.iter().map(|p| p.as_path()).collect();
    let split = |scores: Vec<Vec<f64>>| -> (Vec<f64>, Vec<(String, Vec<f64>)>) {
        let mut it = scores.into_iter();
        let id = it.next().unwrap_or_default();
        (
            id,
            sets.test_ood
                .iter()
                .map(|(n, _)| n.clone())
                .zip(it)
                .collect(),
        )
    };

    let t0 = std::time::Instant::now();
    stages.note(&format!(
        "ODIN: {} settings chosen on {} validation OOD sets",
        plan.odin_grid.temperatures.len() * plan.odin_grid.epsilons.len(),
        select_ood.len()
    ));
    let (odin_choice, odin_scores) = scoring::odin(
        &model,
        &norm,
        &plan.odin_grid,
        &sets.select_id,
        &select_ood,
        &test_paths,
        show,
    )?;
    stages.note(&format!(
        "ODIN chose T = {}, eps = {}",
        odin_choice.chosen.temperature, odin_choice.chosen.epsilon
    ));
    let (id, ood) = split(odin_scores);
    entries.push(Entry {
        key: "odin".into(),
        label: "ODIN".into(),
        group: Group::PreTrained,
        params: serde_json::to_value(odin_choice.chosen).unwrap_or_default(),
        test_error: Some(pre_err),
        id,
        ood,
    });
    record.odin = Some(odin_choice);
    timings.record("ODIN (validation grid + test)", t0.elapsed().as_secs_f64());

    let t0 = std::time::Instant::now();
    stages.note(&format!(
        "Mahalanobis: fit on {} training images, eps chosen on validation",
        sets.maha_labels.len()
    ));
    let (maha_choice, shrinkage, maha_scores) = scoring::mahalanobis(
        &model,
        &norm,
        &plan.mahalanobis_epsilons,
        &sets.maha_fit,
        &sets.maha_labels,
        &sets.select_id,
        &select_ood,
        &test_paths,
        show,
    )?;
    stages.note(&format!(
        "Mahalanobis chose eps = {}{}",
        maha_choice.chosen,
        if shrinkage > 0.0 {
            format!(" (singular covariance: shrinkage {shrinkage})")
        } else {
            String::new()
        }
    ));
    let (id, ood) = split(maha_scores);
    entries.push(Entry {
        key: "mahalanobis".into(),
        label: "Mahalanobis".into(),
        group: Group::PreTrained,
        params: serde_json::json!({"epsilon": maha_choice.chosen, "shrinkage": shrinkage}),
        test_error: Some(pre_err),
        id,
        ood,
    });
    record.mahalanobis = Some(maha_choice);
    timings.record(
        "Mahalanobis (fit + validation grid + test)",
        t0.elapsed().as_secs_f64(),
    );

    record.fpr_vs_temperature.push(fpr_curve(
        "energy score, pre-trained",
        &pre,
        &plan.temperatures,
        &plan.protocol,
        scoring::energy,
    )?);
    record.fpr_vs_temperature.push(fpr_curve(
        "softmax score, pre-trained",
        &pre,
        &plan.temperatures,
        &plan.protocol,
        scoring::msp,
    )?);

    // mean energies (E = -logsumexp) that centre the margin grid
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let e_id = -mean(&scoring::energy(&val_id_logits, 1.0)?);
    let out_logits = scoring::logits(&model, &sets.outliers_sample, &norm, show)?;
    let e_out = -mean(&scoring::energy(&out_logits, 1.0)?);
    record.mean_energy_id = Some(e_id);
    record.mean_energy_outliers = Some(e_out);
    stages.note(&format!(
        "mean energy: ID validation {e_id:.2}, auxiliary outliers {e_out:.2}"
    ));
    let pre_val_scores = scoring::energy(&val_id_logits, 1.0)?;
    let mut detector_scores = (pre_val_scores.clone(), "pre-trained".to_string());

    // ---- 3. fine-tuning
    let mut ft_models: Vec<(String, TestLogits)> = Vec::new();
    if opts.finetune {
        let outliers = Arc::new(NpySet::open(&opts.data.outliers, None)?);
        let finetune =
            |loss: FinetuneLoss, name: &str| -> Result<(Weights, Vec<ood_nn::train::EpochLog>)> {
                let ckpt = work.join(format!("{name}.json"));
                let (vs, net, _) = pretrained.load(device)?;
                let mut config = finetune_config(loss, plan.finetune_epochs, opts.seed);
                config.lr = plan.finetune_lr;
                let job = TrainJob {
                    config,
                    spec: spec.clone(),
                    train: train.clone(),
                    images_per_epoch: plan.finetune_images,
                    outliers: Some(outliers.clone()),
                    test: None,
                    checkpoint: &ckpt,
                    progress: show,
                    workers: opts.workers,
                };
                let logs = run_job(&vs, &net, &job)?;
                Ok((Weights::Checkpoint(ckpt), logs))
            };
        let val_fpr = |wts: &Weights| -> Result<(f64, Vec<f64>)> {
            let (m, _) = load(wts)?;
            let id = scoring::energy(&scoring::logits(&m, &sets.val_id, &norm, false)?, 1.0)?;
            let ood = sets
                .val_ood
                .iter()
                .map(|p| scoring::energy(&scoring::logits(&m, p, &norm, false)?, 1.0))
                .collect::<Result<Vec<_>>>()?;
            Ok((scoring::mean_validation_fpr(&id, &ood)?, id))
        };

        // energy fine-tuning, margins by the validation recipe
        let t0 = std::time::Instant::now();
        let energy_model = match &opts.models.energy_ft {
            Some(wts) => {
                stages.begin(&format!("energy fine-tuned model: {}", wts.describe()));
                wts.clone()
            }
            None => {
                let (m_in, m_out) = match plan.margins {
                    Some((a, b)) => (vec![a], vec![b]),
                    None => margin_grid(
                        e_id,
                        e_out,
                        &plan.margin_offsets_in,
                        &plan.margin_offsets_out,
                    ),
                };
                stages.begin(&format!(
                    "energy fine-tuning: {} margin pair(s), m_in in {m_in:?}, m_out in {m_out:?}, chosen by validation FPR95",
                    m_in.len() * m_out.len()
                ));
                let mut grid = vec![vec![None; m_out.len()]; m_in.len()];
                // (validation FPR, model, margins, its ID validation scores)
                #[allow(clippy::type_complexity)]
                let mut best: Option<(f64, Weights, (f64, f64), Vec<f64>)> = None;
                for (i, &a) in m_in.iter().enumerate() {
                    for (j, &b) in m_out.iter().enumerate() {
                        stages.note(&format!("m_in = {a}, m_out = {b}"));
                        let loss = FinetuneLoss::Energy {
                            m_in: a,
                            m_out: b,
                            lambda: 0.1,
                        };
                        let (wts, logs) = finetune(loss, &format!("energy_ft_min{a}_mout{b}"))?;
                        record
                            .finetune_logs
                            .insert(format!("energy m_in={a} m_out={b}"), logs);
                        let (fpr, id_scores) = val_fpr(&wts)?;
                        stages.note(&format!("  validation FPR95 {:.2}%", 100.0 * fpr));
                        grid[i][j] = Some(fpr);
                        if best.as_ref().is_none_or(|(f, ..)| fpr < *f) {
                            best = Some((fpr, wts, (a, b), id_scores));
                        }
                    }
                }
                let (_, wts, chosen, id_scores) =
                    best.ok_or_else(|| BenchError::Data("empty margin grid".into()))?;
                stages.note(&format!("chose m_in = {}, m_out = {}", chosen.0, chosen.1));
                record.margin_grid = Some(MarginSearch {
                    m_in,
                    m_out,
                    validation_fpr: grid,
                    chosen,
                });
                detector_scores = (id_scores, "energy fine-tuned".to_string());
                wts
            }
        };
        timings.record(
            "energy fine-tuning (margin grid)",
            t0.elapsed().as_secs_f64(),
        );

        let t0 = std::time::Instant::now();
        let oe_model = match &opts.models.oe {
            Some(wts) => {
                stages.begin(&format!("OE fine-tuned model: {}", wts.describe()));
                wts.clone()
            }
            None => {
                stages.begin("Outlier Exposure fine-tuning");
                let (wts, logs) = finetune(FinetuneLoss::outlier_exposure(), "oe")?;
                record.finetune_logs.insert("oe".into(), logs);
                wts
            }
        };
        timings.record("OE fine-tuning", t0.elapsed().as_secs_f64());

        stages.begin("scoring the fine-tuned models");
        let t0 = std::time::Instant::now();
        let (m, _) = load(&oe_model)?;
        let oe = test_logits(&m, &norm, &sets, show)?;
        let oe_err = scoring::error_rate(&oe.id, &sets.test_labels)?;
        record.test_error.insert("oe".into(), oe_err);
        let (m, _) = load(&energy_model)?;
        let en = test_logits(&m, &norm, &sets, show)?;
        let en_err = scoring::error_rate(&en.id, &sets.test_labels)?;
        record.test_error.insert("energy_ft".into(), en_err);
        if opts.models.energy_ft.is_some() {
            detector_scores = (
                scoring::energy(&scoring::logits(&m, &sets.val_id, &norm, false)?, 1.0)?,
                "energy fine-tuned".into(),
            );
        }
        stages.note(&format!(
            "ID test error: OE {:.2}%, energy fine-tuned {:.2}%",
            100.0 * oe_err,
            100.0 * en_err
        ));
        let margins = record
            .margin_grid
            .as_ref()
            .map(|g| g.chosen)
            .or(plan.margins);
        entries.push(entry_from(
            "oe",
            "Outlier Exposure (softmax score)",
            Group::FineTuned,
            serde_json::json!({"lambda": 0.5, "source": oe_model.describe()}),
            oe_err,
            &oe,
            |l| scoring::msp(l, 1.0),
        )?);
        entries.push(entry_from(
            "energy_ft",
            "Energy fine-tuning (energy score)",
            Group::FineTuned,
            serde_json::json!({"lambda": 0.1, "margins": margins, "source": energy_model.describe()}),
            en_err,
            &en,
            |l| scoring::energy(l, 1.0),
        )?);
        record.fpr_vs_temperature.push(fpr_curve(
            "energy score, energy fine-tuned",
            &en,
            &plan.temperatures,
            &plan.protocol,
            scoring::energy,
        )?);
        timings.record("score fine-tuned models", t0.elapsed().as_secs_f64());
        ft_models.push(("energy fine-tuned".into(), en));
    }

    // ---- 4. report
    stages.begin("tables, figures, detector");
    let t0 = std::time::Instant::now();
    let report = Report::evaluate(&entries, &plan.protocol)?;
    let blocks = report.present_blocks(&Table1Block::paper());
    let t1 = report.table1_markdown(&blocks)?;
    let t2 = report.table2_markdown();
    results.text("table1.md", &t1)?;
    results.text("table2.md", &t2)?;
    results.text("results.csv", &report.csv())?;
    results.json("report.json", &report)?;

    // Figure 3: pooled OOD test scores vs ID test scores
    let pooled =
        |e: &Entry| -> Vec<f64> { e.ood.iter().flat_map(|(_, v)| v.iter().copied()).collect() };
    let pre_msp = &entries[0];
    let pre_en = &entries[1];
    let mut hist_data: Vec<(String, String, Vec<f64>, Vec<f64>)> = vec![
        (
            "softmax score, pre-trained".into(),
            "max softmax probability".into(),
            pre_msp.id.clone(),
            pooled(pre_msp),
        ),
        (
            "negative energy, pre-trained".into(),
            "-E(x)".into(),
            pre_en.id.clone(),
            pooled(pre_en),
        ),
    ];
    if let Some((name, en)) = ft_models.first() {
        let msp_e = entry_from(
            "x",
            "x",
            Group::FineTuned,
            serde_json::Value::Null,
            0.0,
            en,
            |l| scoring::msp(l, 1.0),
        )?;
        let en_e = entry_from(
            "y",
            "y",
            Group::FineTuned,
            serde_json::Value::Null,
            0.0,
            en,
            |l| scoring::energy(l, 1.0),
        )?;
        hist_data.push((
            format!("softmax score, {name}"),
            "max softmax probability".into(),
            msp_e.id.clone(),
            pooled(&msp_e),
        ));
        hist_data.push((
            format!("negative energy, {name}"),
            "-E(x)".into(),
            en_e.id.clone(),
            pooled(&en_e),
        ));
    }
    let fpr_of = |key: &str| report.entry(key).map(|e| e.table.mean.fpr * 100.0);
    let fprs = [fpr_of("msp"), fpr_of("energy"), None, fpr_of("energy_ft")];
    let panels: Vec<HistPanel> = hist_data
        .iter()
        .enumerate()
        .map(|(i, (t, x, id, ood))| HistPanel {
            title: match fprs.get(i).copied().flatten() {
                Some(f) => format!("{t} (FPR95 {f:.1}%)"),
                None => t.clone(),
            },
            x_label: x.clone(),
            id,
            ood,
        })
        .collect();
    let figdir = opts.out.join("figures");
    let mut figure_files =
        figures::score_histograms(&figdir.join("fig3_score_histograms"), &panels, 2)?;
    let series: Vec<Series> = record
        .fpr_vs_temperature
        .iter()
        .map(|s| Series {
            name: s.name.clone(),
            points: s.points.clone(),
        })
        .collect();
    figure_files.extend(figures::fpr_vs_temperature(
        &figdir.join("fig4a_fpr_vs_temperature"),
        &format!(
            "{}: FPR95 (mean over OOD test sets) vs temperature",
            opts.data.name
        ),
        &series,
    )?);
    if let Some(g) = &record.margin_grid {
        let pct: Vec<Vec<Option<f64>>> = g
            .validation_fpr
            .iter()
            .map(|r| r.iter().map(|v| v.map(|f| 100.0 * f)).collect())
            .collect();
        figure_files.extend(figures::margin_heatmap(
            &figdir.join("fig4b_margins"),
            &format!(
                "{}: validation FPR95 (%) of energy fine-tuning",
                opts.data.name
            ),
            &g.m_in,
            &g.m_out,
            &pct,
        )?);
    }
    // the deployable detector: energy of the final model, tau at 95% of ID validation
    let detector = Detector::calibrate(&detector_scores.0, 0.95, "energy", Some(1.0))?;
    detector.save(&results.path("detector.json"))?;
    timings.record("report and figures", t0.elapsed().as_secs_f64());

    let machine = Machine::detect(
        &format!("{device:?}").to_lowercase(),
        Some(tch::get_num_threads()),
    );
    let config = serde_json::json!({
        "benchmark": opts.data.name,
        "command": opts.command,
        "seed": opts.seed,
        "plan": plan,
        "finetune": opts.finetune,
        "data": {
            "train": opts.data.train_x, "test": opts.data.test_x, "val": opts.data.val_x,
            "ood_test": opts.data.ood_test, "ood_val": opts.data.ood_val, "outliers": opts.data.outliers,
        },
        "models": {
            "pretrained": record.pretrained,
            "oe": opts.models.oe.as_ref().map(|w| w.describe()),
            "energy_ft": opts.models.energy_ft.as_ref().map(|w| w.describe()),
        },
        "detector_calibrated_on": detector_scores.1,
    });
    results.json("config.json", &config)?;
    results.json("run.json", &serde_json::json!({"machine": machine, "versions": Versions::default(), "timings": timings, "record": record}))?;
    let summary = summary_markdown(
        opts,
        &report,
        &t1,
        &t2,
        &record,
        &timings,
        &machine,
        &figure_files,
    );
    results.text("README.md", &summary)?;
    stages.note(&format!(
        "done in {:.1} s; results in {}",
        stages.elapsed(),
        opts.out.display()
    ));
    Ok(Outcome {
        report,
        dir: opts.out.clone(),
        seconds: stages.elapsed(),
    })
}

#[allow(clippy::too_many_arguments)]
fn summary_markdown(
    opts: &Options,
    report: &Report,
    t1: &str,
    t2: &str,
    record: &RunRecord,
    timings: &Timings,
    machine: &Machine,
    figures: &[PathBuf],
) -> String {
    let mut s = format!(
        "# {} benchmark results\n\nCommand: `{}`\n\n",
        opts.data.name, opts.command
    );
    s.push_str(&format!(
        "Protocol: {} draws of {} OOD test images per set (mean ± std over draws), FPR at 95% TPR (code-of-record convention), AUROC, AUPR (ID positive); values in percent. Seed {}.\n\n",
        report.protocol.draws,
        report.entries.first().and_then(|e| e.table.rows.first()).map_or(0, |r| r.1.samples),
        opts.seed
    ));
    s.push_str(&format!("Pre-trained model: {}\n\n", record.pretrained));
    s.push_str(
        "How to read: FPR95 is the fraction of OOD images accepted as in-distribution when the threshold accepts 95% \
         of the in-distribution test images (lower is better); AUROC and AUPR measure the separation of the two score \
         distributions over all thresholds (higher is better; 50% AUROC is chance). Softmax score = maximum softmax \
         probability; energy score = -E(x) = logsumexp of the logits. Fine-tuned rows use models fine-tuned with \
         auxiliary outliers: Outlier Exposure scored by softmax, energy-bounded fine-tuning scored by energy.\n\n",
    );
    s.push_str("## Table 1: softmax vs energy score per OOD test set\n\n");
    s.push_str(t1);
    s.push_str("\n## Table 2: all methods, mean over the OOD test sets\n\n");
    s.push_str(t2);
    s.push_str("\n## Choices made on validation data\n\n");
    if let Some(o) = &record.odin {
        s.push_str(&format!(
            "- ODIN: T = {}, eps = {}\n",
            o.chosen.temperature, o.chosen.epsilon
        ));
    }
    if let Some(m) = &record.mahalanobis {
        s.push_str(&format!("- Mahalanobis: eps = {}\n", m.chosen));
    }
    if let (Some(a), Some(b)) = (record.mean_energy_id, record.mean_energy_outliers) {
        s.push_str(&format!("- Mean energy of the pre-trained model: ID validation {a:.2}, auxiliary outliers {b:.2}\n"));
    }
    if let Some(g) = &record.margin_grid {
        s.push_str(&format!(
            "- Energy margins: m_in = {}, m_out = {} (grid m_in {:?} x m_out {:?})\n",
            g.chosen.0, g.chosen.1, g.m_in, g.m_out
        ));
    }
    s.push_str("\n## Figures\n\n");
    for f in figures
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        let rel = f.strip_prefix(&opts.out).unwrap_or(f);
        s.push_str(&format!("![{}]({})\n\n", rel.display(), rel.display()));
    }
    s.push_str("## Timings (wall clock)\n\n");
    s.push_str(&timings.markdown());
    s.push_str(&format!(
        "\nMachine: {} logical CPUs ({}), libtorch threads {:?}, device {}.\n",
        machine.nproc,
        machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
        machine.torch_threads,
        machine.device
    ));
    s
}
