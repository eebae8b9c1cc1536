//! `eood extract`: run a classifier over a dataset and write `logits.npy` (N x K, float32) and,
//! with `--features`, `features.npy` (N x D penultimate features), streamed batch by batch.
//!
//! Models: our checkpoint (`--checkpoint model.json`), a PyTorch `state_dict` of the code of
//! record's WideResNet (`--state-dict net.pt` with the architecture flags), or any TorchScript
//! classifier (`--torchscript model.pt`). Outputs go to the folder `--out-dir`.
//!
//! Data: `--data file.npy` (uint8 images N x H x W (x C), or float32 N x C x H x W used as model
//! input), or `--dataset fmnist-ood/<array>` from the built benchmark in the cache
//! (e.g. `fmnist-ood/test_x`, `fmnist-ood/ood_test/mnist`, `fmnist-ood/aux_outliers`).
//!
//! Input-space methods (`--method odin|mahalanobis`): instead of logits, write `scores.npy`
//! (higher = more in-distribution) of ODIN or of the Mahalanobis detector with input
//! preprocessing, their hyper-parameters chosen on validation sets only (`--val-id`, `--val-ood`,
//! or `--fmnist-ood-validation`) by the lowest mean FPR at 95% TPR, over the code of record's
//! grids (ODIN: T in {1, 10, 100, 1000} x 10 values of eps in [0, 0.0048]; Mahalanobis: 7 values
//! of eps in [0, 0.01]); `--temperature` / `--epsilon` fix them instead. The choice and every
//! setting's validation FPR go to `<method>.json`.
//!
//! Normalization of uint8 images: `--mean/--std` if given, else the one the checkpoint records,
//! else the default for the channel count (3: the code of record's CIFAR constants; 1:
//! Fashion-MNIST's; otherwise [0, 1] scaling). It is printed to stderr and recorded in
//! `extract.json` beside the outputs.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ood_data::cache::Cache;
use ood_data::transforms::Normalize;
use ood_nn::extract::{self, default_normalize, ExtractConfig, InputSet};
use ood_nn::model::Classifier;
use ood_nn::tch::Device;

use crate::args::{ArchArgs, DeviceArgs, ModelArgs, ModelRef, RuntimeArgs};
use ood_core::limits::check_range;
use ood_nn::WrnConfig;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["data", "dataset"])))]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,

    /// Input .npy: uint8 images N x H x W (x C), or float32 N x C x H x W model input.
    #[arg(long, value_name = "NPY")]
    pub data: Option<PathBuf>,
    /// A named array of a built benchmark in the cache: fmnist-ood/<name>, e.g.
    /// fmnist-ood/test_x, fmnist-ood/ood_test/mnist, fmnist-ood/ood_val/<name>,
    /// fmnist-ood/aux_outliers.
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Cache directory for --dataset (default: $EOOD_CACHE, else <checkout>/.cache, else
    /// ~/.cache/energy-ood).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Output folder: logits.npy, features.npy (with --features) and extract.json (or
    /// scores.npy and <method>.json with --method).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out_dir: PathBuf,
    /// Also write the penultimate features (features.npy).
    #[arg(long)]
    pub features: bool,

    /// Per-channel mean of [0, 1] pixels, comma-separated (with --std; overrides the model's).
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std of [0, 1] pixels, comma-separated (with --mean).
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,

    /// Architecture of a --state-dict.
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Images per forward pass, 1 to 65536.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[command(flatten)]
    pub runtime: RuntimeArgs,

    #[command(flatten)]
    pub method: MethodArgs,
}

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

