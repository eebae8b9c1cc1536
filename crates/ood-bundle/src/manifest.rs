//! `bundle.json`, the self-describing manifest of a bundle folder (docs/deploy.md lists every
//! field). Read hostile-input safe: a regular file of bounded size, unknown fields refused, file
//! names that are plain names inside the folder (no `/`, `\`, `..`, no leading dot), numbers
//! checked before anything is allocated from them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::InputContract;
use crate::error::{BundleError, Result};

pub const FORMAT: &str = "eood-bundle";
pub const FORMAT_VERSION: u32 = 1;
/// Name of the manifest inside a bundle folder.
pub const MANIFEST: &str = "bundle.json";
/// Largest manifest read (class names included).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Largest model file read.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// Largest detector or fitted-detector file read.
pub const MAX_DETECTOR_BYTES: u64 = 256 << 20;
/// Most classes a bundle may name.
pub const MAX_CLASSES: usize = 100_000;

/// A file of the bundle and its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Plain file name inside the bundle folder.
    pub file: String,
    /// Lower-case hex SHA-256 of its bytes.
    pub sha256: String,
}

/// What a bundle's model file is. `onnx` runs through tract in every build; the other three
/// need libtorch (eood's `nn` feature). Added to format version 1 without changing it: a
/// version-1 bundle of ONNX kind reads and writes exactly as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// An ONNX graph with `logits` and `features` outputs (scripts/export-onnx.py).
    Onnx,
    /// Our checkpoint: the JSON sidecar (`model.file`) and its safetensors (`model.weights`).
    Checkpoint,
    /// A PyTorch `state_dict` of the code of record's WideResNet (`model.architecture`).
    StateDict,
    /// A TorchScript classifier: forward(x) returns (logits, features), or logits with a
    /// `features(x)` method.
    TorchScript,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Onnx,
        ModelKind::Checkpoint,
        ModelKind::StateDict,
        ModelKind::TorchScript,
    ];

    /// The name in `bundle.json` (`model.kind`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Onnx => "onnx",
            ModelKind::Checkpoint => "checkpoint",
            ModelKind::StateDict => "state_dict",
            ModelKind::TorchScript => "torchscript",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kind runs through libtorch (not in a build without eood's `nn` feature).
    pub fn needs_libtorch(self) -> bool {
        self != ModelKind::Onnx
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The WideResNet of a `state_dict` model (its input channels are the contract's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrnArch {
    pub depth: i64,
    pub widen_factor: i64,
    pub num_classes: i64,
}

/// The model file and the names of its two outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// `onnx`, `checkpoint`, `state_dict` or `torchscript` ([`ModelKind`]).
    pub kind: String,
    pub file: String,
    pub sha256: String,
    /// Output with the N x K logits (ONNX; `logits` for the libtorch kinds).
    pub logits_output: String,
    /// Output with the N x D penultimate features (ONNX; `features` for the libtorch kinds).
    pub features_output: String,
    /// The safetensors weights a `checkpoint` sidecar names (kind `checkpoint` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<FileRef>,
    /// The WideResNet of a `state_dict` (kind `state_dict` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<WrnArch>,
}

impl ModelRef {
    /// The parsed `kind` (validated manifests always have one).
    pub fn model_kind(&self) -> Option<ModelKind> {
        ModelKind::from_name(&self.kind)
    }
}

/// Scoring and decision rule, copied from the detector file for readers of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// Score method of the detector (`energy`, `msp`, `maxlogit`, or a fitted zoo method).
    pub method: String,
    pub temperature: Option<f64>,
    /// Accept (in-distribution) iff `score > tau`.
    pub tau: f64,
    pub target_tpr: f64,
    /// The calibrated detector file (`eood-detector`, as `eood calibrate` writes).
    pub detector: FileRef,
    /// A fitted zoo detector (`eood-detector` with a `detector` object) whose score the tau
    /// applies to, when the method is not a plain logit score.
    pub fitted: Option<FileRef>,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub model: ModelRef,
    pub input: InputContract,
    pub scoring: Scoring,
    /// Class names, index = class id; their count is the model's K.
    pub labels: Vec<String>,
    /// Software that wrote the bundle (`eood`, `tract-onnx`).
    pub versions: std::collections::BTreeMap<String, String>,
    /// Where the model came from (checkpoint sidecar name and weights digest), if known.
    pub source: Option<std::collections::BTreeMap<String, String>>,
}

/// Refuse anything but a plain file name: the manifest must not reach outside its folder.
pub fn check_file_name(field: &'static str, name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0', ':'])
        || Path::new(name).components().count() != 1;
    if bad {
        return Err(BundleError::UnsafeName {
            field,
            name: name.chars().take(80).collect(),
        });
    }
    Ok(())
}

/// Open a regular file whose size is at most `cap` bytes.
fn open_capped(path: &Path, what: &'static str, cap: u64) -> Result<(std::fs::File, u64)> {
    let (file, len) = ood_core::io::open_regular(path)?;
    if len > cap {
        return Err(BundleError::TooLarge {
            path: path.into(),
            what,
            size: len,
            cap,
        });
    }
    Ok((file, len))
}

