//! `eood finetune --m-in-grid/--m-out-grid`: the paper's validation recipe. One fine-tuning run
//! per margin pair from the same pretrained weights (`<name>.grid-<i>.json`), each scored by the
//! mean FPR at 95% TPR of -E on the validation OOD sets (never the test sets); the best is saved
//! as `--out` and the whole table as `<name>.grid.json`. With labelled validation images
//! (`--val-labels`, or the fmnist-ood folder's `val_y.npy`) only the points whose validation
//! accuracy is within `--accuracy-tolerance` of the pretrained model's compete on FPR
//! ([`margin_search::AccuracyFloor`]). `--stop-after` counts epochs over the whole grid; `--resume`
//! continues a stopped grid without retraining finished points.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use ood_data::batch::{BatchLoader, ImageSource};
use ood_nn::checkpoint::{self, CheckpointMeta};
use ood_nn::data::{loader, InputSpec, NpySet};
use ood_nn::losses::FinetuneLoss;
use ood_nn::margin_search::{self, AccuracyFloor, MarginGrid, TrialScore};
use ood_nn::tch::{self, nn::VarStore, Device};
use ood_nn::train::{self, RunConfig, RunData, RunOutput};
use ood_nn::{state_dict, WideResNet};

use super::Args;

/// One record of the margin grid.
#[derive(serde::Serialize)]
struct GridPoint {
    m_in: f64,
    m_out: f64,
    checkpoint: String,
    mean_val_fpr95: f64,
    val_accuracy: Option<f64>,
    val: Vec<(String, ood_core::Metrics)>,
}

/// The margin grid ran out of `--stop-after` epochs before grid point `point` finished.
#[derive(Debug)]
struct GridStopped {
    point: usize,
}

impl std::fmt::Display for GridStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped at grid point {} (--stop-after)", self.point + 1)
    }
}

impl std::error::Error for GridStopped {}

/// The validation data of the grid: ID images and the OOD sets, as loaders.
struct Validation {
    images: PathBuf,
    labels: Option<PathBuf>,
    ood: Vec<PathBuf>,
    id_loader: BatchLoader,
    ood_loaders: Vec<(String, BatchLoader)>,
}

impl Validation {
    /// `--val-images`/`--val-ood`, or the fmnist-ood folder's `val_x.npy` and `ood_val/*.npy`;
    /// every set must have the model's image size.
    fn open(args: &Args, spec: &InputSpec) -> anyhow::Result<Self> {
        let images = match (&args.val_images, &args.data.fmnist_ood) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) => dir.join("val_x.npy"),
            (None, None) => {
                bail!("the margin grid needs --val-images (in-distribution validation images)")
            }
        };
        let labels = match (&args.val_labels, &args.val_images, &args.data.fmnist_ood) {
            (Some(p), _, _) => Some(p.clone()),
            (None, None, Some(dir)) => Some(dir.join("val_y.npy")).filter(|p| p.exists()),
            _ => None,
        };
        let mut ood = args.val_ood.clone();
        if ood.is_empty() {
            if let Some(dir) = &args.data.fmnist_ood {
                let ood_dir = dir.join("ood_val");
                let entries = std::fs::read_dir(&ood_dir)
                    .with_context(|| format!("reading {}", ood_dir.display()))?;
                ood = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "npy"))
                    .collect();
                ood.sort();
            }
        }
        if ood.is_empty() {
            bail!("the margin grid needs --val-ood (validation OOD image sets)");
        }
        let open_eval = |p: &PathBuf, labels: Option<&Path>| -> anyhow::Result<BatchLoader> {
            let set = Arc::new(NpySet::open(p, labels)?);
            if set.image_shape() != (spec.height, spec.width, spec.channels) {
                bail!(
                    "{} has images of {:?}, the model expects {}x{}x{}",
                    p.display(),
                    set.image_shape(),
                    spec.height,
                    spec.width,
                    spec.channels
                );
            }
            Ok(loader(
                set as Arc<dyn ImageSource>,
                spec.test_pipeline(),
                256,
                false,
                0,
                args.data.runtime.workers,
            )?)
        };
        let id_loader = open_eval(&images, labels.as_deref())?;
        let ood_loaders = ood
            .iter()
            .map(|p| {
                let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or("ood");
                Ok((name.to_owned(), open_eval(p, None)?))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Validation {
            images,
            labels,
            ood,
            id_loader,
            ood_loaders,
        })
    }
}

