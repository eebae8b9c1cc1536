//! `eood extract --method odin|mahalanobis`: the input-space methods (input preprocessing
//! needs the network), scored on the extracted set with their hyper-parameters chosen on
//! validation sets only (see the `extract` module docs for the flags).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ood_data::cache::Cache;
use ood_data::transforms::Normalize;
use ood_nn::extract::InputSet;
use ood_nn::model::Classifier;

use super::extract::Args;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Odin,
    Mahalanobis,
}

/// ODIN / Mahalanobis with input preprocessing.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Input-space methods")]
pub struct MethodArgs {
    /// Write scores.npy of this method (higher = in-distribution) instead of logits.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// In-distribution validation images, for choosing the hyper-parameters.
    #[arg(long, value_name = "NPY")]
    pub val_id: Option<PathBuf>,
    /// A validation OOD set (repeat the flag); the choice minimizes their mean FPR at 95% TPR.
    #[arg(long, value_name = "NPY")]
    pub val_ood: Vec<PathBuf>,
    /// Take val_x (ID) and every ood_val/*.npy, and for Mahalanobis train_x/train_y, from the
    /// built fmnist-ood benchmark in the cache.
    #[arg(long)]
    pub fmnist_ood_validation: bool,
    /// Images used from each validation set (the first N).
    #[arg(long, default_value_t = 1000)]
    pub val_max: usize,
    /// Training images the Mahalanobis class means and tied covariance are fitted on.
    #[arg(long, value_name = "NPY", requires = "fit_labels")]
    pub fit_images: Option<PathBuf>,
    /// Their labels (integers .npy).
    #[arg(long, value_name = "NPY")]
    pub fit_labels: Option<PathBuf>,
    /// Covariance shrinkage towards a scaled identity, in [0, 1] (Mahalanobis).
    #[arg(long, default_value_t = 0.0)]
    pub shrinkage: f64,
    /// Fix ODIN's temperature instead of choosing it from {1, 10, 100, 1000}.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Fix the input step instead of choosing it from the code of record's grid.
    #[arg(long)]
    pub epsilon: Option<f64>,
}

/// The validation and fitting sets of an input-space method.
struct MethodSets {
    val_id: Option<PathBuf>,
    val_ood: Vec<PathBuf>,
    fit: Option<(PathBuf, PathBuf)>,
}

fn method_sets(args: &Args) -> anyhow::Result<MethodSets> {
    let m = &args.method;
    let mut sets = MethodSets {
        val_id: m.val_id.clone(),
        val_ood: m.val_ood.clone(),
        fit: m.fit_images.clone().zip(m.fit_labels.clone()),
    };
    if m.fmnist_ood_validation {
        let (cache, _) = Cache::locate(args.cache.as_deref());
        let dir = cache.built(ood_data::fmnist_ood::DIR_NAME);
        if !dir.is_dir() {
            bail!(
                "{} does not exist: build it with `eood data build fmnist-ood`",
                dir.display()
            );
        }
        sets.val_id.get_or_insert(dir.join("val_x.npy"));
        if sets.val_ood.is_empty() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("ood_val"))
                .with_context(|| format!("listing {}", dir.join("ood_val").display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "npy"))
                .collect();
            v.sort();
            sets.val_ood = v;
        }
        if sets.fit.is_none() {
            sets.fit = Some((dir.join("train_x.npy"), dir.join("train_y.npy")));
        }
    }
    Ok(sets)
}

/// Opens a validation set, checks its channels, keeps its first `max` images.
fn open_val(path: &Path, channels: usize, max: usize) -> anyhow::Result<InputSet> {
    let set = InputSet::open(path)?;
    if set.channels() != channels {
        bail!(
            "{}: {} channel(s), the scored data has {channels}",
            path.display(),
            set.channels()
        );
    }
    Ok(set.head(max))
}

