//! `eood extract`: run a classifier over a dataset and write `logits.npy` (N x K, float32) and,
//! with `--features`, `features.npy` (N x D penultimate features), streamed batch by batch.
//!
//! Models: our checkpoint (`--checkpoint model.json`), a PyTorch `state_dict` of the code of
//! record's WideResNet (`--state-dict net.pt` with the architecture flags), or any TorchScript
//! classifier (`--torchscript model.pt`).
//!
//! Data: `--data file.npy` (uint8 images N x H x W (x C), or float32 N x C x H x W used as model
//! input), or `--dataset fmnist-ood/<array>` from the built benchmark in the cache
//! (e.g. `fmnist-ood/test_x`, `fmnist-ood/ood_test/mnist`, `fmnist-ood/aux_outliers`).
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
use ood_nn::tch::{self, Device};
use ood_nn::WrnConfig;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("model").required(true).args(["checkpoint", "state_dict", "torchscript"])))]
#[command(group(clap::ArgGroup::new("input").required(true).args(["data", "dataset"])))]
pub struct Args {
    /// Our checkpoint: its JSON sidecar (`eood train` / `eood finetune` output).
    #[arg(long, value_name = "JSON")]
    pub checkpoint: Option<PathBuf>,
    /// A PyTorch state_dict (torch.save, zip or legacy) of the code of record's WideResNet;
    /// give its architecture with --depth/--widen-factor/--num-classes.
    #[arg(long, value_name = "PT")]
    pub state_dict: Option<PathBuf>,
    /// Any TorchScript classifier (torch.jit.trace/script + save): forward(x) returns logits,
    /// or (logits, features); a `features(x)` method also gives --features.
    #[arg(long, value_name = "PT")]
    pub torchscript: Option<PathBuf>,

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

    /// Output folder: logits.npy, features.npy (with --features) and extract.json.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// Also write the penultimate features (features.npy).
    #[arg(long)]
    pub features: bool,

    /// Per-channel mean of [0, 1] pixels, comma-separated (with --std; overrides the model's).
    #[arg(long, value_delimiter = ',', requires = "std")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel std of [0, 1] pixels, comma-separated (with --mean).
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Option<Vec<f32>>,

    /// WideResNet depth for --state-dict.
    #[arg(long, default_value_t = 40)]
    pub depth: i64,
    /// WideResNet width multiplier for --state-dict.
    #[arg(long, default_value_t = 2)]
    pub widen_factor: i64,
    /// Number of classes for --state-dict.
    #[arg(long, default_value_t = 10)]
    pub num_classes: i64,

    /// cpu or cuda (cuda:N for a given GPU).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Threads preparing uint8 image batches ahead of the model (0: on the main thread).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// libtorch intra-op threads (default: libtorch's choice, one per core).
    #[arg(long)]
    pub threads: Option<i32>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    let device = match s {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Device::Cuda(i),
            _ => bail!("--device must be cpu, cuda or cuda:N, got {s:?}"),
        },
    };
    if let Device::Cuda(i) = device {
        let n = tch::Cuda::device_count();
        if (i as i64) >= n {
            bail!(
                "--device {s}: libtorch sees {n} CUDA device(s){}",
                if ood_nn::LINKS_TORCH_CUDA {
                    ""
                } else {
                    " (this build is not linked with libtorch_cuda)"
                }
            );
        }
    }
    Ok(device)
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
    if let Some(json) = &args.checkpoint {
        return Classifier::from_checkpoint(json, device)
            .with_context(|| format!("loading checkpoint {}", json.display()));
    }
    if let Some(pt) = &args.state_dict {
        let config = WrnConfig {
            depth: args.depth,
            widen_factor: args.widen_factor,
            dropout: 0.0,
            num_classes: args.num_classes,
            in_channels: channels as i64,
        };
        return Classifier::from_state_dict(pt, &config, device).with_context(|| {
            format!("loading {} as a {} state_dict", pt.display(), config.name())
        });
    }
    let ts = args.torchscript.as_ref().expect("clap requires one model");
    Ok(Classifier::from_torchscript(ts, device)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    if let Some(n) = args.threads {
        if n < 1 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(n);
    }
    let device = parse_device(&args.device)?;
    let data = match (&args.data, &args.dataset) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => resolve_dataset(name, args.cache.as_deref())?,
        _ => unreachable!("clap requires one input"),
    };
    let input = InputSet::open(&data)?;
    let model = load_model(&args, device, input.channels())?;
    let normalize = if input.needs_normalization() {
        let (n, from) = choose_normalize(
            args.mean.as_ref(),
            args.std.as_ref(),
            &model,
            input.channels(),
        )?;
        if !args.quiet {
            eprintln!(
                "normalization (from {from}): mean {:?}, std {:?}",
                n.mean, n.std
            );
        }
        Some(n)
    } else {
        None
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let logits_path = args.out.join("logits.npy");
    let features_path = args.features.then(|| args.out.join("features.npy"));
    let config = ExtractConfig {
        batch_size: args.batch_size,
        workers: args.workers,
        progress: !args.quiet,
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
        "device": args.device,
        "batch_size": args.batch_size,
        "seconds": summary.seconds,
        "images_per_second": summary.images_per_second(),
        "logits": logits_path,
        "features": features_path,
    });
    let json_path = args.out.join("extract.json");
    let text = serde_json::to_string_pretty(&record)? + "\n";
    ood_core::io::write_atomic(&json_path, |w| {
        std::io::Write::write_all(w, text.as_bytes())
            .map_err(|e| ood_core::io::IoError::new(&json_path, e))
    })?;
    if !args.quiet {
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