/// `fmnist-ood/<name>` -> `<cache>/fmnist-ood/<name>.npy`.
fn resolve_dataset(name: &str, cache: Option<&Path>) -> anyhow::Result<PathBuf> {
    let Some(rest) = name.strip_prefix("fmnist-ood/").filter(|r| !r.is_empty()) else {
        bail!("--dataset must be fmnist-ood/<array> (e.g. fmnist-ood/test_x), got {name:?}; use --data for a .npy file");
    };
    if rest.split('/').any(|p| p.is_empty() || p == "..") {
        bail!("--dataset {name:?}: bad array name");
    }
    let (cache, _) = Cache::locate(cache);
    let dir = cache.built(ood_data::fmnist_ood::DIR_NAME);
    let path = dir.join(format!("{}.npy", rest.trim_end_matches(".npy")));
    if !path.is_file() {
        if !dir.is_dir() {
            bail!(
                "{} does not exist: build it with `eood data build fmnist-ood`",
                dir.display()
            );
        }
        bail!("{} does not exist (arrays: train_x, val_x, test_x, ood_test/<name>, ood_val/<name>, aux_outliers)", path.display());
    }
    Ok(path)
}

/// Chooses the normalization of uint8 input and says where it came from.
pub fn choose_normalize(
    mean: Option<&Vec<f32>>,
    std: Option<&Vec<f32>>,
    model: &Classifier,
    channels: usize,
) -> anyhow::Result<(Normalize, &'static str)> {
    let (n, from) = match (mean, std) {
        (Some(m), Some(s)) => (
            Normalize {
                mean: m.clone(),
                std: s.clone(),
            },
            "--mean/--std",
        ),
        _ => match model.normalize() {
            Some(n) => (n.clone(), "the checkpoint"),
            None => (
                default_normalize(channels),
                "the default for the channel count",
            ),
        },
    };
    if n.mean.len() != channels || n.std.len() != channels {
        bail!(
            "normalization from {from} has {} means and {} stds but the images have {channels} channel(s)",
            n.mean.len(),
            n.std.len()
        );
    }
    if n.std.iter().chain(&n.mean).any(|v| !v.is_finite()) || n.std.iter().any(|&s| s <= 0.0) {
        bail!(
            "normalization std must be positive and finite, got {:?}",
            n.std
        );
    }
    Ok((n, from))
}

pub fn load_model(args: &Args, device: Device, channels: usize) -> anyhow::Result<Classifier> {
    match args.model.source() {
        ModelRef::Checkpoint(json) => Classifier::from_checkpoint(json, device)
            .with_context(|| format!("loading checkpoint {}", json.display())),
        ModelRef::StateDict(pt) => {
            let config = WrnConfig {
                dropout: 0.0,
                ..args.arch.config(None, channels)?
            };
            Classifier::from_state_dict(pt, &config, device).with_context(|| {
                format!("loading {} as a {} state_dict", pt.display(), config.name())
            })
        }
        ModelRef::TorchScript(ts) => Ok(Classifier::from_torchscript(ts, device)?),
        // never reached: run dispatches --onnx to extract_onnx first
        ModelRef::Onnx(p) => bail!(
            "{}: ONNX models run through tract (extract_onnx)",
            p.display()
        ),
    }
}

