//! Our own checkpoints: safetensors weights plus a JSON sidecar that describes them.
//!
//! A checkpoint is named by its sidecar, `<stem>.json`. It records the architecture, the training
//! configuration, seed, epoch, step, metrics and versions, and the file names and SHA-256 of
//! `<stem>.e<epoch>-s<step>.safetensors` (model variables, PyTorch names) and, for resuming,
//! `<stem>.e<epoch>-s<step>.optim.safetensors` (optimizer state).
//!
//! Crash safety: every file is written through [`ood_core::io::AtomicFile`] (a temporary name
//! unique to the process and call, fsync'd, then renamed); the weight files carry the epoch and step in their
//! names and are written *and fsync'd before* the sidecar is renamed into place, and superseded
//! ones are deleted only *after* it. A kill at any moment therefore leaves a sidecar that points
//! at complete files (the previous or the new checkpoint), which is what resuming needs. Temp
//! files of dead processes are removed by the next [`save`].
//!
//! Concurrency: a writer holds [`CheckpointLock`] (an OS lock on `<stem>.lock`, see [`lock`]) for
//! the whole run, so a second run on the same checkpoint fails at once; the kernel releases it
//! when the holder dies.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::data::InputSpec;
use crate::error::{Error, Result};
use crate::wrn::WrnConfig;

pub mod lock;
pub use lock::CheckpointLock;

/// Value of [`CheckpointMeta::format`].
pub const FORMAT: &str = "eood-checkpoint";
pub const FORMAT_VERSION: u32 = 1;

/// Versions of what produced a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub eood: String,
    pub tch: String,
    pub libtorch: String,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            eood: env!("CARGO_PKG_VERSION").into(),
            tch: "0.24.0".into(),
            libtorch: "2.11.0".into(),
        }
    }
}

/// The JSON sidecar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub format_version: u32,
    pub architecture: WrnConfig,
    /// Input size and normalization the network was trained with.
    #[serde(default)]
    pub input: Option<InputSpec>,
    /// The training or fine-tuning configuration (free-form; written by the trainer).
    pub training: serde_json::Value,
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Optimizer steps completed.
    pub step: u64,
    /// E.g. `test_accuracy`, `train_loss`.
    pub metrics: BTreeMap<String, f64>,
    pub versions: Versions,
    /// Weights file, relative to the sidecar's directory, and its SHA-256 (hex).
    pub weights: String,
    pub weights_sha256: String,
    /// Optimizer state file and its SHA-256, when saved for resuming.
    pub optimizer: Option<String>,
    pub optimizer_sha256: Option<String>,
}

impl CheckpointMeta {
    /// A sidecar for `architecture`; files and hashes are filled in by [`save`].
    pub fn new(architecture: WrnConfig, training: serde_json::Value, seed: u64) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            architecture,
            input: None,
            training,
            seed,
            epoch: 0,
            step: 0,
            metrics: BTreeMap::new(),
            versions: Versions::default(),
            weights: String::new(),
            weights_sha256: String::new(),
            optimizer: None,
            optimizer_sha256: None,
        }
    }
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub weights: Vec<(String, Tensor)>,
    pub optimizer: Option<Vec<(String, Tensor)>>,
}

