//! The libtorch side of bundles (`nn` feature): checkpoint, state_dict and TorchScript models
//! as an [`ood_bundle::Model`], loaded through ood-nn's one model-loading path
//! ([`ood_nn::model::Classifier`]). ood-bundle stays framework-free; this loader is what the
//! default build hands to `Bundle::load_with` / `create_with`. Bundles run on the CPU.

use std::path::PathBuf;
use std::sync::Mutex;

use ndarray::{Array2, ArrayView4};
use ood_bundle::runner::check_batch;
use ood_bundle::{BundleError, Forward, Model, ModelFiles, ModelKind, ModelLoader, OnnxOnly};
use ood_nn::model::Classifier;
use ood_nn::tch::{self, Device, Kind, Tensor};
use ood_nn::WrnConfig;

/// Loads every model kind: ONNX through tract, the others through libtorch.
#[derive(Debug, Clone, Copy)]
pub struct TorchLoader {
    device: Device,
}

impl TorchLoader {
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
        }
    }
}

impl ModelLoader for TorchLoader {
    fn load(&self, f: &ModelFiles) -> ood_bundle::Result<Box<dyn Model>> {
        let backend = |e: ood_nn::Error| BundleError::Backend {
            path: f.path.into(),
            kind: f.kind,
            source: Box::new(e),
        };
        let classifier = match f.kind {
            ModelKind::Onnx => return OnnxOnly.load(f),
            ModelKind::Checkpoint => Classifier::from_checkpoint(f.path, self.device),
            ModelKind::StateDict => {
                let a = f.architecture.ok_or_else(|| BundleError::Manifest {
                    path: f.path.into(),
                    what: "a state_dict model needs its architecture".into(),
                })?;
                let config = WrnConfig {
                    depth: a.depth,
                    widen_factor: a.widen_factor,
                    dropout: 0.0,
                    num_classes: a.num_classes,
                    in_channels: f.chw[0] as i64,
                };
                // WideResNet::new validates the architecture
                Classifier::from_state_dict(f.path, &config, self.device)
            }
            ModelKind::TorchScript => Classifier::from_torchscript(f.path, self.device),
        }
        .map_err(backend)?;
        Ok(Box::new(TorchModel {
            classifier: Mutex::new(classifier),
            path: f.path.into(),
            chw: f.chw,
            device: self.device,
        }))
    }
}

/// A libtorch classifier in evaluation mode, run without gradients. tch tensors are `Send` but
/// not `Sync`: requests sharing one bundle take turns (libtorch parallelises inside a batch).
pub struct TorchModel {
    classifier: Mutex<Classifier>,
    path: PathBuf,
    chw: [usize; 3],
    device: Device,
}

impl TorchModel {
    fn infer(
        &self,
        shape: &[usize],
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> BundleError {
        BundleError::Inference {
            shape: shape.to_vec(),
            source: format!("{}: {}", self.path.display(), e).into(),
        }
    }

    fn to_array(
        &self,
        t: &Tensor,
        name: &'static str,
        n: usize,
    ) -> ood_bundle::Result<Array2<f32>> {
        let size: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let bad = || BundleError::OutputShape {
            name,
            shape: size.clone(),
            expected: format!("{n} x D"),
        };
        if size.len() != 2 || size[0] != n {
            return Err(bad());
        }
        let flat = t
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .contiguous()
            .flatten(0, -1);
        let v = Vec::<f32>::try_from(&flat).map_err(|e| self.infer(&size, e))?;
        Array2::from_shape_vec((size[0], size[1]), v).map_err(|_| bad())
    }
}

impl Model for TorchModel {
    fn forward(&self, batch: ArrayView4<f32>) -> ood_bundle::Result<Forward> {
        check_batch(&batch, self.chw)?;
        let shape = batch.shape().to_vec();
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let flat = batch.as_standard_layout();
        let x = Tensor::from_slice(flat.as_slice().expect("standard layout is contiguous"))
            .reshape(dims.as_slice())
            .to_device(self.device);
        let n = shape[0];
        let classifier = self.classifier.lock().unwrap_or_else(|p| p.into_inner());
        let out = tch::no_grad(|| classifier.logits_and_features(&x));
        let (logits, features) = match out {
            Ok((l, f)) => (
                self.to_array(&l, "logits", n)?,
                self.to_array(&f, "features", n)?,
            ),
            // a TorchScript classifier without features still gives logit scores
            Err(_) if matches!(*classifier, Classifier::TorchScript { .. }) => {
                let l =
                    tch::no_grad(|| classifier.logits(&x)).map_err(|e| self.infer(&shape, e))?;
                (self.to_array(&l, "logits", n)?, Array2::zeros((n, 0)))
            }
            Err(e) => return Err(self.infer(&shape, e)),
        };
        Ok(Forward { logits, features })
    }

    fn input_chw(&self) -> [usize; 3] {
        self.chw
    }
}
