//! Writing a bundle folder. Everything is read and checked first (the model is loaded and run
//! on a zero input, K must equal the number of class names), then each file is written
//! atomically and `bundle.json` last, so that a folder with a manifest is always complete.
//! An existing `bundle.json` is replaced only with `force`; inputs are never overwritten.
//!
//! Model files inside the folder: `model.onnx` (ONNX), `model.pt` (state_dict, TorchScript), or
//! `model.json` (a checkpoint's sidecar) beside the safetensors it names, under their own name.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array4;
use ood_core::detectors::Fitted;
use ood_core::io::{check_new_output, write_atomic, IoError};
use ood_core::Detector;
use serde::Deserialize;

use crate::contract::{InputContract, ResizeRule};
use crate::error::{BundleError, Result};
use crate::loader::{ModelFiles, ModelLoader, OnnxOnly};
use crate::manifest::{
    check_file_name, read_capped, sha256_hex, FileRef, Manifest, ModelKind, ModelRef, Scoring,
    WrnArch, FORMAT, FORMAT_VERSION, MANIFEST, MAX_CLASSES, MAX_DETECTOR_BYTES, MAX_MANIFEST_BYTES,
    MAX_MODEL_BYTES,
};

/// Largest class-name file read.
pub const MAX_LABELS_BYTES: u64 = 4 << 20;
/// Version of the tract crates the bundle is run with.
pub const TRACT_VERSION: &str = "0.22.5";

/// What `eood bundle create` is given.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// The model file: ONNX graph, checkpoint sidecar, state_dict or TorchScript archive.
    pub model: PathBuf,
    pub kind: ModelKind,
    /// The WideResNet of a `state_dict` (required for that kind, refused for the others).
    pub architecture: Option<WrnArch>,
    pub input: InputContract,
    pub detector: PathBuf,
    pub fitted: Option<PathBuf>,
    /// One class name a line; `None`: the class ids `0..K`.
    pub labels: Option<PathBuf>,
    pub out_dir: PathBuf,
    /// Provenance recorded under `source` (e.g. the checkpoint the ONNX was exported from).
    pub source: Option<BTreeMap<String, String>>,
    pub force: bool,
}

/// The `input` and `weights_sha256` of an eood checkpoint sidecar: the only part of that format
/// (owned by ood-nn's checkpoint module) a framework-free bundle needs.
#[derive(Deserialize)]
struct SidecarInput {
    height: usize,
    width: usize,
    channels: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
}

#[derive(Deserialize)]
struct Sidecar {
    format: String,
    input: SidecarInput,
    /// The weights file, relative to the sidecar's folder.
    weights: String,
    weights_sha256: Option<String>,
}

fn parse_sidecar(path: &Path, bytes: &[u8]) -> Result<Sidecar> {
    let side: Sidecar = serde_json::from_slice(bytes).map_err(|source| BundleError::Json {
        path: path.into(),
        source,
    })?;
    if side.format != "eood-checkpoint" {
        return Err(BundleError::Manifest {
            path: path.into(),
            what: format!("format is {:?}, expected \"eood-checkpoint\"", side.format),
        });
    }
    Ok(side)
}

/// A bundle's checkpoint sidecar must name the weights file the manifest checks (libtorch reads
/// the file the sidecar names: it must not reach outside the folder or skip the checksum).
pub(crate) fn check_sidecar_weights(path: &Path, bytes: &[u8], expected: &str) -> Result<()> {
    let side = parse_sidecar(path, bytes)?;
    if side.weights != expected {
        return Err(BundleError::Manifest {
            path: path.into(),
            what: format!(
                "the sidecar names weights {:?}, the manifest {expected:?}",
                side.weights.chars().take(80).collect::<String>()
            ),
        });
    }
    Ok(())
}

/// The input contract (resize: shorter side + centre crop, PIL bilinear) and provenance of an
/// eood checkpoint sidecar.
pub fn contract_from_checkpoint(path: &Path) -> Result<(InputContract, BTreeMap<String, String>)> {
    let bytes = read_capped(path, "a checkpoint sidecar", MAX_MANIFEST_BYTES)?;
    let side = parse_sidecar(path, &bytes)?;
    let i = side.input;
    let contract = InputContract {
        height: i.height,
        width: i.width,
        channels: i.channels,
        resize: ResizeRule::ShorterSideCenterCrop,
        filter: ood_data::transforms::Filter::Bilinear,
        mean: i.mean,
        std: i.std,
    };
    contract.validate().map_err(|what| BundleError::Manifest {
        path: path.into(),
        what,
    })?;
    let mut source = BTreeMap::new();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    source.insert("checkpoint".into(), name.unwrap_or_default());
    if let Some(w) = side.weights_sha256 {
        source.insert("weights_sha256".into(), w.chars().take(64).collect());
    }
    Ok((contract, source))
}

fn read_labels(path: &Path) -> Result<Vec<String>> {
    let bytes = read_capped(path, "a class-name file", MAX_LABELS_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|_| BundleError::Manifest {
        path: path.into(),
        what: "class names are not UTF-8".into(),
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if labels.is_empty() || labels.len() > MAX_CLASSES {
        return Err(BundleError::Manifest {
            path: path.into(),
            what: format!("{} class names (need 1..={MAX_CLASSES})", labels.len()),
        });
    }
    Ok(labels)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes)
            .map_err(|e| BundleError::Io(IoError::new(path, e)))
    })
}

/// Write the bundle folder (ONNX models only; see [`create_with`]); returns its manifest.
pub fn create(o: &CreateOptions) -> Result<Manifest> {
    create_with(o, &OnnxOnly)
}