/// The paper's validation recipe over `--m-in-grid x --m-out-grid` (see the module docs).
/// `model` is the variable store, the network and the pretrained weights every point starts from.
pub(super) fn grid_search(
    args: &Args,
    model: (&VarStore, &WideResNet, &[(String, tch::Tensor)]),
    spec: &InputSpec,
    base: &RunConfig,
    data: &RunData,
    device: Device,
) -> anyhow::Result<()> {
    let (vs, net, pretrained) = model;
    let lambda = match base.objective {
        train::Objective::Finetune(FinetuneLoss::Energy { lambda, .. }) => lambda,
        _ => bail!("--m-in-grid/--m-out-grid select margins of the energy loss (--loss energy)"),
    };
    let val = Validation::open(args, spec)?;
    let out_dir = args
        .output
        .out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let stem = args
        .output
        .out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("finetune")
        .to_owned();
    let grid = MarginGrid {
        m_in: args.m_in_grid.clone(),
        m_out: args.m_out_grid.clone(),
    };
    let n = grid.len();
    let quiet = args.data.runtime.quiet;
    // `vs` still holds the pretrained weights: their validation accuracy sets the floor.
    let floor = match &val.labels {
        Some(_) => {
            let (pretrained, _) = train::evaluate(net, &val.id_loader, device)?;
            if !quiet {
                eprintln!(
                    "pretrained validation accuracy {:.4}: grid points below {:.4} are not chosen",
                    pretrained,
                    pretrained - args.accuracy_tolerance
                );
            }
            Some(AccuracyFloor {
                pretrained,
                tolerance: args.accuracy_tolerance,
            })
        }
        None => None,
    };
    // --stop-after counts epochs over the whole grid; the run stops at the first point left
    // unfinished, and `--resume` continues from there (finished points are not retrained).
    let mut epochs_left = args.output.stop_after;
    let search = margin_search::search(&grid, floor, |i, m_in, m_out| -> anyhow::Result<_> {
        if epochs_left == Some(0) {
            return Err(GridStopped { point: i }.into());
        }
        state_dict::load_into(vs, pretrained)?;
        let config = RunConfig {
            objective: train::Objective::Finetune(FinetuneLoss::Energy {
                m_in,
                m_out,
                lambda,
            }),
            ..base.clone()
        };
        let ck = out_dir.join(format!("{stem}.grid-{i}.json"));
        let mut meta =
            CheckpointMeta::new(net.config().clone(), serde_json::Value::Null, base.seed);
        meta.input = Some(spec.clone());
        let output = RunOutput {
            checkpoint: ck.clone(),
            resume: args.output.resume,
            progress: !quiet,
            stop_after: epochs_left,
            // a grid point resumes only its own unchanged configuration (--force or not)
            changes: train::ResumeChanges::Refuse,
        };
        if !quiet {
            eprintln!("grid {}/{n}: m_in {m_in}, m_out {m_out}", i + 1);
        }
        let ran = train::run(vs, net, &config, data, &mut meta, &output)
            .with_context(|| format!("fine-tuning into {}", ck.display()))?;
        if let Some(left) = epochs_left.as_mut() {
            *left = left.saturating_sub(ran.len() as u64);
        }
        if meta.epoch < config.epochs {
            return Err(GridStopped { point: i }.into());
        }
        // A finished point resumed with --resume is not retrained: `train::run` loaded the
        // weights it saved into `vs`, which are evaluated as they are.
        let v =
            ood_nn::validation::energy_validation(net, &val.id_loader, &val.ood_loaders, device)?;
        if !quiet {
            let acc = v
                .id_accuracy
                .map(|a| format!(", validation accuracy {a:.4}"))
                .unwrap_or_default();
            eprintln!(
                "grid {}/{n}: m_in {m_in}, m_out {m_out}: mean validation FPR95 {:.4}{acc}",
                i + 1,
                v.mean_fpr
            );
        }
        let score = TrialScore {
            mean_val_fpr: v.mean_fpr,
            val_accuracy: v.id_accuracy,
        };
        Ok((score, (ck.display().to_string(), v.per_set)))
    });
    let search = match search {
        Err(e) => match e.downcast_ref::<GridStopped>() {
            Some(stopped) => {
                eprintln!(
                    "stopped at grid point {}/{n} after --stop-after {} epochs; continue with --resume",
                    stopped.point + 1,
                    args.output.stop_after.unwrap_or(0)
                );
                return Ok(());
            }
            None => return Err(e),
        },
        Ok(search) => search,
    };
    let points: Vec<GridPoint> = search
        .trials
        .iter()
        .map(|t| GridPoint {
            m_in: t.m_in,
            m_out: t.m_out,
            checkpoint: t.outcome.0.clone(),
            mean_val_fpr95: t.mean_val_fpr,
            val_accuracy: t.val_accuracy,
            val: t.outcome.1.clone(),
        })
        .collect();
    save_best(
        args,
        (&points[search.best], search.floor),
        &points,
        &val,
        &out_dir.join(format!("{stem}.grid.json")),
    )
}

/// Saves the best point as `--out` (with its mean validation FPR) and the table as `grid_path`.
fn save_best(
    args: &Args,
    (best, floor): (&GridPoint, Option<AccuracyFloor>),
    points: &[GridPoint],
    val: &Validation,
    grid_path: &Path,
) -> anyhow::Result<()> {
    let mut ck = checkpoint::load(Path::new(&best.checkpoint))?;
    ck.meta
        .metrics
        .insert("mean_val_fpr95".into(), best.mean_val_fpr95);
    if let Some(a) = best.val_accuracy {
        ck.meta.metrics.insert("val_accuracy".into(), a);
    }
    checkpoint::save(&args.output.out, &mut ck.meta, &ck.weights, None)?;
    let selection = match floor {
        Some(_) => "minimum mean FPR at 95% TPR of -E over the validation OOD sets among the points whose ID validation accuracy is at least the pretrained model's minus the tolerance (else the most accurate point)",
        None => "minimum mean FPR at 95% TPR of -E over the validation OOD sets",
    };
    let summary = serde_json::json!({
        "selection": selection,
        "accuracy_floor": floor,
        "val_images": val.images.display().to_string(),
        "val_labels": val.labels.as_ref().map(|p| p.display().to_string()),
        "val_ood": val.ood.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "best": {"m_in": best.m_in, "m_out": best.m_out, "checkpoint": args.output.out.display().to_string()},
        "points": points,
    });
    let text = serde_json::to_string_pretty(&summary)?;
    ood_core::io::write_atomic(grid_path, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(grid_path, e))
    })?;
    eprintln!(
        "best margins m_in {}, m_out {} (mean validation FPR95 {:.4}): wrote {} and {}",
        best.m_in,
        best.m_out,
        best.mean_val_fpr95,
        args.output.out.display(),
        grid_path.display()
    );
    Ok(())
}