pub fn run_method(
    args: &Args,
    method: Method,
    model: &Classifier,
    input: &InputSet,
    normalize: Option<&Normalize>,
) -> anyhow::Result<()> {
    use ood_core::MetricsConfig;
    use ood_nn::mahalanobis_input::{self, MahalanobisInput};
    use ood_nn::odin::{self, OdinGrid};

    let m = &args.method;
    let progress = args.runtime.progress();
    let bs = args.batch_size;
    // The input step is in [0, 1] pixel units: the gradient sign is divided by the std of the
    // normalization (float input: --std if given, else 1).
    let std: Vec<f64> = match (normalize, &args.std) {
        (Some(n), _) => n.std.iter().map(|&s| s as f64).collect(),
        (None, Some(s)) if s.len() == input.channels() => s.iter().map(|&v| v as f64).collect(),
        (None, Some(s)) => bail!(
            "--std has {} values but the input has {} channel(s)",
            s.len(),
            input.channels()
        ),
        (None, None) => vec![1.0; input.channels()],
    };
    for (name, v) in [("--temperature", m.temperature), ("--epsilon", m.epsilon)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) || (name == "--temperature" && v == 0.0) {
                bail!(
                    "{name} must be a {} number, got {v}",
                    if name == "--epsilon" {
                        "non-negative"
                    } else {
                        "positive"
                    }
                );
            }
        }
    }
    let sets = method_sets(args)?;
    let channels = input.channels();
    let (settings, fit): (
        Vec<serde_json::Value>,
        Option<ood_core::scores::Mahalanobis>,
    ) = match method {
        Method::Odin => {
            let grid = OdinGrid {
                temperatures: m
                    .temperature
                    .map_or(odin::TEMPERATURES.to_vec(), |t| vec![t]),
                epsilons: m.epsilon.map_or(odin::EPSILONS.to_vec(), |e| vec![e]),
            };
            (
                grid.params()
                    .iter()
                    .map(|p| serde_json::to_value(p).expect("plain struct"))
                    .collect(),
                None,
            )
        }
        Method::Mahalanobis => {
            let Some((x, y)) = &sets.fit else {
                bail!("--method mahalanobis needs --fit-images and --fit-labels (or --fmnist-ood-validation)");
            };
            let fit_set = open_val(x, channels, usize::MAX)?;
            let labels = ood_core::io::npy::read_labels(y)?;
            let params = ood_core::scores::MahalanobisParams {
                shrinkage: m.shrinkage,
            };
            let fit =
                mahalanobis_input::fit(model, &fit_set, &labels, normalize, params, bs, progress)
                    .with_context(|| format!("fitting on {}", x.display()))?;
            let eps = m
                .epsilon
                .map_or(mahalanobis_input::EPSILONS.to_vec(), |e| vec![e]);
            (
                eps.iter()
                    .map(|e| serde_json::json!({ "epsilon": e }))
                    .collect(),
                Some(fit),
            )
        }
    };
    let detector = fit
        .as_ref()
        .map(|f| MahalanobisInput::new(f, model.device()))
        .transpose()?;
    let scores_for =
        |set: &InputSet, settings: &[serde_json::Value]| -> anyhow::Result<Vec<Vec<f64>>> {
            Ok(match method {
                Method::Odin => {
                    let grid = odin_grid(settings);
                    odin::odin_scores(model, set, normalize, &std, &grid, bs, progress)?
                }
                Method::Mahalanobis => {
                    let eps: Vec<f64> = settings
                        .iter()
                        .map(|s| s["epsilon"].as_f64().unwrap_or(0.0))
                        .collect();
                    let pass = mahalanobis_input::Pass {
                        model,
                        input: set,
                        normalize,
                        batch_size: bs,
                        progress,
                    };
                    detector
                        .as_ref()
                        .expect("fitted")
                        .scores(pass, &std, &eps)?
                }
            })
        };
    let mut record =
        serde_json::json!({ "method": format!("{method:?}").to_lowercase(), "settings": settings });
    let chosen = if settings.len() == 1 {
        settings[0].clone()
    } else {
        let Some(val_id) = &sets.val_id else {
            bail!("choosing among {} settings needs --val-id and --val-ood (or --fmnist-ood-validation), or fix them with --temperature/--epsilon", settings.len());
        };
        if sets.val_ood.is_empty() {
            bail!("choosing the hyper-parameters needs at least one --val-ood set");
        }
        let id_scores = scores_for(&open_val(val_id, channels, m.val_max)?, &settings)?;
        let mut ood_scores = Vec::new();
        for p in &sets.val_ood {
            ood_scores.push(scores_for(&open_val(p, channels, m.val_max)?, &settings)?);
        }
        let (sel, val) = ood_core::selection::select_on_scores(
            &settings,
            &id_scores,
            &ood_scores,
            &MetricsConfig::default(),
        )?;
        let mean_auroc: Vec<f64> = val.iter().map(|v| v.mean_auroc).collect();
        record["validation"] = serde_json::json!({
            "id": val_id, "ood": sets.val_ood, "max_images": m.val_max,
            "mean_fpr95": sel.scores, "mean_auroc": mean_auroc,
        });
        if progress {
            eprintln!(
                "chosen on validation: {} (mean FPR95 {:.4})",
                sel.chosen(),
                sel.best_score()
            );
        }
        sel.chosen().clone()
    };
    let scores = scores_for(input, std::slice::from_ref(&chosen))?.remove(0);
    let scores_path = args.out_dir.join("scores.npy");
    ood_core::io::npy::write_f64_vector(&scores_path, &scores)?;
    record["chosen"] = chosen;
    record["data"] = serde_json::json!(input.path());
    record["rows"] = serde_json::json!(scores.len());
    record["normalize"] = serde_json::json!(normalize);
    record["gradient_std"] = serde_json::json!(std);
    record["model"] = serde_json::json!(format!("{:?}", model.source()));
    if let Some(f) = &fit {
        record["fit"] = serde_json::to_value(f.to_file())?;
    }
    let json_path = args.out_dir.join(format!(
        "{}.json",
        record["method"].as_str().unwrap_or("method")
    ));
    super::extract::write_record(&json_path, &record)?;
    {
        eprintln!(
            "wrote {} ({} scores) and {}",
            scores_path.display(),
            scores.len(),
            json_path.display()
        );
    }
    Ok(())
}

fn odin_grid(settings: &[serde_json::Value]) -> ood_nn::odin::OdinGrid {
    // Settings are temperature-major; rebuild the (T, eps) axes in order.
    let mut g = ood_nn::odin::OdinGrid {
        temperatures: vec![],
        epsilons: vec![],
    };
    for s in settings {
        let (t, e) = (
            s["temperature"].as_f64().unwrap_or(1.0),
            s["epsilon"].as_f64().unwrap_or(0.0),
        );
        if !g.temperatures.contains(&t) {
            g.temperatures.push(t);
        }
        if !g.epsilons.contains(&e) {
            g.epsilons.push(e);
        }
    }
    g
}