/// Reads the input once before the model runs: float input must be finite (the first bad
/// value is named, instead of NaN logits), and the image size must be the one a checkpoint
/// was trained with (both shapes named).
fn check_input(args: &Args, input: &InputSet, normalize: Option<&Normalize>) -> anyhow::Result<()> {
    let recorded = match args.model.source() {
        ModelRef::Checkpoint(json) => ood_nn::checkpoint::read_meta(json)?.input,
        _ => None,
    };
    // uint8 images cannot be non-finite: only their first batch is read, for the shape
    let whole = !input.needs_normalization();
    for batch in input.batches(args.batch_size, normalize, 0)? {
        let batch = batch?;
        let size = batch.x.size();
        if let (Some(spec), [_, c, h, w]) = (&recorded, size.as_slice()) {
            if (spec.channels as i64, spec.height as i64, spec.width as i64) != (*c, *h, *w) {
                bail!(
                    "{}: images are {h}x{w}x{c} (H x W x C) but {} was trained on {}x{}x{}",
                    input.path().display(),
                    args.model.path().display(),
                    spec.height,
                    spec.width,
                    spec.channels
                );
            }
        }
        if !whole {
            break;
        }
        let bad = batch.x.isfinite().logical_not();
        if bad.any().int64_value(&[]) != 0 {
            let flat = bad.flatten(0, -1).nonzero();
            let i = flat.int64_value(&[0, 0]) as usize;
            let per_row = (size[1..].iter().product::<i64>()).max(1) as usize;
            let v = batch.x.flatten(0, -1).double_value(&[i as i64]);
            bail!(
                "{}: input row {} is not finite (value {v} at element {}); refusing to compute logits from it",
                input.path().display(),
                batch.start + i / per_row,
                i % per_row
            );
        }
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    check_range("--batch-size", args.batch_size, 1, 65_536)?;
    check_range("--val-max", args.method.val_max, 1, usize::MAX)?;
    let data = match (&args.data, &args.dataset) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => resolve_dataset(name, args.cache.as_deref())?,
        _ => unreachable!("clap requires one input"),
    };
    if let ModelRef::Onnx(onnx) = args.model.source() {
        return super::extract_onnx::run(&args, onnx, &data);
    }
    args.runtime.apply()?;
    let device = args.device.tch()?;
    let input = InputSet::open(&data)?;
    let model = load_model(&args, device, input.channels())?;
    let normalize = if input.needs_normalization() {
        let (n, from) = choose_normalize(
            args.mean.as_ref(),
            args.std.as_ref(),
            &model,
            input.channels(),
        )?;
        if args.runtime.progress() {
            eprintln!(
                "normalization (from {from}): mean {:?}, std {:?}",
                n.mean, n.std
            );
        }
        Some(n)
    } else {
        None
    };
    check_input(&args, &input, normalize.as_ref())?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    if let Some(method) = args.method.method {
        return run_method(&args, method, &model, &input, normalize.as_ref());
    }
    let logits_path = args.out_dir.join("logits.npy");
    let features_path = args.features.then(|| args.out_dir.join("features.npy"));
    let config = ExtractConfig {
        batch_size: args.batch_size,
        workers: args.runtime.workers,
        progress: args.runtime.progress(),
    };
    let summary = extract::extract(
        &model,
        &input,
        normalize.as_ref(),
        &config,
        &logits_path,
        features_path.as_deref(),
    )?;
    let record = serde_json::json!({
        "model": format!("{:?}", model.source()),
        "data": data,
        "rows": summary.rows,
        "classes": summary.classes,
        "feature_dim": summary.feature_dim,
        "normalize": normalize,
        "device": format!("{device:?}"),
        "batch_size": args.batch_size,
        "seconds": summary.seconds,
        "images_per_second": summary.images_per_second(),
        "logits": logits_path,
        "features": features_path,
    });
    let json_path = args.out_dir.join("extract.json");
    let text = serde_json::to_string_pretty(&record)? + "\n";
    ood_core::io::write_atomic(&json_path, |w| {
        std::io::Write::write_all(w, text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(&json_path, e))
    })?;
    // the result line, --quiet or not
    {
        eprintln!(
            "wrote {} ({} x {}){} in {:.1} s ({:.0} images/s)",
            logits_path.display(),
            summary.rows,
            summary.classes,
            match (&features_path, summary.feature_dim) {
                (Some(p), Some(d)) => format!(" and {} ({} x {d})", p.display(), summary.rows),
                _ => String::new(),
            },
            summary.seconds,
            summary.images_per_second()
        );
    }
    Ok(())
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

fn run_method(
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
                    detector
                        .as_ref()
                        .expect("fitted")
                        .scores(model, set, normalize, &std, &eps, bs, progress)?
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
    let text = serde_json::to_string_pretty(&record)? + "\n";
    ood_core::io::write_atomic(&json_path, |w| {
        std::io::Write::write_all(w, text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(&json_path, e))
    })?;
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
