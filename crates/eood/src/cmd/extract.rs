//! `eood extract`: run a classifier over a dataset and write `logits.npy` (N x K, float32) and,
//! with `--features`, `features.npy` (N x D penultimate features) and the last layer
//! (`weight.npy` K x D, `bias.npy` K), streamed batch by batch; with `--feature-map`,
//! `feature_map.npy` (N x C x H x W, the map before global average pooling) too.
//!
//! The last layer of our WideResNet is its `fc`; of a TorchScript module, the only
//! `<prefix>weight` (K x D) / `<prefix>bias` (K) parameter pair, or the one named by
//! `--head-weight/--head-bias` (the rule: `ood_nn::extract` `head` module docs). It is checked to
//! reproduce the logits from the features on the first batch. `--no-head` skips it.
//!
//! Models: our checkpoint (`--checkpoint model.json`), a PyTorch `state_dict` of the code of
//! record's WideResNet (`--state-dict net.pt` with the architecture flags), or any TorchScript
//! classifier (`--torchscript model.pt`). Outputs go to the folder `--out-dir`.
//!
//! Data: `--data file.npy` (uint8 images N x H x W (x C), or float32 N x C x H x W used as model
//! input), or `--dataset fmnist-ood/<array>` from the built benchmark in the cache
//! (e.g. `fmnist-ood/test_x`, `fmnist-ood/ood_test/mnist`, `fmnist-ood/aux_outliers`).
//!
//! Input-space methods (`--method odin|mahalanobis`, in `extract_method`): instead of logits, write `scores.npy`
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
use ood_nn::extract::{self, default_normalize, ExtractConfig, HeadNames, InputSet, Outputs};
use ood_nn::model::Classifier;
use ood_nn::tch::Device;

use super::extract_method::{run_method, MethodArgs};

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
    /// Also write the penultimate features (features.npy) and the last layer (weight.npy,
    /// bias.npy).
    #[arg(long)]
    pub features: bool,
    /// Also write the feature map before pooling (feature_map.npy, N x C x H x W; a TorchScript
    /// module needs a `feature_map(x)` method): ASH's and SCALE's papers act on it.
    #[arg(long)]
    pub feature_map: bool,
    /// TorchScript: the parameter holding the last layer's weight (K x D), when the rule does
    /// not find it.
    #[arg(long, value_name = "NAME")]
    pub head_weight: Option<String>,
    /// TorchScript: the parameter holding its bias (K); default: the `bias` beside the weight,
    /// else zero.
    #[arg(long, value_name = "NAME", requires = "head_weight")]
    pub head_bias: Option<String>,
    /// With --features, do not look for or write the last layer.
    #[arg(long, conflicts_with_all = ["head_weight", "head_bias"])]
    pub no_head: bool,

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

/// The normalization of `input` if its images are uint8 (`None` for float input): `choose`'s,
/// said on stderr with where it came from when progress is shown.
pub(super) fn input_normalize(
    input: &InputSet,
    progress: bool,
    choose: impl FnOnce() -> anyhow::Result<(Normalize, &'static str)>,
) -> anyhow::Result<Option<Normalize>> {
    if !input.needs_normalization() {
        return Ok(None);
    }
    let (n, from) = choose()?;
    if progress {
        eprintln!(
            "normalization (from {from}): mean {:?}, std {:?}",
            n.mean, n.std
        );
    }
    Ok(Some(n))
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
    let normalize = input_normalize(&input, args.runtime.progress(), || {
        choose_normalize(
            args.mean.as_ref(),
            args.std.as_ref(),
            &model,
            input.channels(),
        )
    })?;
    check_input(&args, &input, normalize.as_ref())?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    if let Some(method) = args.method.method {
        return run_method(&args, method, &model, &input, normalize.as_ref());
    }
    let dir = &args.out_dir;
    let out = Outputs {
        logits: dir.join("logits.npy"),
        features: args.features.then(|| dir.join("features.npy")),
        feature_map: args.feature_map.then(|| dir.join("feature_map.npy")),
        head: (args.features && !args.no_head)
            .then(|| (dir.join("weight.npy"), dir.join("bias.npy"))),
        head_names: HeadNames {
            weight: args.head_weight.clone(),
            bias: args.head_bias.clone(),
        },
    };
    let config = ExtractConfig {
        batch_size: args.batch_size,
        workers: args.runtime.workers,
        progress: args.runtime.progress(),
    };
    let summary = extract::extract_to(&model, &input, normalize.as_ref(), &config, &out)?;
    let record = serde_json::json!({
        "model": format!("{:?}", model.source()),
        "data": data,
        "rows": summary.rows,
        "classes": summary.classes,
        "feature_dim": summary.feature_dim,
        "feature_map_shape": summary.map_shape,
        "normalize": normalize,
        "device": format!("{device:?}"),
        "batch_size": args.batch_size,
        "seconds": summary.seconds,
        "images_per_second": summary.images_per_second(),
        "logits": out.logits,
        "features": out.features,
        "feature_map": out.feature_map,
        "weight": out.head.as_ref().map(|h| &h.0),
        "bias": out.head.as_ref().map(|h| &h.1),
    });
    let json_path = args.out_dir.join("extract.json");
    write_record(&json_path, &record)?;
    // the result line, --quiet or not
    let mut also = String::new();
    if let (Some(p), Some(d)) = (&out.features, summary.feature_dim) {
        also += &format!(" and {} ({} x {d})", p.display(), summary.rows);
    }
    if let (Some(p), Some(s)) = (&out.feature_map, &summary.map_shape) {
        also += &format!(" and {} ({} x {s:?})", p.display(), summary.rows);
    }
    if out.head.is_some() {
        also += &format!(
            " and the last layer ({} x {})",
            summary.classes,
            summary.feature_dim.unwrap_or(0)
        );
    }
    eprintln!(
        "wrote {} ({} x {}){also} in {:.1} s ({:.0} images/s)",
        out.logits.display(),
        summary.rows,
        summary.classes,
        summary.seconds,
        summary.images_per_second()
    );
    Ok(())
}

/// Writes an extraction record (`extract.json`, `<method>.json`) atomically, pretty-printed.
pub(crate) fn write_record(
    path: &std::path::Path,
    record: &serde_json::Value,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(record)? + "\n";
    ood_core::io::write_atomic(path, |w| {
        std::io::Write::write_all(w, text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(path, e))
    })?;
    Ok(())
}