/// Read a regular file of at most `cap` bytes whole.
pub fn read_capped(path: &Path, what: &'static str, cap: u64) -> Result<Vec<u8>> {
    let (file, len) = open_capped(path, what, cap)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ood_core::io::IoError::new(path, e))?;
    if bytes.len() as u64 > cap {
        // the file grew while we read it
        return Err(BundleError::TooLarge {
            path: path.into(),
            what,
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

/// Check a file too large to hold (checkpoint weights) against its digest, streaming it.
pub fn verify_file(path: &Path, what: &'static str, cap: u64, expected: &str) -> Result<()> {
    let (file, _) = open_capped(path, what, cap)?;
    let mut hasher = Sha256::new();
    let mut reader = file.take(cap + 1);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| ood_core::io::IoError::new(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    check_digest(path, hex::encode(hasher.finalize()), expected)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check `bytes` (the file `path`) against the digest the manifest records.
pub fn verify(path: &Path, bytes: &[u8], expected: &str) -> Result<()> {
    check_digest(path, sha256_hex(bytes), expected)
}

fn check_digest(path: &Path, actual: String, expected: &str) -> Result<()> {
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(BundleError::Checksum {
            path: path.into(),
            expected: expected.chars().take(64).collect(),
            actual,
        });
    }
    Ok(())
}

impl Manifest {
    /// Read and validate `dir/bundle.json`.
    pub fn load(dir: &Path) -> Result<(PathBuf, Self)> {
        let path = dir.join(MANIFEST);
        let bytes = read_capped(&path, "a bundle manifest", MAX_MANIFEST_BYTES)?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|source| BundleError::Json {
            path: path.clone(),
            source,
        })?;
        m.validate(&path)?;
        Ok((path, m))
    }

    /// Everything serde cannot see.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |what: String| BundleError::Manifest {
            path: path.into(),
            what,
        };
        if self.format != FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {FORMAT:?}",
                self.format
            )));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(bad(format!(
                "bundle format version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            )));
        }
        self.validate_model(path)?;
        check_file_name("model.file", &self.model.file)?;
        check_file_name("scoring.detector.file", &self.scoring.detector.file)?;
        let mut names = vec![&self.model.file, &self.scoring.detector.file];
        if let Some(f) = &self.model.weights {
            check_file_name("model.weights.file", &f.file)?;
            names.push(&f.file);
        }
        if let Some(f) = &self.scoring.fitted {
            check_file_name("scoring.fitted.file", &f.file)?;
            names.push(&f.file);
        }
        for (i, n) in names.iter().enumerate() {
            if *n == MANIFEST || names[..i].contains(n) {
                return Err(bad(format!("file name {n:?} is used twice in the bundle")));
            }
        }
        self.input.validate().map_err(bad)?;
        if !self.scoring.tau.is_finite() {
            return Err(bad(format!("tau is {}", self.scoring.tau)));
        }
        if self.labels.is_empty() || self.labels.len() > MAX_CLASSES {
            return Err(bad(format!(
                "{} class names (need 1..={MAX_CLASSES})",
                self.labels.len()
            )));
        }
        Ok(())
    }
}

impl Manifest {
    /// The model's kind and the fields each kind needs (and only those).
    fn validate_model(&self, path: &Path) -> Result<()> {
        let bad = |what: String| BundleError::Manifest {
            path: path.into(),
            what,
        };
        let m = &self.model;
        let Some(kind) = m.model_kind() else {
            let names: Vec<_> = ModelKind::ALL.iter().map(|k| k.name()).collect();
            return Err(bad(format!(
                "model kind {:?} is not supported (expected one of {})",
                m.kind.chars().take(40).collect::<String>(),
                names.join(", ")
            )));
        };
        match (&m.weights, kind) {
            (None, ModelKind::Checkpoint) => {
                return Err(bad("a checkpoint model needs model.weights".into()))
            }
            (Some(_), k) if k != ModelKind::Checkpoint => {
                return Err(bad(format!(
                    "model.weights is for kind checkpoint only (this model is {kind})"
                )))
            }
            _ => {}
        }
        match (&m.architecture, kind) {
            (None, ModelKind::StateDict) => {
                Err(bad("a state_dict model needs model.architecture".into()))
            }
            (Some(_), k) if k != ModelKind::StateDict => Err(bad(format!(
                "model.architecture is for kind state_dict only (this model is {kind})"
            ))),
            (Some(a), _)
                if !(1..=1000).contains(&a.depth)
                    || !(1..=64).contains(&a.widen_factor)
                    || !(1..=MAX_CLASSES as i64).contains(&a.num_classes) =>
            {
                Err(bad(format!("model.architecture {a:?} is out of range")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_inside_the_folder() {
        for ok in ["model.onnx", "fmnist-detector.json", "a b.json"] {
            check_file_name("f", ok).unwrap();
        }
        for bad in [
            "../x",
            "/etc/passwd",
            "a/b",
            "..",
            ".",
            "",
            ".hidden",
            "c:\\x",
            "a\\b",
        ] {
            let e = check_file_name("model.file", bad).unwrap_err();
            assert!(
                e.to_string().starts_with("model.file: file name"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn verify_names_both_digests() {
        let d = sha256_hex(b"abc");
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        verify(Path::new("m"), b"abc", &d).unwrap();
        let e = verify(Path::new("m"), b"abd", &d).unwrap_err().to_string();
        assert!(e.contains(&d) && e.starts_with("m: SHA-256 is "), "{e}");
    }
}