fn stem_of(json: &Path) -> Result<(PathBuf, String)> {
    let dir = match json.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = json
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|_| json.extension().is_some_and(|e| e == "json"))
        .ok_or_else(|| Error::Sidecar {
            path: json.into(),
            reason: "a checkpoint is named by its JSON sidecar (<name>.json)".into(),
        })?;
    Ok((dir, stem.to_owned()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let (file, _) = ood_core::io::open_regular(path).map_err(|e| Error::io(path, e.source))?;
    ood_data::download::sha256_reader(std::io::BufReader::new(file)).map_err(|e| Error::io(path, e))
}

/// Largest sidecar read (a real one is a few KB): a hostile one is never read whole.
pub const MAX_SIDECAR_BYTES: u64 = 16 << 20;

/// Writes `tensors` to `dir/name` through an [`ood_core::io::AtomicFile`] (fsync'd before the
/// rename); returns the file's SHA-256.
fn write_tensors(dir: &Path, name: &str, tensors: &[(String, Tensor)]) -> Result<String> {
    let path = dir.join(name);
    let file = ood_core::io::AtomicFile::create(&path).map_err(|e| Error::io(&path, e.source))?;
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    // libtorch writes the temporary file by name; dropped uncommitted on error, it is removed.
    Tensor::write_safetensors(&contiguous, file.temp_path())
        .map_err(|e| Error::torch(format!("writing {}", path.display()), e))?;
    let sha = sha256_file(file.temp_path()).map_err(|e| match e {
        Error::Io(e) => Error::io(&path, e.source),
        e => e,
    })?;
    file.commit().map_err(|e| Error::io(&path, e.source))?;
    Ok(sha)
}

/// Saves a checkpoint named `json` (`<stem>.json`), filling in `meta`'s file names and hashes.
/// `optimizer` is the optimizer state needed to resume (see [`crate::sgd::Sgd::state`]).
pub fn save(
    json: &Path,
    meta: &mut CheckpointMeta,
    weights: &[(String, Tensor)],
    optimizer: Option<&[(String, Tensor)]>,
) -> Result<()> {
    let (dir, stem) = stem_of(json)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    ood_core::io::remove_stale_temps_of(&dir, &stem);
    let tag = format!("{stem}.e{:04}-s{}", meta.epoch, meta.step);
    meta.format = FORMAT.into();
    meta.format_version = FORMAT_VERSION;
    meta.weights = format!("{tag}.safetensors");
    meta.weights_sha256 = write_tensors(&dir, &meta.weights, weights)?;
    match optimizer {
        Some(state) => {
            let name = format!("{tag}.optim.safetensors");
            meta.optimizer_sha256 = Some(write_tensors(&dir, &name, state)?);
            meta.optimizer = Some(name);
        }
        None => {
            meta.optimizer = None;
            meta.optimizer_sha256 = None;
        }
    }
    let text = serde_json::to_string_pretty(meta).map_err(|source| Error::SidecarJson {
        path: json.into(),
        source,
    })?;
    ood_core::io::write_atomic(
        json,
        |w| -> std::result::Result<(), ood_core::io::IoError> {
            use std::io::Write;
            w.write_all(text.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| ood_core::io::IoError::new(json, e))
        },
    )
    .map_err(|e| Error::io(json, e.source))?;
    // write_atomic synced the directory after its rename, so the renames are on disk before the
    // files they replace are deleted. Only now is the previous checkpoint of this name superseded.
    let keep = [Some(meta.weights.as_str()), meta.optimizer.as_deref()];
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = name.starts_with(&format!("{stem}.e")) && name.ends_with(".safetensors");
            if ours && !keep.contains(&Some(name)) && is_tagged(&name[stem.len() + 1..]) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// `e<digits>-s<digits>.safetensors` or `...optim.safetensors`: only files [`save`] made.
fn is_tagged(rest: &str) -> bool {
    let rest = rest
        .trim_end_matches(".safetensors")
        .trim_end_matches(".optim");
    let Some((e, s)) = rest.split_once("-s") else {
        return false;
    };
    e.strip_prefix('e')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        && !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
}

/// Reads only the sidecar (at most [`MAX_SIDECAR_BYTES`]) and validates the architecture it
/// declares, so that no size in it reaches libtorch unchecked.
pub fn read_meta(json: &Path) -> Result<CheckpointMeta> {
    let text = ood_core::io::read_text(json, "sidecar", MAX_SIDECAR_BYTES)?;
    let meta: CheckpointMeta =
        serde_json::from_str(&text).map_err(|source| Error::SidecarJson {
            path: json.into(),
            source,
        })?;
    if meta.format != FORMAT || meta.format_version > FORMAT_VERSION {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!(
                "format {:?} version {} is not {FORMAT:?} version <= {FORMAT_VERSION}",
                meta.format, meta.format_version
            ),
        });
    }
    meta.architecture
        .validate()
        .map_err(|source| Error::SidecarArch {
            path: json.into(),
            source: Box::new(source),
        })?;
    if let Some(spec) = &meta.input {
        check_input_spec(spec).map_err(|source| Error::SidecarArch {
            path: json.into(),
            source: Box::new(source.into()),
        })?;
    }
    Ok(meta)
}

/// Largest image side a sidecar may declare.
pub const MAX_IMAGE_SIDE: usize = 4096;

fn check_input_spec(spec: &InputSpec) -> std::result::Result<(), ood_core::limits::LimitError> {
    use ood_core::limits::check_range;
    check_range("input height", spec.height, 1, MAX_IMAGE_SIDE)?;
    check_range("input width", spec.width, 1, MAX_IMAGE_SIDE)?;
    check_range("input channels", spec.channels, 1, 64)?;
    Ok(())
}

fn read_tensors(dir: &Path, name: &str, sha: &str, json: &Path) -> Result<Vec<(String, Tensor)>> {
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!("file name {name:?} is not a plain name"),
        });
    }
    let path = dir.join(name);
    let got = sha256_file(&path)?;
    if got != sha {
        return Err(Error::Sidecar {
            path: json.into(),
            reason: format!(
                "{} has SHA-256 {got}, the sidecar says {sha}",
                path.display()
            ),
        });
    }
    let mut tensors = Tensor::read_safetensors(&path)
        .map_err(|e| Error::torch(format!("reading {}", path.display()), e))?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Loads a checkpoint and verifies its files against the sidecar's hashes.
pub fn load(json: &Path) -> Result<Checkpoint> {
    let (dir, _) = stem_of(json)?;
    let meta = read_meta(json)?;
    let weights = read_tensors(&dir, &meta.weights, &meta.weights_sha256, json)?;
    let optimizer = match (&meta.optimizer, &meta.optimizer_sha256) {
        (Some(name), Some(sha)) => Some(read_tensors(&dir, name, sha, json)?),
        _ => None,
    };
    Ok(Checkpoint {
        meta,
        weights,
        optimizer,
    })
}

#[cfg(test)]
mod tests;
