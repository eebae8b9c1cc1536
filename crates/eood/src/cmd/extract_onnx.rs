//! `eood extract --onnx model.onnx`: the same outputs as the libtorch path (`logits.npy`,
//! `features.npy` with `--features`, `extract.json`), computed by tract (ood-bundle's ONNX
//! runner) instead of libtorch. The input set and its batching are ood-nn's, so the model
//! input is exactly the tensor `--checkpoint` would get. An ONNX file records no
//! normalization: `--mean/--std`, else the default for the channel count (printed, recorded).
//! Input-space methods (ODIN, Mahalanobis with preprocessing) need gradients: not with --onnx.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use ndarray::ArrayView4;
use ood_bundle::manifest::{read_capped, MAX_MODEL_BYTES};
use ood_bundle::{InputContract, OnnxModel, ResizeRule};
use ood_data::formats::npy_images::NpyImages;
use ood_data::transforms::{Filter, Normalize};
use ood_nn::extract::{default_normalize, InputSet, NpyRowWriter};

use super::extract::{input_normalize, Args};

/// `--mean/--std`, else the default of the channel count, checked against the image shape by
/// the bundle's input contract (the one owner of that check).
fn normalize_for(args: &Args, images: &Path) -> anyhow::Result<(Normalize, &'static str)> {
    let (height, width, channels) = NpyImages::open(images)?.image_shape();
    let (n, from) = match (&args.mean, &args.std) {
        (Some(m), Some(s)) => (
            Normalize {
                mean: m.clone(),
                std: s.clone(),
            },
            "--mean/--std",
        ),
        _ => (
            default_normalize(channels),
            "the default for the channel count",
        ),
    };
    let contract = InputContract {
        height,
        width,
        channels,
        resize: ResizeRule::Stretch,
        filter: Filter::Bilinear,
        mean: n.mean.clone(),
        std: n.std.clone(),
    };
    if let Err(what) = contract.validate() {
        bail!("{}: normalization from {from}: {what}", images.display());
    }
    Ok((n, from))
}

pub fn run(args: &Args, onnx: &Path, data: &Path) -> anyhow::Result<()> {
    if args.method.method.is_some() {
        bail!("--method odin/mahalanobis perturbs the input along gradients, which an --onnx model does not give: use --checkpoint, --state-dict or --torchscript");
    }
    args.runtime.check()?;
    let input = InputSet::open(data)?;
    if input.is_empty() {
        bail!("{}: no rows", data.display());
    }
    let normalize = input_normalize(&input, args.runtime.progress(), || {
        normalize_for(args, data)
    })?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let logits_path = args.out_dir.join("logits.npy");
    let features_path = args.features.then(|| args.out_dir.join("features.npy"));
    let mut logits_out = NpyRowWriter::create(&logits_path, input.len())?;
    let mut features_out = match &features_path {
        Some(p) => Some(NpyRowWriter::create(p, input.len())?),
        None => None,
    };
    let bytes = read_capped(onnx, "a model file", MAX_MODEL_BYTES)?;
    let started = Instant::now();
    let mut model: Option<OnnxModel> = None;
    let (mut classes, mut feature_dim) = (0, 0);
    for batch in input.batches(args.batch_size, normalize.as_ref(), args.runtime.workers)? {
        let batch = batch?;
        let size: Vec<usize> = batch.x.size().iter().map(|&d| d as usize).collect();
        let [_, c, h, w] = size[..] else {
            bail!(
                "{}: model input must be N x C x H x W, got {size:?}",
                data.display()
            );
        };
        let values = Vec::<f32>::try_from(batch.x.contiguous().flatten(0, -1))?;
        let view = ArrayView4::from_shape((size[0], c, h, w), &values)?;
        if model.is_none() {
            model = Some(OnnxModel::from_bytes(
                onnx,
                &bytes,
                [c, h, w],
                "logits",
                "features",
            )?);
        }
        let out = model.as_ref().expect("loaded above").forward(view)?;
        classes = out.logits.ncols();
        feature_dim = out.features.ncols();
        logits_out.push(out.logits.as_slice().expect("row-major"), classes)?;
        if let Some(f) = &mut features_out {
            f.push(out.features.as_slice().expect("row-major"), feature_dim)?;
        }
    }
    logits_out.finish()?;
    if let Some(f) = features_out {
        f.finish()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = input.len();
    let record = serde_json::json!({
        "model": format!("Onnx({:?})", onnx),
        "data": data,
        "rows": rows,
        "classes": classes,
        "feature_dim": args.features.then_some(feature_dim),
        "normalize": normalize,
        "device": "tract (CPU)",
        "batch_size": args.batch_size,
        "seconds": seconds,
        "images_per_second": rows as f64 / seconds.max(1e-9),
        "logits": logits_path,
        "features": features_path,
    });
    let json_path = args.out_dir.join("extract.json");
    super::extract::write_record(&json_path, &record)?;
    eprintln!(
        "wrote {} ({rows} x {classes}){} in {seconds:.1} s through tract",
        logits_path.display(),
        match &features_path {
            Some(p) => format!(" and {} ({rows} x {feature_dim})", p.display()),
            None => String::new(),
        }
    );
    Ok(())
}
