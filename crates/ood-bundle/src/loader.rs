//! How a bundle's model file becomes a running [`Model`]. ood-bundle is framework-free: it
//! runs ONNX itself ([`OnnxOnly`]) and leaves the libtorch kinds (checkpoint, state_dict,
//! TorchScript) to a [`ModelLoader`] given by the caller (eood implements one under its `nn`
//! feature). [`OnnxOnly`] refuses those kinds with one line naming the feature.

use std::path::Path;

use crate::error::{BundleError, Result};
use crate::manifest::{ModelKind, WrnArch};
use crate::runner::{Model, OnnxModel};

/// A model file, already read under its size cap and checked against its SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    pub kind: ModelKind,
    /// The model file: ONNX graph, checkpoint sidecar (its weights beside it, also checked),
    /// state_dict or TorchScript archive.
    pub path: &'a Path,
    /// Its bytes (the ONNX runner parses them; libtorch reads `path` itself).
    pub bytes: &'a [u8],
    /// `[C, H, W]` of one input (the bundle's contract).
    pub chw: [usize; 3],
    /// ONNX output names.
    pub logits_output: &'a str,
    pub features_output: &'a str,
    /// The WideResNet of a `state_dict`.
    pub architecture: Option<WrnArch>,
}

/// Turns model files into a [`Model`].
pub trait ModelLoader {
    fn load(&self, files: &ModelFiles) -> Result<Box<dyn Model>>;
}

/// The framework-free loader: ONNX through tract; the libtorch kinds are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxOnly;

impl ModelLoader for OnnxOnly {
    fn load(&self, f: &ModelFiles) -> Result<Box<dyn Model>> {
        match f.kind {
            ModelKind::Onnx => Ok(Box::new(OnnxModel::from_bytes(
                f.path,
                f.bytes,
                f.chw,
                f.logits_output,
                f.features_output,
            )?)),
            kind => Err(BundleError::NeedsLibtorch {
                path: f.path.into(),
                kind,
            }),
        }
    }
}
