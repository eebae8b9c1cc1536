//! The benchmark runner behind `eood bench`: the paper's evaluation end to end.
//!
//! 1. **Model**: load the pre-trained classifier (our checkpoint or a PyTorch `state_dict`), or
//!    pretrain it with the code of record's recipe ([`Plan::pretrain_epochs`] epochs).
//! 2. **Score** the ID test set and every OOD test set with MSP, energy (T = 1), ODIN and
//!    Mahalanobis, then with the 15 post-hoc methods of the detector zoo ([`zoo`]) on the
//!    features, logits and head extracted once. Every hyper-parameter (ODIN's (T, eps),
//!    Mahalanobis' eps, each zoo method's paper grid) is chosen on the *validation* OOD sets only
//!    (lowest mean FPR95), never on the test sets; the zoo is fitted on training data only.
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
//!
//! The runner is a sequence of stages over one [`context::RunContext`]: prepare data
//! ([`context`]), pretrain or load and score ([`pretrained`]), fine-tune and score ([`tuning`]),
//! write tables, figures and the record ([`output`]) into a [`BenchDir`]. Results are keyed by
//! [`Method`].
pub mod cifar;
mod context;
pub mod data;
pub mod error;
pub mod finetune;
pub mod layout;
mod mahalanobis_ensemble;
pub mod method;
mod output;
pub mod plan;
mod pretrained;
pub mod progress;
pub mod scoring;
mod tuning;
mod zoo;
pub use mahalanobis_ensemble::EnsembleRecord;
pub use zoo::ZooRecord;

use std::path::PathBuf;

use ood_data::transforms::Normalize;
use ood_nn::odin::OdinParams;
use ood_nn::tch::{self, Device};
use serde::{Deserialize, Serialize};

pub use error::{BenchError, Result};
pub use layout::BenchDir;
pub use method::Method;
pub use plan::Plan;

use crate::report::Report;
use context::RunContext;
use data::BenchData;
use finetune::Weights;

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
    /// `--mean/--std`: per-channel normalisation of [0, 1] pixels for models that record none
    /// (overrides the plan's); `None`: the plan's or the default for the channels.
    pub normalize: Option<Normalize>,
}

/// Where the normalisation a model is fed comes from (run.json `record.input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSource {
    /// `--mean/--std`.
    Flags,
    /// Recorded in the model's checkpoint.
    Checkpoint,
    /// The benchmark's preset ([`Plan::input_normalize`], e.g. none for SVHN).
    Plan,
    /// The default for the channels (CIFAR's for 3, Fashion-MNIST's for 1).
    Default,
}

/// What the pre-trained model was fed: per-channel mean and std of [0, 1] pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub source: InputSource,
}

/// What the run chose and measured besides the tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunRecord {
    pub pretrained: String,
    /// The pre-trained model's input normalisation (the fine-tuned models are fed the same).
    #[serde(default)]
    pub input: Option<InputRecord>,
    pub test_error: std::collections::BTreeMap<String, f64>,
    pub odin: Option<scoring::Choice<OdinParams>>,
    pub mahalanobis: Option<scoring::Choice<f64>>,
    /// Lee et al.'s layer ensemble: layer widths, eps grid and choice, the regression.
    #[serde(default)]
    pub mahalanobis_ensemble: Option<EnsembleRecord>,
    /// Mean energy E(x) = -logsumexp(f(x)) of the pre-trained model on ID validation and outliers.
    pub mean_energy_id: Option<f64>,
    pub mean_energy_outliers: Option<f64>,
    pub margin_grid: Option<MarginRecord>,
    /// Figure 4a data: FPR95 (percent, mean over the OOD test sets) per temperature.
    pub fpr_vs_temperature: Vec<Series4a>,
    pub finetune_logs: std::collections::BTreeMap<String, Vec<ood_nn::train::EpochLog>>,
    /// The detector zoo: per method key, the grid tried, validation FPR95s and the choice.
    #[serde(default)]
    pub zoo: std::collections::BTreeMap<String, ZooRecord>,
    /// Zoo methods that could not be fitted on this model, with the reason.
    #[serde(default)]
    pub zoo_skipped: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series4a {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarginRecord {
    pub m_in: Vec<f64>,
    pub m_out: Vec<f64>,
    /// Mean validation FPR95 (fraction) of `m_in[i]`, `m_out[j]`.
    pub validation_fpr: Vec<Vec<Option<f64>>>,
    /// ID validation accuracy (fraction) of `m_in[i]`, `m_out[j]`, when labels were given.
    #[serde(default)]
    pub validation_accuracy: Vec<Vec<Option<f64>>>,
    /// The accuracy condition of the choice (`None`: validation FPR alone).
    #[serde(default)]
    pub accuracy_floor: Option<ood_nn::margin_search::AccuracyFloor>,
    pub chosen: (f64, f64),
}

/// The outcome of [`run`].
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub dir: PathBuf,
    pub seconds: f64,
}

/// Runs the whole benchmark; see the module documentation.
pub fn run(opts: &Options) -> Result<Outcome> {
    if let Some(n) = opts.threads {
        tch::set_num_threads(n);
    }
    let mut ctx = RunContext::prepare(opts)?;
    let pre = pretrained::pretrain_or_load(&mut ctx)?;
    let outputs = pretrained::score_pretrained(&mut ctx, &pre)?;
    zoo::score_zoo(&mut ctx, &pre, &outputs)?;
    drop(outputs);
    let finetuned = if opts.finetune {
        Some(tuning::finetune_and_score(&mut ctx, &pre)?)
    } else {
        None
    };
    let report = output::write_all(&mut ctx, finetuned.as_ref())?;
    let seconds = ctx.stages.elapsed();
    ctx.stages.note(&format!(
        "done in {seconds:.1} s; results in {}",
        opts.out.display()
    ));
    Ok(Outcome {
        report,
        dir: opts.out.clone(),
        seconds: ctx.stages.elapsed(),
    })
}