/// The model file's name in the bundle, its bytes and, for a checkpoint, its weights (name in
/// the bundle, path, bytes).
struct ModelPayload {
    file: &'static str,
    bytes: Vec<u8>,
    weights: Option<(String, Vec<u8>)>,
}

fn read_model(o: &CreateOptions) -> Result<ModelPayload> {
    let cap = if o.kind == ModelKind::Checkpoint {
        MAX_MANIFEST_BYTES
    } else {
        MAX_MODEL_BYTES
    };
    let bytes = read_capped(&o.model, "a model file", cap)?;
    let (file, weights) = match o.kind {
        ModelKind::Onnx => ("model.onnx", None),
        ModelKind::StateDict | ModelKind::TorchScript => ("model.pt", None),
        ModelKind::Checkpoint => {
            let side = parse_sidecar(&o.model, &bytes)?;
            check_file_name("the checkpoint's weights", &side.weights)?;
            let dir = o.model.parent().unwrap_or(Path::new("."));
            let w = read_capped(
                &dir.join(&side.weights),
                "checkpoint weights",
                MAX_MODEL_BYTES,
            )?;
            ("model.json", Some((side.weights, w)))
        }
    };
    Ok(ModelPayload {
        file,
        bytes,
        weights,
    })
}

/// Write the bundle folder with the model run by `loader` (to check it and find K); returns
/// its manifest.
pub fn create_with(o: &CreateOptions, loader: &dyn ModelLoader) -> Result<Manifest> {
    o.input.validate().map_err(|what| BundleError::Manifest {
        path: o.model.clone(),
        what,
    })?;
    let payload = read_model(o)?;
    let model = loader.load(&ModelFiles {
        kind: o.kind,
        path: &o.model,
        bytes: &payload.bytes,
        chw: o.input.chw(),
        logits_output: "logits",
        features_output: "features",
        architecture: o.architecture,
    })?;
    let [c, h, w] = o.input.chw();
    let k = model
        .forward(Array4::zeros((1, c, h, w)).view())?
        .logits
        .ncols();

    let det_bytes = read_capped(&o.detector, "a detector file", MAX_DETECTOR_BYTES)?;
    let detector = Detector::load(&o.detector)?;
    let fitted = match &o.fitted {
        Some(p) => {
            let bytes = read_capped(p, "a fitted detector", MAX_DETECTOR_BYTES)?;
            let f = Fitted::load(p)?;
            let ext = if bytes.first() == Some(&b'{') {
                "json"
            } else {
                "safetensors"
            };
            Some((bytes, f, ext))
        }
        None => None,
    };
    let labels = match &o.labels {
        Some(p) => read_labels(p)?,
        None => (0..k).map(|i| i.to_string()).collect(),
    };
    if labels.len() != k {
        return Err(BundleError::ClassCount {
            model: k,
            labels: labels.len(),
        });
    }

    let fitted_ref = fitted.as_ref().map(|(bytes, _, ext)| FileRef {
        file: format!("fitted.{ext}"),
        sha256: sha256_hex(bytes),
    });
    let versions = BTreeMap::from([
        ("eood".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("tract-onnx".to_string(), TRACT_VERSION.to_string()),
    ]);
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        model: ModelRef {
            kind: o.kind.name().into(),
            file: payload.file.into(),
            sha256: sha256_hex(&payload.bytes),
            logits_output: "logits".into(),
            features_output: "features".into(),
            weights: payload.weights.as_ref().map(|(name, bytes)| FileRef {
                file: name.clone(),
                sha256: sha256_hex(bytes),
            }),
            architecture: o.architecture,
        },
        input: o.input.clone(),
        scoring: Scoring {
            method: detector.method.clone(),
            temperature: detector.temperature,
            tau: detector.tau,
            target_tpr: detector.target_tpr,
            detector: FileRef {
                file: "detector.json".into(),
                sha256: sha256_hex(&det_bytes),
            },
            fitted: fitted_ref.clone(),
        },
        labels,
        versions,
        source: o.source.clone(),
    };
    // the same checks a reader makes (a fitted method must match the detector's)
    manifest.validate(&o.out_dir.join(MANIFEST))?;
    if let Some((_, f, _)) = &fitted {
        if f.method().key() != detector.method {
            return Err(BundleError::Manifest {
                path: o.detector.clone(),
                what: format!(
                    "the fitted detector is {}, the calibrated detector {}",
                    f.method().key(),
                    detector.method
                ),
            });
        }
    }

    std::fs::create_dir_all(&o.out_dir).map_err(|e| IoError::new(&o.out_dir, e))?;
    let mut inputs: Vec<&Path> = vec![&o.model, &o.detector];
    inputs.extend(o.fitted.as_deref());
    inputs.extend(o.labels.as_deref());
    let manifest_path = o.out_dir.join(MANIFEST);
    check_new_output(&manifest_path, &inputs, o.force)?;
    let mut files = vec![
        (manifest.model.file.clone(), payload.bytes),
        (manifest.scoring.detector.file.clone(), det_bytes),
    ];
    files.extend(payload.weights);
    if let (Some(r), Some((bytes, _, _))) = (&fitted_ref, fitted) {
        files.push((r.file.clone(), bytes));
    }
    for (name, _) in &files {
        check_new_output(&o.out_dir.join(name), &inputs, true)?;
    }
    for (name, bytes) in &files {
        write_file(&o.out_dir.join(name), bytes)?;
    }
    let mut text = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    text.push(b'\n');
    write_file(&manifest_path, &text)?;
    Ok(manifest)
}
