//! The model a bundle runs ([`Model`]: `N x C x H x W` f32 -> `logits` (N x K) and `features`
//! (N x D)) and its framework-free implementation, the ONNX runner: a model loaded once through
//! tract (pure Rust, no libtorch), optimized with a symbolic batch dimension `N`. One optimized
//! plan serves every batch size: tract resolves `N` per run. The libtorch kinds (checkpoint,
//! state_dict, TorchScript) implement [`Model`] outside this crate (eood's `nn` feature) and
//! reach a bundle through a [`crate::loader::ModelLoader`].

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView4};
use tract_onnx::prelude::*;

use crate::error::{BundleError, Result};

type Plan = TypedRunnableModel<TypedModel>;

/// Logits and penultimate features of one batch.
#[derive(Debug, Clone)]
pub struct Forward {
    /// `N x K`.
    pub logits: Array2<f32>,
    /// `N x D`.
    pub features: Array2<f32>,
}

/// A loaded model: one forward pass over a normalised `N x C x H x W` batch. Shared read-only
/// by every request of a server, hence `Send + Sync` and `&self`.
pub trait Model: Send + Sync {
    /// Logits and penultimate features of `batch`, whose `C x H x W` must be [`Model::input_chw`].
    fn forward(&self, batch: ArrayView4<f32>) -> Result<Forward>;
    /// `[C, H, W]` of one input.
    fn input_chw(&self) -> [usize; 3];
}

/// The check every [`Model`] makes first: the batch's `C x H x W` is the model's.
pub fn check_batch(batch: &ArrayView4<f32>, chw: [usize; 3]) -> Result<()> {
    if batch.shape()[1..] != chw {
        return Err(BundleError::BadInput {
            index: 0,
            what: format!(
                "batch has shape {:?}, the model takes N x {chw:?}",
                batch.shape()
            ),
        });
    }
    Ok(())
}

/// An optimized ONNX model with named `logits` and `features` outputs.
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    plan: Plan,
    chw: [usize; 3],
}

impl OnnxModel {
    /// Parse `bytes` (the model file `path`, already read and checked by the caller) for inputs of
    /// `channels x height x width`, with outputs `logits_name` and `features_name`.
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        chw: [usize; 3],
        logits_name: &str,
        features_name: &str,
    ) -> Result<Self> {
        let load = |e: TractError| BundleError::ModelLoad {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(load)?;
        let batch = model.symbols.sym("N");
        let [c, h, w] = chw;
        model
            .set_input_fact(
                0,
                f32::fact([batch.to_dim(), c.to_dim(), h.to_dim(), w.to_dim()]).into(),
            )
            .map_err(load)?;
        let outputs = [logits_name, features_name]
            .iter()
            .map(|name| {
                model
                    .find_outlet_label(name)
                    .or_else(|| {
                        model
                            .node_by_name(name)
                            .ok()
                            .map(|n| OutletId::new(n.id, 0))
                    })
                    .ok_or_else(|| BundleError::MissingOutput {
                        path: path.to_path_buf(),
                        name: name.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        model.set_output_outlets(&outputs).map_err(load)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(load)?;
        Ok(Self {
            path: path.to_path_buf(),
            plan,
            chw,
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `[C, H, W]` of one input.
    pub fn input_chw(&self) -> [usize; 3] {
        self.chw
    }

    /// Run one batch. The batch's `C x H x W` must be the contract's.
    pub fn forward(&self, batch: ArrayView4<f32>) -> Result<Forward> {
        check_batch(&batch, self.chw)?;
        let shape = batch.shape().to_vec();
        let n = shape[0];
        let infer = |e: TractError| BundleError::Inference {
            shape: shape.clone(),
            source: e.into(),
        };
        // tract has its own ndarray version: cross over as a flat slice
        let flat = batch.as_standard_layout();
        let flat = flat.as_slice().expect("standard layout is contiguous");
        let input = Tensor::from_shape(&shape, flat).map_err(infer)?;
        let out = self.plan.run(tvec!(input.into())).map_err(infer)?;
        let take = |i: usize, name: &'static str| -> Result<Array2<f32>> {
            let dims = out[i].shape().to_vec();
            let bad = || BundleError::OutputShape {
                name,
                shape: dims.clone(),
                expected: format!("{n} x D"),
            };
            if dims.len() != 2 || dims[0] != n {
                return Err(bad());
            }
            let data = out[i].as_slice::<f32>().map_err(infer)?;
            Array2::from_shape_vec((dims[0], dims[1]), data.to_vec()).map_err(|_| bad())
        };
        Ok(Forward {
            logits: take(0, "logits")?,
            features: take(1, "features")?,
        })
    }
}

impl Model for OnnxModel {
    fn forward(&self, batch: ArrayView4<f32>) -> Result<Forward> {
        OnnxModel::forward(self, batch)
    }
    fn input_chw(&self) -> [usize; 3] {
        self.chw
    }
}
